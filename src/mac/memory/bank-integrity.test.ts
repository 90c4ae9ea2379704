// Integrity of a memory bank at rest: per-entry checksums checked on every read, non-finite values refused, the
// stored text checked, quick_check on open, check() for the whole bank, and bytes overwritten in the file at many
// offsets: each read either fails with an error naming the problem or returns exactly the clean values.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MacLmError } from "../../errors.js";
import { Rng } from "../../tensor/random.js";
import { Tensor } from "../../tensor/tensor.js";
import { MemoryBank, entryChecksum } from "./bank.js";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "maclm-bank-integrity-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const freshPath = (): string => path.join(dir, `bank-${counter++}.sqlite`);

const T = 4;
const d = 64;
const entriesOf = (k: number, n = 1): Tensor =>
  Tensor.from(
    Float32Array.from({ length: n * T * d }, (_, j) => Math.sin(k * 3.1 + j * 0.37)),
    [n, T, d],
  );

/** A float32 bank of 12 documents (the third with 3 windows), closed; returns its path and all its values. */
function makeBank(dtype: "float32" | "float16" = "float32"): { p: string; values: Float32Array } {
  const p = freshPath();
  const bank = MemoryBank.open(p, { T, d, dtype, modelFingerprint: "fp" });
  for (let k = 0; k < 12; k++)
    bank.putDocument({ id: `doc-${k}`, text: `text of document ${k}`, entries: entriesOf(k, k === 2 ? 3 : 1) });
  const all = bank.loadAll();
  const values = Float32Array.from(all.f32);
  all.dispose();
  bank.close();
  return { p, values };
}

function caught(fn: () => unknown): MacLmError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MacLmError);
    return e as MacLmError;
  }
  throw new Error("expected an error");
}

/** Changes the database behind the bank's back (as damage or a foreign tool would). */
function tamper(p: string, sql: string, ...args: unknown[]): void {
  const db = new Database(p);
  db.prepare(sql).run(...args);
  db.close();
}

