import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MacLmError } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { cachedFile } from "../../test/helpers/model-cache.js";
import { expectClose } from "../../test/helpers/numeric.js";
import { dequantize, f16Table, ggmlTypeByName, supportedGgmlTypes } from "./dequant.js";
import { type GgufValue, openGguf, unpermuteLlamaQK, unpermuteRows } from "./gguf.js";

const FIX = join(import.meta.dirname, "..", "..", "test", "fixtures", "gguf");
const tmp = mkdtempSync(join(tmpdir(), "maclm-gguf-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Manifest {
  types: {
    file: string;
    expected: string;
    tensors: { name: string; type: string; shape: number[]; expectedOffset: number }[];
  }[];
}
const manifest = JSON.parse(readFileSync(join(FIX, "manifest.json"), "utf8")) as Manifest;

function readExpected(file: string): Float32Array {
  const b = readFileSync(join(FIX, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Bit-exact equality, with any NaN equal to any NaN. */
function expectSameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(actual.length, label).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(expected[i]!) && Number.isNaN(actual[i]!)) continue;
    if (a[i] !== e[i]) expect.fail(`${label}: element ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

function expectBadFile(f: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a MacLmError").toBeInstanceOf(MacLmError);
  expect((err as MacLmError).code).toBe("MACLM_BAD_FILE");
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

describe("dequantisation of every supported type (vs gguf-py)", () => {
  it("covers the types the fixtures were made for", () => {
    expect(new Set(supportedGgmlTypes())).toEqual(new Set(manifest.types.map((t) => t.tensors[0]!.type)));
  });

  for (const entry of manifest.types) {
    const typeName = entry.tensors[0]!.type;
    it(`${typeName}: tensor table and values equal gguf-py's to the bit`, () => {
      const g = openGguf(join(FIX, entry.file));
      const expected = readExpected(entry.expected);
      expect(g.version).toBe(3);
      expect(g.tensors.map((t) => t.name)).toEqual(entry.tensors.map((t) => t.name));
      for (const t of entry.tensors) {
        const info = g.tensor(t.name);
        expect(info.type).toBe(typeName);
        expect(info.shape).toEqual(t.shape);
        expect(info.size).toBe(t.shape[0]! * t.shape[1]!);
        const want = expected.subarray(t.expectedOffset, t.expectedOffset + info.size);
        expectSameBits(g.loadF32(t.name), want, `${typeName}/${t.name}`);
      }
      // load() gives the same values in a native Tensor of the right shape.
      const first = entry.tensors[0]!;
      const tensor = g.load(first.name);
      try {
        expect(tensor.shape).toEqual(first.shape);
        expect(tensor.dtype).toBe("float32");
        expect(tensor.name).toBe(first.name);
        expectSameBits(tensor.f32, expected.subarray(0, tensor.size), `${typeName}/${first.name} via load()`);
      } finally {
        tensor.dispose();
      }
    });
  }

  it("dequantises across read chunks the same as in one go", () => {
    // A Q8_0 tensor bigger than one 4 MiB read: dequantize() on the whole buffer vs the reader's chunked path.
    const type = ggmlTypeByName("Q8_0")!;
    const blocks = 140_000; // 4.76 MB
    const raw = new Uint8Array(blocks * type.typeSize);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
    for (let b = 0; b < blocks; b++) {
      raw[b * 34] = 0x00;
      raw[b * 34 + 1] = 0x3c; // d = 1.0
    }
    const file = join(tmp, "big-q8.gguf");
    writeFileSync(file, buildGguf({ tensors: [{ name: "big", ne: [32, blocks], type: 8, data: raw }] }));
    const whole = new Float32Array(blocks * 32);
    dequantize(type, raw, whole.length, whole);
    expectSameBits(openGguf(file).loadF32("big"), whole, "chunked Q8_0");
  });

  it("f16 table handles zero, subnormals, infinities and NaN", () => {
    const t = f16Table();
    expect(t[0x0000]).toBe(0);
    expect(Object.is(t[0x8000], -0)).toBe(true);
    expect(t[0x3c00]).toBe(1);
    expect(t[0xc000]).toBe(-2);
    expect(t[0x0001]).toBe(2 ** -24);
    expect(t[0x7bff]).toBe(65504);
    expect(t[0x7c00]).toBe(Infinity);
    expect(t[0xfc00]).toBe(-Infinity);
    expect(Number.isNaN(t[0x7e00]!)).toBe(true);
  });
});

