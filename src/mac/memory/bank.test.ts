import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MacLmError, ShapeError } from "../../errors.js";
import { Tensor } from "../../tensor/tensor.js";
import { type BankEntryInput, MemoryBank } from "./bank.js";
import { f16BitsToF32, f32ToF16Bits } from "./f16.js";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "maclm-bank-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
let counter = 0;
const freshPath = (): string => path.join(dir, `bank-${counter++}.sqlite`);

/** Deterministic latent of entry `k`: varied magnitudes, signs and fractions. */
function latentOf(k: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = Math.sin(k * 12.9898 + j * 78.233) * 10 ** ((j % 7) - 3);
  return out;
}

function expectError(fn: () => unknown, code: string, ...parts: string[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, "expected an error").toBeInstanceOf(MacLmError);
  const e = err as MacLmError;
  expect(e.code, e.message).toBe(code);
  for (const p of parts) expect(e.message).toContain(p);
}

describe("MemoryBank", () => {
  it("round-trips float32 entries exactly, with ids, indices and metadata, across reopen", () => {
    const p = freshPath();
    const T = 3;
    const d = 5;
    const bank = MemoryBank.open(p, { T, d, dtype: "float32", modelFingerprint: "amort-v1" });
    expect(bank.count).toBe(0);
    expect(bank.loadAll().shape).toEqual([0, T, d]);
    const l0 = latentOf(0, T * d);
    const t1 = Tensor.from(latentOf(1, T * d), [T, d]);
    const l2 = Array.from(latentOf(2, T * d));
    const l3 = Float64Array.from(latentOf(3, T * d));
    expect(bank.append({ id: "doc-0", latent: l0, metadata: { title: "first", n: 1, tags: ["a", "b"] } })).toEqual([0]);
    expect(
      bank.append([
        { id: "doc-1", latent: t1 },
        { id: "doc-2", latent: l2 },
        { id: "doc-3", latent: l3 },
      ]),
    ).toEqual([1, 2, 3]);
    bank.close();
    bank.close(); // idempotent

    const r = MemoryBank.open(p, { readonly: true });
    expect(r.config).toEqual({ T, d, dtype: "float32", modelFingerprint: "amort-v1" });
    expect(r.count).toBe(4);
    expect(r.ids()).toEqual(["doc-0", "doc-1", "doc-2", "doc-3"]);
    expect(r.ids(1, 3)).toEqual(["doc-1", "doc-2"]);
    expect(r.metadata("doc-0")).toEqual({ title: "first", n: 1, tags: ["a", "b"] });
    expect(r.metadata("doc-1")).toBeNull();
    expect(r.info("doc-2")).toEqual({ id: "doc-2", index: 2, metadata: null });
    expect(r.info("nope")).toBeUndefined();
    expect(r.has("doc-3")).toBe(true);
    expect(r.has("doc-4")).toBe(false);
    expect(r.indexOf("doc-3")).toBe(3);
    expect(r.list().map((e) => e.index)).toEqual([0, 1, 2, 3]);

    const all = r.loadAll();
    expect(all.shape).toEqual([4, T, d]);
    for (let k = 0; k < 4; k++)
      expect(Array.from(all.f32.subarray(k * T * d, (k + 1) * T * d))).toEqual(Array.from(latentOf(k, T * d)));
    const some = r.get(["doc-3", "doc-0", "doc-3"]);
    expect(some.shape).toEqual([3, T, d]);
    expect(Array.from(some.f32.subarray(0, T * d))).toEqual(Array.from(latentOf(3, T * d)));
    expect(Array.from(some.f32.subarray(T * d, 2 * T * d))).toEqual(Array.from(l0));
    expectError(
      () => r.get(["doc-1", "missing-a", "missing-b"]),
      "MACLM_BAD_ARGUMENT",
      '"missing-a"',
      '"missing-b"',
      p,
    );
    expectError(() => r.metadata("missing"), "MACLM_BAD_ARGUMENT", '"missing"');
    expectError(() => r.append({ id: "x", latent: l0 }), "MACLM_BAD_ARGUMENT", "readonly", p);
    r.close();
    expectError(() => r.count, "MACLM_DISPOSED", p);
    expectError(() => r.get(["doc-0"]), "MACLM_DISPOSED", "closed");
    for (const t of [all, some, t1]) t.dispose();
  });

  it("float16 storage rounds to nearest even and reads back as float32", () => {
    const p = freshPath();
    const T = 2;
    const d = 4;
    const bank = MemoryBank.open(p, { T, d, dtype: "float16" });
    const special = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, 65519, -(2 ** -25), 3 * 2 ** -25, -2.5, 1e-3];
    const rounded = [1, 1 + 2 ** -9, 0.0999755859375, 65504, -0, 2 ** -23, -2.5, 2 ** -10 * (1 + 25 / 1024)];
    bank.append({ id: "special", latent: special });
    const big = latentOf(7, T * d).map((v) => v * 100); // magnitudes up to 100 000 · 1e-3 … 1000·100
    for (let i = 0; i < big.length; i++) big[i] = Math.max(-65000, Math.min(65000, big[i]!));
    bank.append({ id: "random", latent: big });
    // Out of float16 range or not finite: refused, nothing written.
    expectError(
      () => bank.append({ id: "too-big", latent: [65520, 0, 0, 0, 0, 0, 0, 0] }),
      "MACLM_BAD_ARGUMENT",
      '"too-big"',
      "float16",
      "65520",
    );
    expectError(
      () => bank.append({ id: "nan", latent: [0, NaN, 0, 0, 0, 0, 0, 0] }),
      "MACLM_BAD_ARGUMENT",
      "element 1",
    );
    expect(bank.count).toBe(2);
    bank.close();

    const r = MemoryBank.open(p, { T, d, dtype: "float16" });
    const all = r.loadAll();
    const got = Array.from(all.f32);
    for (let i = 0; i < rounded.length; i++)
      expect(Object.is(got[i], rounded[i]), `special[${i}]: ${got[i]} vs ${rounded[i]}`).toBe(true);
    for (let i = 0; i < big.length; i++) expect(got[T * d + i]).toBe(f16BitsToF32(f32ToF16Bits(big[i]!)));
    // The file holds 2 bytes per value.
    const raw = new Database(p, { readonly: true });
    const bytes = raw.prepare("SELECT length(data) FROM payloads").pluck().all();
    raw.close();
    expect(bytes).toEqual([T * d * 2, T * d * 2]);
    r.close();
    all.dispose();
  });

  it("duplicate ids: an error by default (nothing of the call written), or skipped on request", () => {
    const p = freshPath();
    const bank = MemoryBank.open(p, { T: 1, d: 2 });
    bank.append({ id: "a", latent: [1, 2] });
    expectError(
      () =>
        bank.append([
          { id: "b", latent: [3, 4] },
          { id: "a", latent: [5, 6] },
        ]),
      "MACLM_DUPLICATE_ID",
      '"a"',
      "index 0",
      "already stored",
      p,
    );
    expect(bank.ids()).toEqual(["a"]); // "b" was rolled back with the rest of the call
    expectError(
      () =>
        bank.append([
          { id: "c", latent: [3, 4] },
          { id: "c", latent: [5, 6] },
        ]),
      "MACLM_DUPLICATE_ID",
      '"c" appears twice in this append',
    );
    expect(bank.count).toBe(1);
    expect(
      bank.append(
        [
          { id: "b", latent: [3, 4] },
          { id: "a", latent: [9, 9] },
          { id: "c", latent: [5, 6] },
        ],
        { onDuplicate: "skip" },
      ),
    ).toEqual([1, 0, 2]);
    expect(bank.ids()).toEqual(["a", "b", "c"]);
    const a = bank.get(["a"]);
    expect(Array.from(a.f32)).toEqual([1, 2]); // the stored entry is kept
    a.dispose();
    expectError(() => bank.append({ id: "", latent: [1, 2] }), "MACLM_BAD_ARGUMENT", "non-empty string");
    bank.close();
  });

  it("refuses a bank whose T, d, dtype or model fingerprint differ, naming the path and fields", () => {
    const p = freshPath();
    MemoryBank.open(p, { T: 2, d: 8, dtype: "float16", modelFingerprint: "sha-abc" }).close();
    expectError(
      () => MemoryBank.open(p, { T: 3, d: 8, dtype: "float16" }),
      "MACLM_CONFIG_MISMATCH",
      p,
      "T: bank 2, requested 3",
    );
    expectError(
      () => MemoryBank.open(p, { T: 2, d: 4, dtype: "float32" }),
      "MACLM_CONFIG_MISMATCH",
      "d: bank 8, requested 4",
      "dtype: bank float16, requested float32",
    );
    expectError(
      () => MemoryBank.open(p, { modelFingerprint: "sha-def" }),
      "MACLM_CONFIG_MISMATCH",
      "modelFingerprint: bank sha-abc, requested sha-def",
    );
    const ok = MemoryBank.open(p, { T: 2 }); // unspecified fields are taken from the bank
    expect(ok.config).toEqual({ T: 2, d: 8, dtype: "float16", modelFingerprint: "sha-abc" });
    ok.close();

    expectError(() => MemoryBank.open(freshPath(), { T: 2 }), "MACLM_BAD_ARGUMENT", "T and d are needed");
    expectError(
      () => MemoryBank.open(freshPath(), { T: 0, d: 2 }),
      "MACLM_BAD_ARGUMENT",
      "T must be a positive integer",
    );
    expectError(
      () => MemoryBank.open(freshPath(), { T: 1, d: 2, dtype: "bfloat16" as "float16" }),
      "MACLM_BAD_ARGUMENT",
      "dtype",
    );
    const missing = freshPath();
    expectError(() => MemoryBank.open(missing, { readonly: true }), "MACLM_BAD_FILE", missing, "does not exist");
    expect(fs.existsSync(missing)).toBe(false);

    const garbage = freshPath();
    fs.writeFileSync(garbage, "this is not a database, just some text that is long enough ".repeat(100));
    expectError(() => MemoryBank.open(garbage, { T: 1, d: 1 }), "MACLM_BAD_FILE", garbage);
    const foreign = freshPath();
    const db = new Database(foreign);
    db.exec("CREATE TABLE t (x INTEGER)");
    db.close();
    expectError(() => MemoryBank.open(foreign, { T: 1, d: 1 }), "MACLM_BAD_FILE", foreign, "not a mac-lm memory bank");
    const check = new Database(foreign, { readonly: true });
    expect(check.pragma("journal_mode", { simple: true })).toBe("delete"); // the foreign file was left alone
    check.close();
  });

  it("checks latent shapes and types", () => {
    const bank = MemoryBank.open(freshPath(), { T: 2, d: 3 });
    expect(() => bank.append({ id: "a", latent: [1, 2, 3] })).toThrow(ShapeError);
    expect(() => bank.append({ id: "a", latent: Tensor.zeros([3, 2]) })).toThrow(/\[3, 2\] is not \(T, d\) = \(2, 3\)/);
    expect(() => bank.append({ id: "a", latent: Tensor.zeros([2, 3], "int32") })).toThrow(/float32 or float64/);
    expect(bank.append({ id: "a", latent: Tensor.zeros([1, 2, 3]) })).toEqual([0]);
    expectError(
      () => bank.append({ id: "b", latent: [0, 0, 0, 0, 0, 0], metadata: [1] as unknown as { x: number } }),
      "MACLM_BAD_ARGUMENT",
      "JSON object",
    );
    expect(bank.appendBatch(["b", "c"], Tensor.from(latentOf(5, 12), [2, 2, 3]), [{ k: 1 }, undefined])).toEqual([
      1, 2,
    ]);
    expect(() => bank.appendBatch(["d"], Tensor.zeros([2, 2, 3]))).toThrow(ShapeError);
    const all = bank.loadAll();
    expect(Array.from(all.f32.subarray(6))).toEqual(Array.from(latentOf(5, 12)));
    expect(bank.metadata("b")).toEqual({ k: 1 });
    expect(bank.metadata("c")).toBeNull();
    all.dispose();
    bank.close();
  });

  it("groups(M) stream every entry once, in insertion order", () => {
    const T = 2;
    const d = 3;
    const bank = MemoryBank.open(freshPath(), { T, d, dtype: "float32" });
    const n = 23;
    bank.append(Array.from({ length: n }, (_, k): BankEntryInput => ({ id: `e${k}`, latent: latentOf(k, T * d) })));
    for (const M of [1, 4, 5, 23, 100]) {
      const sizes: number[] = [];
      const seen: number[] = [];
      for (const g of bank.groups(M)) {
        expect(g.shape.slice(1)).toEqual([T, d]);
        sizes.push(g.dim(0));
        for (let i = 0; i < g.dim(0); i++) {
          const k = seen.length;
          expect(Array.from(g.f32.subarray(i * T * d, (i + 1) * T * d)), `M=${M} entry ${k}`).toEqual(
            Array.from(latentOf(k, T * d)),
          );
          seen.push(k);
        }
        g.dispose();
      }
      expect(seen.length).toBe(n);
      expect(sizes).toEqual([...Array<number>(Math.floor(n / M)).fill(M), ...(n % M ? [n % M] : [])]);
    }
    expect(() => bank.groups(0).next()).toThrow(/positive integer/);
    expect(() => bank.readRange(20, 24)).toThrow(/not a range/);
    // Entries appended during iteration are not part of that iteration.
    const it = bank.groups(10);
    it.next().value?.dispose();
    bank.append({ id: "late", latent: latentOf(99, T * d) });
    let rest = 0;
    for (const g of it) {
      rest += g.dim(0);
      g.dispose();
    }
    expect(rest).toBe(n - 10);
    bank.close();
  });

  it("a 100,000-entry bank: fast open, queries and bounded streaming", () => {
    const p = freshPath();
    const T = 2;
    const d = 8;
    const N = 100_000;
    const bank = MemoryBank.open(p, { T, d, dtype: "float16" });
    const chunk = 10_000;
    const base = latentOf(0, T * d);
    for (let s = 0; s < N; s += chunk)
      bank.append(
        Array.from({ length: chunk }, (_, i): BankEntryInput => {
          const k = s + i;
          const latent = base.map((v, j) => v + (j === 0 ? k % 1000 : 0));
          return k % 10_000 === 0 ? { id: `doc-${k}`, latent, metadata: { k } } : { id: `doc-${k}`, latent };
        }),
      );
    bank.close();

    const t0 = performance.now();
    const r = MemoryBank.open(p, { T, d, dtype: "float16" });
    const count = r.count;
    const openMs = performance.now() - t0;
    expect(count).toBe(N);
    expect(openMs).toBeLessThan(1000);
    const ids = r.ids();
    expect(ids.length).toBe(N);
    expect(ids[0]).toBe("doc-0");
    expect(ids[N - 1]).toBe(`doc-${N - 1}`);
    expect(r.metadata("doc-50000")).toEqual({ k: 50000 });
    const picked = r.get(["doc-99999", "doc-12345"]);
    expect(picked.f32[0]).toBe(f16BitsToF32(f32ToF16Bits(base[0]! + 999)));
    expect(picked.f32[T * d]).toBe(f16BitsToF32(f32ToF16Bits(base[0]! + 345)));
    picked.dispose();
    let total = 0;
    let ok = true;
    for (const g of r.groups(4096)) {
      for (let i = 0; i < g.dim(0); i++)
        ok &&= g.f32[i * T * d] === f16BitsToF32(f32ToF16Bits(base[0]! + ((total + i) % 1000)));
      total += g.dim(0);
      g.dispose();
    }
    expect(total).toBe(N);
    expect(ok).toBe(true);
    r.close();
  });
});