describe("MemoryBank integrity", () => {
  it("a changed latent is an error naming the bank, the document and the window, on every read path", () => {
    const { p } = makeBank();
    const db = new Database(p);
    const row = db
      .prepare<[], { idx: number; data: Buffer }>(
        "SELECT idx, data FROM payloads WHERE idx = (SELECT idx FROM entries WHERE doc_id = 'doc-2' AND win = 1)",
      )
      .get()!;
    const data = Buffer.from(row.data);
    data[17] = data[17]! ^ 0x01; // one bit of one value
    db.prepare("UPDATE payloads SET data = ? WHERE idx = ?").run(data, row.idx);
    db.close();
    const bank = MemoryBank.open(p, { readonly: true });
    for (const read of [
      () => bank.loadAll(),
      () => [...bank.groups(5)],
      () => bank.documentEntries("doc-2"),
      () => bank.readRange(2, 5),
    ]) {
      const e = caught(read);
      expect(e.code).toBe("MACLM_BANK_DAMAGED");
      expect(e.message).toContain(`memory bank ${p} is damaged: document "doc-2" (window 1)`);
      expect(e.message).toContain("does not match its checksum");
      expect(e.message).toContain("mac-lm bank repair");
    }
    // The entries before it still read; check() reports exactly that entry.
    const ok = bank.readRange(0, 2);
    ok.dispose();
    expect(bank.check()).toEqual([{ docId: "doc-2", window: 1, problem: "its latent does not match its checksum" }]);
    bank.close();
  });

  it("refuses non-finite values even with a matching checksum, and a damaged text", () => {
    for (const dtype of ["float32", "float16"] as const) {
      const { p } = makeBank(dtype);
      const db = new Database(p);
      const r = db
        .prepare<[], { idx: number; data: Buffer; win: number }>(
          "SELECT p.idx, p.data, e.win FROM payloads p JOIN entries e USING (idx) WHERE e.doc_id = 'doc-5'",
        )
        .get()!;
      const data = Buffer.from(r.data);
      if (dtype === "float32") data.writeFloatLE(Number.NaN, 8);
      else data.writeUInt16LE(0x7c00, 4); // +Inf in half precision, element 2 too
      db.prepare("UPDATE payloads SET data = ?, checksum = ? WHERE idx = ?").run(
        data,
        entryChecksum(r.idx, "doc-5", r.win, data),
        r.idx,
      );
      db.close();
      const bank = MemoryBank.open(p, { readonly: true });
      const e = caught(() => bank.loadAll());
      expect(e.message).toContain(`document "doc-5" (window 0): its latent holds a non-finite value`);
      expect(e.message).toContain("at element 2");
      bank.close();
    }
    const { p } = makeBank();
    tamper(p, "UPDATE documents SET text = 'text of document 7!' WHERE doc_id = 'doc-7'");
    const bank = MemoryBank.open(p, { readonly: true });
    expect(caught(() => bank.documentText("doc-7")).message).toContain(
      `document "doc-7": its stored text does not match its checksum`,
    );
    expect(bank.documentText("doc-8")).toBe("text of document 8");
    expect(bank.check()).toEqual([
      { docId: "doc-7", window: null, problem: "its stored text does not match its checksum" },
    ]);
    bank.close();
  });

  it("a payload moved to another entry, a lost payload and a lost entry are each found", () => {
    const { p } = makeBank();
    const db = new Database(p);
    const idxOf = (id: string): number =>
      db.prepare<[string], number>("SELECT idx FROM entries WHERE doc_id = ?").pluck().get(id)!;
    const [a, b] = [idxOf("doc-3"), idxOf("doc-4")];
    const swap = db.prepare<[], { idx: number; data: Buffer; checksum: string }>(
      `SELECT idx, data, checksum FROM payloads WHERE idx IN (${a}, ${b}) ORDER BY idx`,
    );
    const [ra, rb] = swap.all();
    const put = db.prepare("UPDATE payloads SET data = ?, checksum = ? WHERE idx = ?");
    put.run(rb!.data, rb!.checksum, a);
    put.run(ra!.data, ra!.checksum, b);
    db.prepare("DELETE FROM payloads WHERE idx = ?").run(idxOf("doc-9"));
    db.prepare("DELETE FROM entries WHERE doc_id = 'doc-10'").run();
    db.close();
    const bank = MemoryBank.open(p, { readonly: true });
    expect(caught(() => bank.loadAll()).message).toContain(`document "doc-3" (window 0)`);
    expect(bank.check()).toEqual([
      { docId: "doc-3", window: 0, problem: "its latent does not match its checksum" },
      { docId: "doc-4", window: 0, problem: "its latent does not match its checksum" },
      { docId: "doc-9", window: 0, problem: "its latent is missing" },
      { docId: null, window: null, problem: expect.stringMatching(/entry \d+ belongs to no document/) },
      { docId: "doc-10", window: null, problem: "it has 0 entries, its record says 1" },
    ]);
    bank.close();
  });

  it("bytes overwritten anywhere in the file: an error naming the problem, or exactly the clean values", () => {
    const { p: clean, values } = makeBank();
    const size = fs.statSync(clean).size;
    const rng = new Rng(7);
    let detected = 0;
    let harmless = 0;
    const offsets = [0, 16, 40, 60, 100, ...Array.from({ length: 40 }, () => Math.floor(rng.uniform() * size))];
    for (const offset of offsets)
      for (const len of [1, 64, 4096]) {
        const p = freshPath();
        const bytes = fs.readFileSync(clean);
        for (let i = offset; i < Math.min(size, offset + len); i++) bytes[i] = Math.floor(rng.uniform() * 256);
        fs.writeFileSync(p, bytes);
        let got: Float32Array | null = null;
        try {
          const bank = MemoryBank.open(p, { readonly: true });
          try {
            const all = bank.loadAll();
            got = Float32Array.from(all.f32);
            all.dispose();
          } finally {
            bank.close();
          }
        } catch (e) {
          expect(e, `offset ${offset}, ${len} bytes`).toBeInstanceOf(MacLmError);
          expect((e as Error).message).toContain(p);
          detected++;
          continue;
        }
        expect(Buffer.from(got.buffer).equals(Buffer.from(values.buffer)), `offset ${offset}, ${len} bytes`).toBe(true);
        harmless++;
      }
    expect(detected + harmless).toBe(offsets.length * 3);
    expect(detected).toBeGreaterThan(0);
  });

  it("opening runs quick_check: a damaged B-tree is refused before any read", () => {
    const { p } = makeBank();
    // Truncate the file to half: pages referenced by the schema are gone.
    const bytes = fs.readFileSync(p);
    const cut = freshPath();
    fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const e = caught(() => MemoryBank.open(cut, { readonly: true }).loadAll());
    expect(e.message).toContain(cut);
    expect(["MACLM_BANK_DAMAGED", "MACLM_BAD_FILE"]).toContain(e.code);
  });
});