// ---- metadata, layout, versions -----------------------------------------------------------------------

interface MetaDoc {
  version: number;
  alignment: number;
  metadata: Record<string, unknown>;
  metadataTypes: Record<string, string>;
  tensors: { name: string; type: string; shape: number[]; offset: number; byteLength: number }[];
  values: Record<string, number[]>;
}
const metaDoc = JSON.parse(readFileSync(join(FIX, "metadata.json"), "utf8")) as MetaDoc;

/** Our value in the JSON form the fixture uses (bigints as {bigint: "..."}, typed arrays as lists). */
function plain(v: GgufValue): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : { bigint: v.toString() };
  if (ArrayBuffer.isView(v)) return Array.from(v as ArrayLike<number | bigint>, (x) => plain(x as GgufValue));
  if (Array.isArray(v)) return v.map((x) => plain(x as GgufValue));
  return v;
}

describe("GGUF metadata and layout", () => {
  const path = join(FIX, "metadata.gguf");

  it("reads every value type, arrays of each and nested arrays", () => {
    const g = openGguf(path);
    expect(g.version).toBe(metaDoc.version);
    for (const [key, want] of Object.entries(metaDoc.metadata)) {
      expect(plain(g.metadata[key]!), key).toEqual(want);
      expect(g.metadataTypes[key], key).toBe(metaDoc.metadataTypes[key]);
    }
    expect(g.metadata["general.architecture"]).toBe("test");
    expect(g.metadata["t.arr_i32"]).toBeInstanceOf(Int32Array);
    expect(g.metadata["t.arr_f32"]).toBeInstanceOf(Float32Array);
    expect(g.metadata["t.arr_u64"]).toBeInstanceOf(BigUint64Array);
    expect(typeof g.metadata["t.u64_small"]).toBe("number");
    expect(typeof g.metadata["t.u64_big"]).toBe("bigint");
  });

  it("honours general.alignment and matches gguf-py's offsets, sizes and shapes (PyTorch order)", () => {
    const g = openGguf(path);
    expect(g.alignment).toBe(64);
    expect(g.dataOffset % 64).toBe(0);
    expect(
      g.tensors.map((t) => ({
        name: t.name,
        type: t.type,
        shape: [...t.shape],
        offset: t.offset,
        byteLength: t.byteLength,
      })),
    ).toEqual(metaDoc.tensors);
    for (const [name, values] of Object.entries(metaDoc.values))
      expectSameBits(g.loadF32(name), Float32Array.from(values), name);
    const t3 = g.load("t3");
    try {
      expect(t3.shape).toEqual([2, 3, 4]);
    } finally {
      t3.dispose();
    }
  });

  it("typed accessors return values and name the key when missing or mistyped", () => {
    const g = openGguf(path);
    expect(g.string("t.string")).toBe("héllo wörld ✓ 日本");
    expect(g.number("t.u32")).toBe(4000000000);
    expect(g.bool("t.bool_true")).toBe(true);
    expect(g.strings("t.arr_str")).toEqual(["a", "", "Ġhello", "日本語"]);
    expect(g.number("t.absent", 7)).toBe(7);
    expectBadFile(() => g.number("t.absent"), "metadata t.absent is missing", "metadata.gguf");
    expectBadFile(() => g.number("t.string"), "metadata t.string is string, expected a number");
    expect(() => g.tensor("nope")).toThrow(/no tensor named "nope"/);
  });

  it("an unsupported tensor type fails on load naming the file, tensor and type", () => {
    const g = openGguf(path);
    expect(g.tensor("unsupported").type).toBe("IQ4_NL");
    expect(g.readRaw("unsupported").length).toBe(18);
    expectBadFile(() => g.load("unsupported"), "metadata.gguf", "tensor unsupported", "IQ4_NL", "not supported");
    expectBadFile(() => g.loadF32("unsupported"), "IQ4_NL");
  });

  it("reads version 2 files (same layout as 3)", () => {
    const bytes = readFileSync(path);
    bytes.writeUInt32LE(2, 4);
    const v2 = join(tmp, "v2.gguf");
    writeFileSync(v2, bytes);
    const g = openGguf(v2);
    expect(g.version).toBe(2);
    expect(plain(g.metadata["t.arr_i64"]!)).toEqual(metaDoc.metadata["t.arr_i64"]);
    expectSameBits(g.loadF32("t2"), Float32Array.from(metaDoc.values.t2!), "v2 t2");
  });
});

