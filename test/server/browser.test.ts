/**
 * The web page in a real headless Chromium (Debian's `chromium` package driven by puppeteer-core, which downloads
 * no browser): upload and paste documents, ask, see the answer with and without memory and the sources as weighted
 * bars, delete a document. Against `mac-lm serve` on the shipped checkpoint when the real models are in the cache
 * (then the screenshot is a real one; MACLM_SCREENSHOT=path keeps it, e.g. docs/web-ui.png), else against the same
 * server code over the tiny MAC. CHROMIUM_PATH overrides the browser's location.
 */
import type { ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { afterAll, describe, expect, it } from "vitest";
import { cachedFile } from "../helpers/model-cache.js";
import { spawnServer } from "./spawn-server.js";

const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const hasChromium = existsSync(chromium);
const skipNote = hasChromium ? "" : ` [SKIPPED: no browser at ${chromium}; apt-get install chromium (CI does)]`;
if (!hasChromium) console.warn(`browser test SKIPPED: ${chromium} is absent (apt-get install chromium)`);
const real =
  cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf").present && cachedFile("all-MiniLM-L6-v2", "model.safetensors").present;

const dir = mkdtempSync(join(tmpdir(), "mac-browser-"));
let proc: ChildProcess | null = null;
let browser: Browser | null = null;
afterAll(async () => {
  await browser?.close();
  if (proc && proc.exitCode === null) proc.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function startServer(): Promise<string> {
  const started = await spawnServer(join(dir, "bank"), { real });
  proc = started.proc;
  return started.url;
}

describe.skipIf(!hasChromium)(`the web page in Chromium${skipNote}`, () => {
  it("adds documents (upload and paste), answers with sources, with and without memory, and deletes", async () => {
    const url = await startServer();
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 820 });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: "networkidle0" });
    expect(await page.title()).toBe("mac-lm");

    // Upload a .txt file.
    const file = join(dir, "kelt-company.txt");
    writeFileSync(file, "The Kelt company makes glass boats in the harbour of Oslar.");
    const upload = await page.$("#upload");
    await upload!.uploadFile(file);
    await page.waitForSelector('#doc-list li[data-id="kelt-company"]', { timeout: 60_000 });

    // Paste one.
    await page.type("#doc-id", "quellin");
    await page.type("#doc-title", "Zorvath Quellin");
    await page.type("#doc-text", "Zorvath Quellin was a glassmaker born in Mirefall in 1843.");
    await page.click("#add-doc");
    await page.waitForSelector('#doc-list li[data-id="quellin"]', { timeout: 60_000 });
    expect(await page.$eval("#doc-count", (e) => e.textContent)).toBe("(2)");

    // Ask: both answers stream in, the sources appear as bars.
    await page.type("#question", real ? "Where was Zorvath Quellin born?" : "where?");
    await page.click("#ask");
    await page.waitForSelector('body[data-answered="yes"]', { timeout: 120_000 });
    const withMemory = await page.$eval("#answer-memory", (e) => e.textContent ?? "");
    const without = await page.$eval("#answer-plain", (e) => e.textContent ?? "");
    expect(withMemory.length).toBeGreaterThan(0);
    expect(without.length).toBeGreaterThan(0);
    expect(await page.$eval("#timing-memory", (e) => e.textContent)).toMatch(/^\d+\.\d\d s · memory of 2 documents$/);
    expect(await page.$eval("#timing-plain", (e) => e.textContent)).toMatch(/^\d+\.\d\d s$/);
    const sources = await page.$$eval("#sources li.source", (lis) =>
      lis.map((li) => ({
        id: li.getAttribute("data-id"),
        width: parseFloat((li.querySelector(".bar > span") as unknown as { style: { width: string } }).style.width),
        snippet: li.querySelector(".snippet")!.textContent,
      })),
    );
    expect(sources.map((s) => s.id).sort()).toEqual(["kelt-company", "quellin"]);
    for (const s of sources) {
      expect(s.width).toBeGreaterThan(0);
      expect(s.snippet!.length).toBeGreaterThan(10);
    }
    const shot = join(dir, "web-ui.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    if (process.env.MACLM_SCREENSHOT) copyFileSync(shot, process.env.MACLM_SCREENSHOT);

    // Delete one: gone from the page and from the server.
    await page.click('#doc-list li[data-id="kelt-company"] button.delete');
    await page.waitForSelector('#doc-list li[data-id="kelt-company"]', { hidden: true, timeout: 30_000 });
    const listed = (await (await fetch(`${url}/v1/documents`)).json()) as { documents: { id: string }[] };
    expect(listed.documents.map((d) => d.id)).toEqual(["quellin"]);
    expect(errors).toEqual([]);

    proc!.kill("SIGTERM");
    const code = await new Promise((r) => proc!.once("exit", r));
    expect(code).toBe(0);
  }, 240_000);
});
