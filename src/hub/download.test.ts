import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MacLmError } from "../errors.js";
import { type HubServer, closedPort, startHubServer } from "../../test/helpers/hub-server.js";
import { DownloadError, downloadFile, hubFileUrl } from "./download.js";

const bytes = (n: number, seed = 1): Buffer => {
  const b = Buffer.alloc(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
};
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const REPO = "org/tiny-model";
const WEIGHTS = bytes(300_000, 7);
const CONFIG = Buffer.from('{"model_type": "gpt2"}\n');

let dir: string;
let hub: HubServer;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mac-lm-dl-"));
});
afterEach(async () => {
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

const url = (file: string) => hubFileUrl(REPO, file, "main", hub.url);

describe("hubFileUrl", () => {
  it("builds <hub>/<repo>/resolve/<rev>/<file> with encoded segments", () => {
    expect(hubFileUrl("a/b", "1_Pooling/config.json", "main", "https://h.co")).toBe(
      "https://h.co/a/b/resolve/main/1_Pooling/config.json",
    );
    expect(hubFileUrl("a/b", "x y.json", "v1.0", "http://x/")).toBe("http://x//a/b/resolve/v1.0/x%20y.json");
  });
});

describe("downloadFile", () => {
  it("downloads an LFS file through the redirect and verifies its sha256 (X-Linked-Etag)", async () => {
    hub = await startHubServer({ [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true } });
    const dest = join(dir, "model.safetensors");
    const seen: number[] = [];
    const r = await downloadFile(url("model.safetensors"), dest, { onProgress: (p) => seen.push(p.received) });
    expect(r.verified).toBe("sha256");
    expect(r.sha256).toBe(sha(WEIGHTS));
    expect(r.size).toBe(WEIGHTS.length);
    expect(r.requests).toBe(1);
    expect((await readFile(dest)).equals(WEIGHTS)).toBe(true);
    expect(existsSync(`${dest}.partial`)).toBe(false);
    expect(seen.at(-1)).toBe(WEIGHTS.length);
    expect(hub.requests.map((q) => q.path)).toEqual([`${REPO}/resolve/main/model.safetensors`, `cdn/${sha(WEIGHTS)}`]);
  });

  it("checks a small (non-LFS) file by size: its ETag is a git sha1, not a sha256", async () => {
    hub = await startHubServer({ [`${REPO}/resolve/main/config.json`]: { body: CONFIG } });
    const r = await downloadFile(url("config.json"), join(dir, "config.json"));
    expect(r.verified).toBe("size");
    expect(await readFile(join(dir, "config.json"), "utf8")).toBe(CONFIG.toString());
  });

  it("resumes with a Range request when the server drops the connection mid-file", async () => {
    hub = await startHubServer({
      [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true, dropAfter: 100_000, drops: 1 },
    });
    const dest = join(dir, "model.safetensors");
    const r = await downloadFile(url("model.safetensors"), dest);
    expect(r.requests).toBe(2);
    expect((await readFile(dest)).equals(WEIGHTS)).toBe(true);
    expect(r.verified).toBe("sha256");
    const cdn = hub.requests.filter((q) => q.path.startsWith("cdn/"));
    expect(cdn.map((q) => q.range)).toEqual([undefined, "bytes=100000-"]);
  });

  it("leaves the .partial file when out of retries, and a later call resumes it", async () => {
    hub = await startHubServer({
      [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true, dropAfter: 120_000, drops: 1 },
    });
    const dest = join(dir, "model.safetensors");
    const err = await downloadFile(url("model.safetensors"), dest, { retries: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toMatch(/run again to resume/);
    expect(existsSync(dest)).toBe(false);
    expect((await stat(`${dest}.partial`)).size).toBe(120_000);

    const r = await downloadFile(url("model.safetensors"), dest, { retries: 0 });
    expect(r.resumedFrom).toBe(120_000);
    expect((await readFile(dest)).equals(WEIGHTS)).toBe(true);
    expect(hub.requests.filter((q) => q.path.startsWith("cdn/")).at(-1)!.range).toBe("bytes=120000-");
  });

  it("starts over when the server ignores the Range header", async () => {
    hub = await startHubServer({
      [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true, ignoreRange: true },
    });
    const dest = join(dir, "model.safetensors");
    await writeFile(`${dest}.partial`, WEIGHTS.subarray(0, 5000));
    const r = await downloadFile(url("model.safetensors"), dest);
    expect((await readFile(dest)).equals(WEIGHTS)).toBe(true);
    expect(r.verified).toBe("sha256");
  });

  it("finishes a partial file that is already complete (416 on the range)", async () => {
    hub = await startHubServer({ [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true } });
    const dest = join(dir, "model.safetensors");
    await writeFile(`${dest}.partial`, WEIGHTS);
    const r = await downloadFile(url("model.safetensors"), dest);
    expect(r.verified).toBe("sha256");
    expect((await readFile(dest)).equals(WEIGHTS)).toBe(true);
  });

  it("fails on a sha256 mismatch, naming both hashes, and keeps no file", async () => {
    const wrong = "0".repeat(64);
    hub = await startHubServer({
      [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true, fakeSha256: wrong },
    });
    const dest = join(dir, "model.safetensors");
    const err = await downloadFile(url("model.safetensors"), dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MacLmError);
    expect((err as MacLmError).code).toBe("MACLM_CHECKSUM_MISMATCH");
    expect((err as Error).message).toContain(`expected ${wrong}, got ${sha(WEIGHTS)}`);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it("checks a caller-supplied sha256 even when the server publishes none", async () => {
    hub = await startHubServer({ [`${REPO}/resolve/main/config.json`]: { body: CONFIG } });
    const err = await downloadFile(url("config.json"), join(dir, "config.json"), { sha256: "ab".repeat(32) }).catch(
      (e: unknown) => e,
    );
    expect((err as MacLmError).code).toBe("MACLM_CHECKSUM_MISMATCH");
    expect(existsSync(join(dir, "config.json"))).toBe(false);
  });

  it("reports a 404 clearly, with the URL", async () => {
    hub = await startHubServer({});
    const dest = join(dir, "missing.json");
    const err = await downloadFile(url("missing.json"), dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).status).toBe(404);
    expect((err as Error).message).toBe(`not found (HTTP 404): ${url("missing.json")}`);
    expect(existsSync(dest) || existsSync(`${dest}.partial`)).toBe(false);
  });

  it("fails fast when nothing listens", async () => {
    const port = await closedPort();
    const t0 = performance.now();
    const err = await downloadFile(`http://127.0.0.1:${port}/x/resolve/main/a.json`, join(dir, "a.json")).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).status).toBeNull();
    expect((err as Error).message).toMatch(/cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("times out on a server that never answers", async () => {
    hub = await startHubServer({ [`${REPO}/resolve/main/config.json`]: { body: CONFIG, hang: true } });
    const err = await downloadFile(url("config.json"), join(dir, "config.json"), { timeoutMs: 300 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as Error).message).toMatch(/no answer from 127\.0\.0\.1:\d+ within 0\.3 s/);
  });

  it("sends the Authorization header to the hub but not to another host it redirects to", async () => {
    const cdn = await startHubServer({ "files/w": { body: WEIGHTS } });
    try {
      hub = await startHubServer({
        [`${REPO}/resolve/main/model.safetensors`]: { body: WEIGHTS, lfs: true, redirectTo: `${cdn.url}/files/w` },
      });
      const r = await downloadFile(url("model.safetensors"), join(dir, "m"), {
        headers: { authorization: "Bearer t" },
      });
      expect(r.verified).toBe("sha256");
      expect(hub.requests[0]!.authorization).toBe("Bearer t");
      expect(cdn.requests).toHaveLength(1);
      expect(cdn.requests[0]!.authorization).toBeUndefined();
    } finally {
      await cdn.close();
    }
  });
});