describe("MemoryBank documents (schema v2)", () => {
  const T = 2;
  const d = 3;
  const entriesOf = (k: number, n = 1): Tensor =>
    Tensor.from(
      Float32Array.from(
        { length: n * T * d },
        (_, j) => latentOf(k * 10 + Math.floor(j / (T * d)), T * d)[j % (T * d)]!,
      ),
      [n, T, d],
    );

  it("stores documents with text, title, metadata and several windows; lists them; maps entries to documents", () => {
    const p = freshPath();
    const bank = MemoryBank.open(p, { T, d });
    expect(
      bank.putDocument({ id: "a", text: "Alpha text.", title: "Alpha", meta: { lang: "en" }, entries: entriesOf(1) }),
    ).toBe(0);
    expect(
      bank.putDocuments([
        { id: "b", text: "Bravo, long: three windows.", entries: entriesOf(2, 3) },
        { id: "c", text: "Charlie", entries: entriesOf(3).reshapeView([T, d]) },
      ]),
    ).toEqual([1, 4]);
    bank.close();

    const r = MemoryBank.open(p, { readonly: true });
    expect(r.count).toBe(5);
    expect(r.documentCount).toBe(3);
    expect(r.entryDocIds()).toEqual(["a", "b", "b", "b", "c"]);
    const docs = r.documents();
    expect(docs.map((x) => [x.id, x.title, x.chars, x.entries, x.meta])).toEqual([
      ["a", "Alpha", 11, 1, { lang: "en" }],
      ["b", null, 27, 3, null],
      ["c", null, 7, 1, null],
    ]);
    expect(Number.isNaN(Date.parse(docs[0]!.addedAt))).toBe(false);
    expect(r.document("b")?.entries).toBe(3);
    expect(r.document("zzz")).toBeUndefined();
    expect(r.documentText("b")).toBe("Bravo, long: three windows.");
    expect(r.documentText("zzz")).toBeUndefined();
    const all = r.loadAll();
    const want = [entriesOf(1), entriesOf(2, 3), entriesOf(3)];
    expect(Array.from(all.f32)).toEqual(want.flatMap((t) => Array.from(t.f32)));
    const b = r.documentEntries("b");
    expect(b.shape).toEqual([3, T, d]);
    expect(Array.from(b.f32)).toEqual(Array.from(want[1]!.f32));
    expectError(() => r.get(["b"]), "MACLM_BAD_ARGUMENT", '"b" has 3 entries');
    expectError(() => r.putDocument({ id: "x", text: "", entries: entriesOf(1) }), "MACLM_BAD_ARGUMENT", "readonly");
    r.close();
    for (const t of [all, b, ...want]) t.dispose();
  });

  it("re-putting an id replaces its document and entries; removeDocument deletes them; order stays consistent", () => {
    const p = freshPath();
    const bank = MemoryBank.open(p, { T, d });
    bank.putDocuments([
      { id: "a", text: "A1", entries: entriesOf(1) },
      { id: "b", text: "B1", entries: entriesOf(2, 2) },
      { id: "c", text: "C1", entries: entriesOf(3) },
    ]);
    // Replace b with one window: it moves to the end, its old entries are gone.
    expect(bank.putDocument({ id: "b", text: "B2", title: "new", entries: entriesOf(4) })).toBe(2);
    expect(bank.entryDocIds()).toEqual(["a", "c", "b"]);
    expect(bank.documentText("b")).toBe("B2");
    expect(bank.documents().map((x) => x.id)).toEqual(["a", "c", "b"]);
    expect(bank.indexOf("b")).toBe(2);
    expect(bank.removeDocument("a")).toBe(true);
    expect(bank.removeDocument("a")).toBe(false);
    expect(bank.has("a")).toBe(false);
    expect(bank.count).toBe(2);
    expect(bank.ids()).toEqual(["c", "b"]);
    expect(bank.list().map((e) => [e.id, e.index])).toEqual([
      ["c", 0],
      ["b", 1],
    ]);
    // Positions are ranks, idx gaps are invisible to readRange/groups.
    const r1 = bank.readRange(1, 2);
    expect(Array.from(r1.f32)).toEqual(Array.from(entriesOf(4).f32));
    const seen: number[][] = [];
    for (const g of bank.groups(1)) {
      seen.push(Array.from(g.f32));
      g.dispose();
    }
    expect(seen).toEqual([Array.from(entriesOf(3).f32), Array.from(entriesOf(4).f32)]);
    // Replacing within one call: the last one wins.
    bank.putDocuments([
      { id: "d", text: "D1", entries: entriesOf(5) },
      { id: "d", text: "D2", entries: entriesOf(6) },
    ]);
    expect(bank.documentText("d")).toBe("D2");
    expect(bank.entryDocIds()).toEqual(["c", "b", "d"]);
    // The raw tables hold nothing of removed or replaced documents.
    bank.close();
    const raw = new Database(p, { readonly: true });
    expect(raw.prepare("SELECT count(*) FROM payloads").pluck().get()).toBe(3);
    expect(raw.prepare("SELECT count(*) FROM entries").pluck().get()).toBe(3);
    expect(raw.prepare("SELECT count(*) FROM documents").pluck().get()).toBe(3);
    expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
    raw.close();
    r1.dispose();
  });

  it("validates documents before writing anything", () => {
    const bank = MemoryBank.open(freshPath(), { T, d });
    bank.putDocument({ id: "keep", text: "k", entries: entriesOf(1) });
    const bad = (doc: object, ...parts: string[]): void =>
      expectError(
        () =>
          bank.putDocuments([
            { id: "fine", text: "f", entries: entriesOf(2) },
            doc as Parameters<MemoryBank["putDocument"]>[0],
          ]),
        ...(["MACLM_BAD_ARGUMENT", ...parts] as [string, ...string[]]),
      );
    bad({ id: "", text: "t", entries: entriesOf(1) }, "non-empty string");
    bad({ id: "x", text: 42, entries: entriesOf(1) }, '"x"', "text must be a string");
    bad({ id: "x", text: "t", title: 7, entries: entriesOf(1) }, "title must be a string");
    bad({ id: "x", text: "t", meta: [1], entries: entriesOf(1) }, "metadata must be a JSON object");
    bad({ id: "x", text: "t", entries: [1, 2] }, "entries must be a Tensor");
    bad({ id: "x", text: "t", entries: Tensor.from([NaN, 0, 0, 0, 0, 0], [1, T, d]) }, '"x", window 0', "not finite");
    expect(() => bank.putDocument({ id: "x", text: "t", entries: Tensor.zeros([0, T, d]) })).toThrow(ShapeError);
    expect(() => bank.putDocument({ id: "x", text: "t", entries: Tensor.zeros([1, T, d + 1]) })).toThrow(
      /\(n ≥ 1, T, d\)/,
    );
    expect(bank.documents().map((x) => x.id)).toEqual(["keep"]); // "fine" was never written
    bank.close();
  });

  it("migrates a version-1 bank in place when opened for writing, and refuses it readonly with how to migrate", () => {
    const p = freshPath();
    // A version-1 bank exactly as the previous schema wrote it.
    const v1 = new Database(p);
    v1.pragma("journal_mode = WAL");
    v1.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) STRICT;
      CREATE TABLE entries (idx INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, metadata TEXT) STRICT;
      CREATE TABLE payloads (idx INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT;
      PRAGMA application_id = ${0x4d41434d};
      PRAGMA user_version = 1;
      INSERT INTO meta VALUES ('schema_version', '1'), ('T', '${T}'), ('d', '${d}'), ('dtype', 'float32'),
                              ('model_fingerprint', 'fp'), ('created_at', '2025-01-02T03:04:05.000Z');
    `);
    const ins = v1.prepare("INSERT INTO entries VALUES (?, ?, ?)");
    const pay = v1.prepare("INSERT INTO payloads VALUES (?, ?)");
    for (let k = 0; k < 3; k++) {
      ins.run(k, `old-${k}`, k === 1 ? JSON.stringify({ title: "Second", n: 2 }) : null);
      const f = latentOf(k, T * d);
      pay.run(k, Buffer.from(f.buffer));
    }
    v1.close();

    expectError(() => MemoryBank.open(p, { readonly: true }), "MACLM_BAD_FILE", p, "schema version 1", "migrate");
    const bank = MemoryBank.open(p, { modelFingerprint: "fp" });
    expect(bank.count).toBe(3);
    expect(bank.documents().map((x) => [x.id, x.title, x.chars, x.entries, x.meta, x.addedAt])).toEqual([
      ["old-0", null, 0, 1, null, "2025-01-02T03:04:05.000Z"],
      ["old-1", "Second", 0, 1, { title: "Second", n: 2 }, "2025-01-02T03:04:05.000Z"],
      ["old-2", null, 0, 1, null, "2025-01-02T03:04:05.000Z"],
    ]);
    const all = bank.loadAll();
    expect(Array.from(all.f32)).toEqual([0, 1, 2].flatMap((k) => Array.from(latentOf(k, T * d))));
    bank.putDocument({ id: "new", text: "fresh", entries: entriesOf(9) });
    expect(bank.removeDocument("old-1")).toBe(true);
    expect(bank.entryDocIds()).toEqual(["old-0", "old-2", "new"]);
    bank.close();
    const raw = new Database(p, { readonly: true });
    expect(raw.pragma("user_version", { simple: true })).toBe(3);
    expect(raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe("3");
    raw.close();
    const again = MemoryBank.open(p, { readonly: true }); // version 3 now: readonly is fine
    expect(again.entryDocIds()).toEqual(["old-0", "old-2", "new"]);
    again.close();
    all.dispose();

    // A newer schema than this code knows is refused.
    const future = freshPath();
    MemoryBank.open(future, { T, d }).close();
    const f = new Database(future);
    f.exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
    f.close();
    expectError(() => MemoryBank.open(future), "MACLM_BAD_FILE", "schema version 99");
  });
});
