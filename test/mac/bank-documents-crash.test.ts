/**
 * Durability of the bank's document layer under a real crash: a child process puts and removes documents in a
 * loop, reporting each acknowledged write; it is killed with SIGKILL at a random moment; the bank is reopened and
 * must hold exactly the acknowledged state (the write in flight entirely or not at all), intact. Repeated on the same
 * bank, each child adding to what the previous ones left.
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
import { docEntries, docText } from "./bank-crash-shared.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, "bank-documents-crash-child.ts");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "maclm-bank-docs-crash-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Op {
  kind: "put" | "del";
  ids: string[];
}

/** Runs a child, kills it `delayMs` after its first acknowledgement; returns acknowledged ops and the one in flight. */
function runAndKill(bankPath: string, run: number, delayMs: number): Promise<{ acked: Op[]; inFlight: Op | null }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", child, bankPath, String(run)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const acked: Op[] = [];
    let inFlight: Op | null = null;
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    proc.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    createInterface({ input: proc.stdout }).on("line", (line) => {
      const [what, kind, ids] = line.split(" ");
      if (what === "begin") inFlight = { kind: kind as Op["kind"], ids: ids!.split(",") };
      else if (what === "ack") {
        acked.push(inFlight!);
        inFlight = null;
        timer ??= setTimeout(() => proc.kill("SIGKILL"), delayMs);
      }
    });
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      setImmediate(() =>
        signal === "SIGKILL"
          ? resolve({ acked, inFlight })
          : reject(new Error(`child exited with code ${code}, signal ${signal}: ${stderr}`)),
      );
    });
    proc.on("error", reject);
  });
}

const apply = (state: Set<string>, op: Op): void => {
  for (const id of op.ids)
    if (op.kind === "put") state.add(id);
    else state.delete(id);
};

/** The documents stored, each checked against its text and entries. */
function storedDocuments(bankPath: string): Set<string> {
  const raw = new Database(bankPath, { readonly: true });
  expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
  raw.close();
  const bank = MemoryBank.open(bankPath, { readonly: true });
  const ids = new Set<string>();
  for (const doc of bank.documents()) {
    ids.add(doc.id);
    if (bank.documentText(doc.id) !== docText(doc.id)) expect.fail(`text of ${doc.id}`);
    const e = bank.documentEntries(doc.id);
    const want = docEntries(doc.id);
    if (e.f32.length !== want.length || e.f32.some((v, i) => v !== want[i])) expect.fail(`entries of ${doc.id}`);
    e.dispose();
  }
  // Entries in aggregation order cover exactly the stored documents' windows.
  const perDoc = new Map<string, number>();
  for (const id of bank.entryDocIds()) perDoc.set(id, (perDoc.get(id) ?? 0) + 1);
  expect(new Set(perDoc.keys())).toEqual(ids);
  for (const [id, n] of perDoc) expect(n, id).toBe(docEntries(id).length / (bank.config.T * bank.config.d));
  const all = bank.loadAll();
  expect(all.dim(0)).toBe(bank.count);
  all.dispose();
  bank.close();
  return ids;
}

describe("memory bank documents: crash safety", () => {
  it("SIGKILL during puts and removals loses no acknowledged write and never corrupts the bank", async () => {
    const bankPath = path.join(dir, "bank.sqlite");
    let expected = new Set<string>();
    let writes = 0;
    for (let run = 0; run < 4; run++) {
      const { acked, inFlight } = await runAndKill(bankPath, run, Math.floor(Math.random() * 200));
      writes += acked.length;
      for (const op of acked) apply(expected, op);
      const stored = storedDocuments(bankPath);
      const withInFlight = new Set(expected);
      if (inFlight) apply(withInFlight, inFlight);
      const label = `run ${run}: in flight ${JSON.stringify(inFlight)}`;
      expect(
        [expected, withInFlight].some((s) => s.size === stored.size && [...s].every((id) => stored.has(id))),
        label,
      ).toBe(true);
      expected = stored;
    }
    expect(writes).toBeGreaterThan(4);
  });
});