// ---- malformed files --------------------------------------------------------------------------------

interface KV {
  key: string;
  type: number;
  value: Buffer;
}
interface TI {
  name: string;
  ne: number[];
  type: number;
  data: Uint8Array;
  offset?: number;
}

const str = (s: string): Buffer => {
  const b = Buffer.from(s, "utf8");
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([n, b]);
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const u64 = (v: number | bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};

/** A minimal GGUF writer for crafting good and bad files byte by byte. */
function buildGguf(o: {
  magic?: string;
  version?: number;
  kvs?: KV[];
  tensors?: TI[];
  tensorCount?: number | bigint;
  kvCount?: number | bigint;
  alignment?: number;
}): Buffer {
  const align = o.alignment ?? 32;
  const kvs = o.kvs ?? [];
  const tensors = o.tensors ?? [];
  const parts: Buffer[] = [
    Buffer.from(o.magic ?? "GGUF", "latin1"),
    u32(o.version ?? 3),
    u64(o.tensorCount ?? tensors.length),
    u64(o.kvCount ?? kvs.length),
  ];
  for (const kv of kvs) parts.push(str(kv.key), u32(kv.type), kv.value);
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const at = t.offset ?? off;
    offsets.push(at);
    parts.push(str(t.name), u32(t.ne.length), ...t.ne.map((d) => u64(d)), u32(t.type), u64(at));
    off = Math.ceil((at + t.data.length) / align) * align;
  }
  let head = Buffer.concat(parts);
  head = Buffer.concat([head, Buffer.alloc(Math.ceil(head.length / align) * align - head.length)]);
  const data = Buffer.alloc(off);
  tensors.forEach((t, i) => data.set(t.data, offsets[i]!));
  return Buffer.concat([head, data]);
}

