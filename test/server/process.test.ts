/**
 * The server as a process (test/server/tiny-server.ts: `mac-lm serve`'s code over the tiny MAC): SIGKILL while
 * documents are being ingested loses none that were acknowledged, and the bank stays intact; SIGTERM lets the
 * answer in flight finish, refuses new work and exits 0.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryBank } from "../../src/mac/memory/bank.js";

const child = resolve(import.meta.dirname, "tiny-server.ts");
const dir = mkdtempSync(join(tmpdir(), "mac-serve-proc-"));
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

interface Server {
  proc: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function start(bank: string, env: Record<string, string> = {}): Promise<Server> {
  return new Promise((resolveStart, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", child, bank], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    procs.push(proc);
    let stderr = "";
    proc.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) =>
      proc.on("exit", (code, signal) => done({ code, signal, stderr })),
    );
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      const m = /^listening (.+)$/.exec(line);
      if (m) resolveStart({ proc, url: m[1]!, exited });
    });
    void exited.then((e) => reject(new Error(`server exited before listening: ${JSON.stringify(e)}`)));
  });
}

const post = (url: string, path: string, body: unknown): Promise<Response> =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

describe("mac-lm serve as a process", () => {
  it("SIGKILL during ingestion: every acknowledged document is there after a restart, the bank intact", async () => {
    const bank = join(dir, "crash-bank");
    const textOf = (id: string): string => `document ${id} says that ${id} lives in mirefall.`;
    const acked: string[] = [];
    for (let round = 0; round < 3; round++) {
      const s = await start(bank);
      let killed = false;
      const client = async (c: number): Promise<void> => {
        for (let n = 0; !killed; n++) {
          const ids = [0, 1, 2].map((j) => `r${round}-c${c}-${n}-${j}`);
          try {
            const res = await post(s.url, "/v1/documents", { documents: ids.map((id) => ({ id, text: textOf(id) })) });
            if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
            await res.json();
            acked.push(...ids); // acknowledged: the server said 200 once the entries were committed
          } catch (e) {
            if (!killed) throw e;
          }
        }
      };
      const clients = [0, 1, 2, 3].map(client);
      // Kill once ingestion is under way, at a random moment.
      const before = acked.length;
      while (acked.length < before + 12) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, Math.random() * 150));
      killed = true;
      s.proc.kill("SIGKILL");
      await Promise.all(clients);
      expect((await s.exited).signal).toBe("SIGKILL");
    }
    // Restart: all acknowledged documents are listed and readable with their text.
    const s = await start(bank);
    const listed = (await (await fetch(`${s.url}/v1/documents`)).json()) as { documents: { id: string }[] };
    const stored = new Set(listed.documents.map((d) => d.id));
    const lost = acked.filter((id) => !stored.has(id));
    expect(lost, `${lost.length} of ${acked.length} acknowledged documents lost`).toEqual([]);
    for (const id of acked.filter((_, i) => i % 25 === 0)) {
      const doc = (await (await fetch(`${s.url}/v1/documents/${id}`)).json()) as { text: string };
      expect(doc.text).toBe(textOf(id));
    }
    const answer = await post(s.url, "/v1/ask", { question: "where?" });
    expect(answer.status).toBe(200);
    s.proc.kill("SIGTERM");
    expect((await s.exited).code).toBe(0);
    const raw = new Database(join(bank, "bank.sqlite"), { readonly: true });
    expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
    raw.close();
    const b = MemoryBank.open(join(bank, "bank.sqlite"), { readonly: true });
    expect(b.count).toBe(b.documentCount); // one entry per document, none orphaned
    const all = b.loadAll();
    expect(all.dim(0)).toBe(stored.size);
    all.dispose();
    b.close();
    expect(acked.length).toBeGreaterThan(36);
    console.log(`serve crash test: ${acked.length} acknowledged documents over 3 SIGKILLs, 0 lost`);
  }, 120_000);

  it("SIGTERM drains: the answer in flight completes, new requests are refused, the process exits 0", async () => {
    const bank = join(dir, "drain-bank");
    const s = await start(bank, { TINY_TOKEN_DELAY_MS: "150" });
    expect(
      (await post(s.url, "/v1/documents", { documents: [{ id: "a", text: "zorva lives in mirefall." }] })).status,
    ).toBe(200);
    const res = await post(s.url, "/v1/ask", { question: "where does zorva live?", stream: true });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = (await reader.read()).value ?? ""; // the first token: the answer is in flight
    expect(text).toContain("event: token");
    s.proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    const refused = await fetch(`${s.url}/healthz`).then(
      (r) => `status ${r.status}`,
      (e: Error) => `error ${e.message}`,
    );
    expect(refused).not.toBe("status 200");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    expect(text).toMatch(/event: done\ndata: \{"answer":/);
    const exit = await s.exited;
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stderr).toContain("drained");
  }, 60_000);
});
