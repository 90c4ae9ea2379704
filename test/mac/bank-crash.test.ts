/**
 * Durability of the memory bank under a real crash: a child process appends in a loop and reports each
 * acknowledged append on stdout; it is killed with SIGKILL at a random moment; the bank is reopened and checked.
 * Repeated several times on the same bank, each child continuing where the previous one stopped.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryBank } from "../../src/mac/memory/bank.js";
import { CRASH_D, CRASH_T, crashLatent } from "./bank-crash-shared.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, "bank-crash-child.ts");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "maclm-bank-crash-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Run {
  ready: number;
  acked: number; // entries acknowledged: doc-0 … doc-(acked-1)
  inFlight: number; // size of the append begun but not acknowledged when killed (0 if none)
  delayMs: number;
}

/** Starts a child, kills it `delayMs` after its first acknowledged append, and reports what it acknowledged. */
function runAndKill(bankPath: string, delayMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", child, bankPath], { stdio: ["ignore", "pipe", "pipe"] });
    const run: Run = { ready: -1, acked: -1, inFlight: 0, delayMs };
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    proc.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const lines = createInterface({ input: proc.stdout });
    lines.on("line", (line) => {
      const [what, a, b] = line.split(" ");
      const k = Number(a);
      const n = Number(b);
      if (what === "ready") run.ready = run.acked = k;
      else if (what === "begin") {
        if (k !== run.acked) reject(new Error(`child began at ${k} after ${run.acked} acknowledged`));
        run.inFlight = n;
      } else if (what === "ack") {
        run.acked = k + n;
        run.inFlight = 0;
        timer ??= setTimeout(() => proc.kill("SIGKILL"), delayMs);
      }
    });
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      // Let readline deliver the lines already read before the exit.
      setImmediate(() => {
        if (signal !== "SIGKILL") reject(new Error(`child exited with code ${code}, signal ${signal}: ${stderr}`));
        else resolve(run);
      });
    });
    proc.on("error", reject);
  });
}

/** Every entry 0 … count-1 is there, in order, with its contents; returns count. */
function checkBank(bankPath: string): number {
  const raw = new Database(bankPath, { readonly: true });
  expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
  raw.close();
  const bank = MemoryBank.open(bankPath, { T: CRASH_T, d: CRASH_D, dtype: "float32", modelFingerprint: "crash-test" });
  const count = bank.count;
  const infos = bank.list();
  expect(infos.length).toBe(count);
  infos.forEach((e, k) => {
    if (e.id !== `doc-${k}` || e.index !== k || (e.metadata as { k: number }).k !== k)
      expect.fail(`entry ${k}: ${JSON.stringify(e)}`);
  });
  let k = 0;
  for (const g of bank.groups(64)) {
    for (let i = 0; i < g.dim(0); i++, k++) {
      const got = g.f32.subarray(i * CRASH_T * CRASH_D, (i + 1) * CRASH_T * CRASH_D);
      const want = crashLatent(k);
      for (let j = 0; j < want.length; j++)
        if (got[j] !== want[j]) expect.fail(`entry ${k} element ${j}: ${got[j]} != ${want[j]}`);
    }
    g.dispose();
  }
  expect(k).toBe(count);
  bank.close();
  return count;
}

describe("memory bank crash safety", () => {
  it("SIGKILL mid-stream loses no acknowledged entry and never corrupts the bank", async () => {
    const bankPath = path.join(dir, "bank.sqlite");
    let before = 0;
    const runs: Run[] = [];
    for (let i = 0; i < 5; i++) {
      const delayMs = Math.floor(Math.random() * 250);
      const run = await runAndKill(bankPath, delayMs);
      runs.push(run);
      const label = `run ${i} ${JSON.stringify(run)}`;
      expect(run.ready, label).toBe(before); // the child saw every entry stored before it started
      expect(run.acked, label).toBeGreaterThan(run.ready);
      const count = checkBank(bankPath);
      // All acknowledged entries are there; the append in flight is there entirely or not at all.
      expect([run.acked, run.acked + run.inFlight], label).toContain(count);
      before = count;
    }
    // The bank takes appends after the crashes.
    const bank = MemoryBank.open(bankPath);
    expect(bank.append({ id: `doc-${before}`, latent: crashLatent(before), metadata: { k: before } })).toEqual([
      before,
    ]);
    bank.close();
    expect(checkBank(bankPath)).toBe(before + 1);
    expect(runs.reduce((s, r) => s + r.acked - r.ready, 0)).toBeGreaterThan(5);
  });
});