describe("malformed GGUF files fail with MACLM_BAD_FILE", () => {
  const f32data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  const good = (): Parameters<typeof buildGguf>[0] => ({
    kvs: [{ key: "general.architecture", type: 8, value: str("llama") }],
    tensors: [{ name: "w", ne: [3, 2], type: 0, data: f32data }],
  });
  const write = (name: string, bytes: Buffer): string => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };

  it("a crafted good file reads back", () => {
    const g = openGguf(write("good.gguf", buildGguf(good())));
    expect(g.tensor("w").shape).toEqual([2, 3]);
    expect(Array.from(g.loadF32("w"))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("missing file, bad magic, unsupported or big-endian version", () => {
    expectBadFile(() => openGguf(join(tmp, "absent.gguf")), "absent.gguf", "cannot open");
    expectBadFile(
      () => openGguf(write("magic.gguf", buildGguf({ ...good(), magic: "GGML" }))),
      "magic.gguf",
      'magic is "GGML"',
    );
    expectBadFile(() => openGguf(write("v1.gguf", buildGguf({ ...good(), version: 1 }))), "unsupported GGUF version 1");
    expectBadFile(() => openGguf(write("v4.gguf", buildGguf({ ...good(), version: 4 }))), "unsupported GGUF version 4");
    expectBadFile(() => openGguf(write("be.gguf", buildGguf({ ...good(), version: 0x03000000 }))), "big-endian");
    expectBadFile(() => openGguf(write("tiny.gguf", Buffer.from("GG"))), "not a GGUF file");
  });

  it("truncation anywhere is caught, at open or at load", () => {
    const bytes = buildGguf(good());
    const dataStart = bytes.length - 32; // one padded 24-byte tensor
    for (const cut of [6, 12, 20, 30, 45, 60, 90, 105, dataStart - 1]) {
      expectBadFile(
        () => openGguf(write(`cut${cut}.gguf`, bytes.subarray(0, cut))),
        `cut${cut}.gguf`,
        /truncated|cannot fit/,
      );
    }
    // Cut inside the tensor data: the tensor table names the tensor that runs past the end.
    expectBadFile(
      () => openGguf(write("cutdata.gguf", bytes.subarray(0, dataStart + 10))),
      "tensor w",
      "runs past the end",
    );
  });

  it("counts and lengths larger than the file are refused before allocating", () => {
    expectBadFile(
      () => openGguf(write("kvc.gguf", buildGguf({ ...good(), kvCount: 1n << 40n }))),
      "metadata count",
      "cannot fit",
    );
    expectBadFile(
      () => openGguf(write("tc.gguf", buildGguf({ ...good(), tensorCount: 1n << 40n }))),
      "tensor count",
      "cannot fit",
    );
    expectBadFile(() => openGguf(write("tc64.gguf", buildGguf({ ...good(), tensorCount: 1n << 62n }))), "too large");
    const longString = Buffer.concat([u64(1n << 40n), Buffer.from("abc")]);
    expectBadFile(
      () => openGguf(write("str.gguf", buildGguf({ ...good(), kvs: [{ key: "k", type: 8, value: longString }] }))),
      "metadata k",
      "truncated",
    );
    const bigArray = Buffer.concat([u32(5), u64(1n << 40n)]);
    expectBadFile(
      () => openGguf(write("arr.gguf", buildGguf({ ...good(), kvs: [{ key: "k", type: 9, value: bigArray }] }))),
      "metadata k",
      "array of 1099511627776 int32 cannot fit",
    );
  });

  it("inconsistent contents: value types, duplicates, alignment, dims, offsets, type ids", () => {
    const kv = (k: KV) => ({ ...good(), kvs: [...good().kvs!, k] });
    expectBadFile(
      () => openGguf(write("vt.gguf", buildGguf(kv({ key: "k", type: 13, value: u32(0) })))),
      "unknown metadata value type 13",
    );
    expectBadFile(
      () => openGguf(write("bool.gguf", buildGguf(kv({ key: "k", type: 7, value: Buffer.from([2]) })))),
      "bool byte is 2",
    );
    expectBadFile(
      () => openGguf(write("dup.gguf", buildGguf(kv({ key: "general.architecture", type: 8, value: str("x") })))),
      'duplicate metadata key "general.architecture"',
    );
    expectBadFile(
      () => openGguf(write("align.gguf", buildGguf(kv({ key: "general.alignment", type: 4, value: u32(48) })))),
      "general.alignment must be a power-of-two uint32",
    );
    const t = (over: Partial<TI>) => ({ ...good(), tensors: [{ ...good().tensors![0]!, ...over }] });
    expectBadFile(
      () => openGguf(write("type.gguf", buildGguf(t({ type: 99 })))),
      "tensor w has unknown ggml type id 99",
    );
    expectBadFile(() => openGguf(write("dims.gguf", buildGguf(t({ ne: [1, 1, 1, 1, 6] })))), "tensor w has 5 dims");
    expectBadFile(
      () => openGguf(write("off.gguf", buildGguf(t({ offset: 4 })))),
      "tensor w: data offset 4 is not a multiple of the alignment 32",
    );
    expectBadFile(
      () => openGguf(write("blk.gguf", buildGguf(t({ ne: [16, 1], type: 2, data: new Uint8Array(18) })))),
      "row length 16",
      "Q4_0 block size 32",
    );
    const two = { ...good(), tensors: [good().tensors![0]!, { ...good().tensors![0]!, offset: 32 }] };
    expectBadFile(() => openGguf(write("dupt.gguf", buildGguf(two))), 'duplicate tensor name "w"');
  });
});

// ---- llama.cpp's q/k row permutation ------------------------------------------------------------------

/** llama.cpp's converter permutation (HF -> GGUF), written independently as the thing to invert. */
function permuteLikeLlamaCpp(hf: Float32Array, rows: number, cols: number, nHead: number): Float32Array {
  const out = new Float32Array(hf.length);
  const hs = rows / nHead;
  for (let h = 0; h < nHead; h++)
    for (let r = 0; r < hs; r++) {
      // HF row r of head h = (p, j) with r = p·hs/2 + j goes to row 2j + p.
      const p = Math.floor(r / (hs / 2));
      const j = r % (hs / 2);
      out.set(hf.subarray((h * hs + r) * cols, (h * hs + r + 1) * cols), (h * hs + 2 * j + p) * cols);
    }
  return out;
}

describe("unpermuteLlamaQK", () => {
  it("maps GGUF rows [0 1 2 3] of one head of 4 to HF order [0 2 1 3]", () => {
    const w = Tensor.from([0, 1, 2, 3], [4, 1]);
    const u = unpermuteLlamaQK(w, 1);
    expect(u.toArray()).toEqual([0, 2, 1, 3]);
    w.dispose();
    u.dispose();
  });

  it("inverts llama.cpp's permutation for several heads, weights and biases", () => {
    for (const [nHead, hs, cols] of [
      [3, 8, 5],
      [9, 64, 2],
      [1, 2, 1],
    ] as const) {
      const rows = nHead * hs;
      const hf = Float32Array.from({ length: rows * cols }, (_, i) => i * 0.25 - 3);
      const gguf = Tensor.from(permuteLikeLlamaCpp(hf, rows, cols, nHead), cols === 1 ? [rows] : [rows, cols]);
      const back = unpermuteLlamaQK(gguf, nHead);
      expect(back.shape).toEqual(gguf.shape);
      expectSameBits(back.f32, hf, `nHead ${nHead}`);
      gguf.dispose();
      back.dispose();
    }
    const a = Float32Array.from({ length: 24 }, (_, i) => i);
    const b = new Float32Array(24);
    unpermuteRows(permuteLikeLlamaCpp(a, 12, 2, 2), b, 12, 2, 2);
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it("rejects shapes that do not split into heads of even size", () => {
    const w = Tensor.zeros([6, 2]);
    expect(() => unpermuteLlamaQK(w, 2)).toThrow(/unpermuteLlamaQK: 6 rows do not split into 2 heads of even size/);
    expect(() => unpermuteLlamaQK(w, 0)).toThrow(/unpermuteLlamaQK/);
    const x = Tensor.zeros([2, 2, 2]);
    expect(() => unpermuteLlamaQK(x, 1)).toThrow(
      /expected a weight \[rows, cols\] or a bias \[rows\], got \[2, 2, 2\]/,
    );
    w.dispose();
    x.dispose();
  });
});

// ---- the real SmolLM2 file (from the model cache) ------------------------------------------------------

interface SmolRef {
  file: string;
  sha256: string;
  config: {
    num_hidden_layers: number;
    hidden_size: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    vocab_size: number;
  };
  tensors: {
    gguf: string;
    type: string;
    unpermuteHeads: number;
    shape: number[];
    sum: number;
    sumAbs: number;
    sumSq: number;
    sumWeighted: number;
    rows: Record<string, { head: number[]; sum: number }>;
    indices: number[];
    values: number[];
  }[];
}
const smolRef = JSON.parse(readFileSync(join(FIX, "smollm2_reference.json"), "utf8")) as SmolRef;
const smol = cachedFile(smolRef.file);

describe("SmolLM2-135M-Instruct Q4_1 (real file)", () => {
  it.skipIf(!smol.present)(`metadata and tensor table${smol.skipNote}`, () => {
    const g = openGguf(smol.path);
    expect(g.version).toBe(3);
    expect(g.string("general.architecture")).toBe("llama");
    expect(g.number("llama.block_count")).toBe(smolRef.config.num_hidden_layers);
    expect(g.number("llama.embedding_length")).toBe(smolRef.config.hidden_size);
    expect(g.number("llama.attention.head_count")).toBe(smolRef.config.num_attention_heads);
    expect(g.number("llama.attention.head_count_kv")).toBe(smolRef.config.num_key_value_heads);
    expect(g.strings("tokenizer.ggml.tokens").length).toBe(smolRef.config.vocab_size);
    expect(g.tensors.length).toBe(272);
    expect(g.tensor("token_embd.weight").shape).toEqual([49152, 576]);
    expect(g.tensor("blk.0.attn_k.weight").shape).toEqual([192, 576]);
    const counts: Record<string, number> = {};
    for (const t of g.tensors) counts[t.type] = (counts[t.type] ?? 0) + 1;
    expect(counts).toEqual({ Q4_1: 210, F32: 61, Q8_0: 1 });
  });

  it.skipIf(!smol.present)(
    `dequantised (and q/k-unpermuted) tensors equal transformers' GGUF loading${smol.skipNote}`,
    () => {
      const g = openGguf(smol.path);
      for (const ref of smolRef.tensors) {
        let t = g.load(ref.gguf);
        try {
          expect(g.tensor(ref.gguf).type, ref.gguf).toBe(ref.type);
          if (ref.unpermuteHeads > 0) {
            const u = unpermuteLlamaQK(t, ref.unpermuteHeads);
            t.dispose();
            t = u;
          }
          expect([...t.shape], ref.gguf).toEqual(ref.shape);
          const x = t.f32;
          const cols = t.ndim === 2 ? t.shape[1]! : t.size;
          for (const [row, want] of Object.entries(ref.rows)) {
            const r = x.subarray(Number(row) * cols, (Number(row) + 1) * cols);
            // 9 significant digits identify a float32 exactly: Math.fround recovers it.
            expectClose(
              r.subarray(0, want.head.length),
              want.head.map(Math.fround),
              { rtol: 0, atol: 0 },
              `${ref.gguf} row ${row}`,
            );
            expect(
              r.reduce((a, b) => a + b, 0),
              `${ref.gguf} row ${row} sum`,
            ).toBeCloseTo(want.sum, 4);
          }
          expectClose(
            ref.indices.map((i) => x[i]!),
            ref.values.map(Math.fround),
            { rtol: 0, atol: 0 },
            `${ref.gguf} sampled`,
          );
          let sum = 0;
          let sumAbs = 0;
          let sumSq = 0;
          let sumW = 0;
          for (let i = 0; i < x.length; i++) {
            const v = x[i]!;
            sum += v;
            sumAbs += Math.abs(v);
            sumSq += v * v;
            sumW += v * (i % 1013);
          }
          const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(1, Math.abs(b));
          expect(rel(sum, ref.sum), `${ref.gguf} sum`).toBeLessThan(1e-9);
          expect(rel(sumAbs, ref.sumAbs), `${ref.gguf} sumAbs`).toBeLessThan(1e-9);
          expect(rel(sumSq, ref.sumSq), `${ref.gguf} sumSq`).toBeLessThan(1e-9);
          expect(rel(sumW, ref.sumWeighted), `${ref.gguf} sumWeighted`).toBeLessThan(1e-9);
        } finally {
          t.dispose();
        }
      }
    },
  );
});
