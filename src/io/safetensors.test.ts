import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MacLmError } from "../errors.js";
import type { DType } from "../tensor/dtype.js";
import { Tensor, liveNativeMemory } from "../tensor/index.js";
import {
  type SafetensorsDType,
  defaultLoadDType,
  f32BitsToBF16,
  f32BitsToF16,
  openSafetensors,
  openSafetensorsDir,
  saveSafetensors,
} from "./safetensors.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const fixtures = path.join(root, "test", "fixtures", "safetensors");

type Num = number | "nan" | "inf" | "-inf" | "-0";
interface Expected {
  dtypes: {
    metadata: Record<string, string>;
    tensors: Record<string, { dtype: SafetensorsDType; shape: number[]; values: Num[] }>;
  };
  layout: { metadata: Record<string, string> };
  rounding: { source_f32: Num[] };
  sharded: { tensors: Record<string, { shape: number[]; values: Num[] }> };
}
const expected = JSON.parse(fs.readFileSync(path.join(fixtures, "expected.json"), "utf8")) as Expected;
const num = (v: Num): number =>
  v === "nan" ? NaN : v === "inf" ? Infinity : v === "-inf" ? -Infinity : v === "-0" ? -0 : v;

/** Exact elementwise equality, telling -0 from 0 and treating NaN as equal to NaN. */
function expectSame(actual: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  expect(actual.length, `${label} length`).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(actual[i], want[i]))
      expect.fail(
        `${label}[${i}]: got ${Object.is(actual[i], -0) ? "-0" : actual[i]}, expected ${Object.is(want[i], -0) ? "-0" : want[i]}`,
      );
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

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "maclm-st-"));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A raw file: 8-byte length (default: the header's) + header text (or bytes) + data. */
function rawFile(
  name: string,
  header: string | Uint8Array,
  data: Uint8Array = new Uint8Array(0),
  len?: bigint,
): string {
  const h = typeof header === "string" ? Buffer.from(header, "utf8") : Buffer.from(header);
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(len ?? BigInt(h.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([lenBuf, h, Buffer.from(data)]));
  return file;
}

const f32Entry = (shape: number[], begin: number, end: number) => ({ dtype: "F32", shape, data_offsets: [begin, end] });

describe("reading files written by Python's safetensors", () => {
  const file = path.join(fixtures, "dtypes.safetensors");
  const want = expected.dtypes.tensors;

  it("lists names, metadata and info", () => {
    const r = openSafetensors(file);
    try {
      expect([...r.names].sort()).toEqual(Object.keys(want).sort());
      expect(r.metadata).toEqual(expected.dtypes.metadata);
      for (const [name, w] of Object.entries(want)) {
        const info = r.info(name);
        expect(info.dtype, name).toBe(w.dtype);
        expect(info.shape, name).toEqual(w.shape);
        const size = {
          BOOL: 1,
          U8: 1,
          I8: 1,
          F8_E4M3: 1,
          F8_E5M2: 1,
          F8_E8M0: 1,
          I16: 2,
          U16: 2,
          F16: 2,
          BF16: 2,
          I32: 4,
          U32: 4,
          F32: 4,
          F64: 8,
          I64: 8,
          U64: 8,
        }[w.dtype];
        expect(info.byteLength, name).toBe(w.values.length * size);
        expect(r.has(name)).toBe(true);
      }
      expect(r.has("nope")).toBe(false);
      expectError(() => r.info("nope"), "MACLM_BAD_ARGUMENT", file, 'no tensor named "nope"');
    } finally {
      r.close();
    }
  });

  it("loads every dtype exactly as float64", () => {
    const r = openSafetensors(file);
    try {
      for (const [name, w] of Object.entries(want)) {
        const t = r.load(name, { dtype: "float64" });
        expect(t.dtype).toBe("float64");
        expect(t.shape).toEqual(w.shape);
        expect(t.name).toBe(name);
        expectSame(t.data, w.values.map(num), name);
        t.dispose();
      }
    } finally {
      r.close();
    }
  });

  it("loads with the default dtypes (float32 / int32 with a range check / uint8)", () => {
    const r = openSafetensors(file);
    try {
      for (const [name, w] of Object.entries(want)) {
        const dt = defaultLoadDType(w.dtype);
        expect(dt).toBe(
          w.dtype === "U8" || w.dtype === "BOOL" ? "uint8" : /^(F|BF)/.test(w.dtype) ? "float32" : "int32",
        );
        const values = w.values.map(num);
        if (dt === "int32" && values.some((v) => v < -(2 ** 31) || v >= 2 ** 31)) {
          const bad = values.findIndex((v) => v < -(2 ** 31) || v >= 2 ** 31);
          expectError(
            () => r.load(name),
            "MACLM_DTYPE_MISMATCH",
            file,
            `tensor "${name}"`,
            `element ${bad} = ${values[bad]}`,
            "int32",
          );
          continue;
        }
        const t = r.load(name);
        expect(t.dtype, name).toBe(dt);
        expectSame(t.data, dt === "float32" ? values.map(Math.fround) : values, name);
        t.dispose();
      }
    } finally {
      r.close();
    }
  });

  it("converts integers to other dtypes with range checks, and refuses float -> int", () => {
    const r = openSafetensors(file);
    try {
      const cases: [string, DType, number[]][] = [
        ["bool", "float32", [1, 0, 1]],
        ["bool", "int32", [1, 0, 1]],
        ["u8", "int32", [0, 255, 17]],
        ["i64", "float32", [-(2 ** 31), 2 ** 31, 0, -7]], // 2^31 - 1 rounds to 2^31 in float32
        ["u16", "float32", [0, 65535, 300]],
        ["i8", "float64", [-128, 127, -3]],
      ];
      for (const [name, dtype, values] of cases) {
        const t = r.load(name, { dtype });
        expect(t.dtype).toBe(dtype);
        expectSame(t.data, values, `${name} as ${dtype}`);
        t.dispose();
      }
      expectError(
        () => r.load("i16", { dtype: "uint8" }),
        "MACLM_DTYPE_MISMATCH",
        'tensor "i16"',
        "element 0 = -32768",
        "uint8",
      );
      expectError(() => r.load("u16", { dtype: "uint8" }), "MACLM_DTYPE_MISMATCH", "element 1 = 65535");
      expectError(
        () => r.load("f16", { dtype: "int32" }),
        "MACLM_DTYPE_MISMATCH",
        'tensor "f16"',
        "cannot be loaded as int32",
      );
      expectError(() => r.load("f32", { dtype: "uint8" }), "MACLM_DTYPE_MISMATCH", "cannot be loaded as uint8");
    } finally {
      r.close();
    }
  });

  it("does not leak native memory when a load fails, and refuses load() after close()", () => {
    const r = openSafetensors(file);
    const before = liveNativeMemory();
    expect(() => r.load("i64.big")).toThrow(MacLmError);
    expect(liveNativeMemory()).toEqual(before);
    r.close();
    r.close(); // idempotent
    expectError(() => r.load("f32"), "MACLM_BAD_ARGUMENT", "after close()");
  });
});

describe("sharded checkpoints", () => {
  const dir = path.join(fixtures, "sharded");
  const want = expected.sharded.tensors;

  it("opens a folder or its index, presenting all shards as one", () => {
    for (const p of [dir, path.join(dir, "model.safetensors.index.json")]) {
      const r = openSafetensorsDir(p);
      try {
        expect([...r.names]).toEqual(Object.keys(want).sort());
        expect(r.metadata).toEqual({ format: "pt" });
        expect(r.info("layers.0.w")).toEqual({ dtype: "F16", shape: [3, 3], byteLength: 18 });
        expect(r.info("layers.1.w").dtype).toBe("BF16");
        for (const [name, w] of Object.entries(want)) {
          const t = r.load(name, { dtype: "float64" });
          expect(t.shape).toEqual(w.shape);
          expectSame(t.data, w.values.map(num), name);
          t.dispose();
        }
        expectError(() => r.load("missing"), "MACLM_BAD_ARGUMENT", 'no tensor named "missing"');
      } finally {
        r.close();
      }
    }
  });

  it("opens a folder holding a single model.safetensors, or a .safetensors path", () => {
    const d = fs.mkdtempSync(path.join(tmp, "single-"));
    fs.copyFileSync(path.join(fixtures, "layout.safetensors"), path.join(d, "model.safetensors"));
    for (const p of [d, path.join(d, "model.safetensors")]) {
      const r = openSafetensorsDir(p);
      expect([...r.names].sort()).toEqual(["a.empty", "b.f32", "ids", "mask", "w.f32", "w.f64", "z.scalar"]);
      r.close();
    }
    expectError(
      () => openSafetensorsDir(fs.mkdtempSync(path.join(tmp, "none-"))),
      "MACLM_BAD_FILE",
      "no model.safetensors.index.json or model.safetensors",
    );
  });

  it("reports broken indexes naming the index and the entry", () => {
    const d = fs.mkdtempSync(path.join(tmp, "shards-"));
    for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(d, f));
    const index = path.join(d, "model.safetensors.index.json");
    const original = JSON.parse(fs.readFileSync(index, "utf8")) as { weight_map: Record<string, string> };
    const withMap = (m: Record<string, unknown>) => fs.writeFileSync(index, JSON.stringify({ weight_map: m }));

    withMap({ ...original.weight_map, "head.bias": "model-00001-of-00002.safetensors" });
    expectError(
      () => openSafetensorsDir(d),
      "MACLM_BAD_FILE",
      index,
      'weight_map["head.bias"]',
      "has no tensor of that name",
    );
    withMap({ ...original.weight_map, extra: "model-00003-of-00003.safetensors" });
    expectError(() => openSafetensorsDir(d), "MACLM_BAD_FILE", 'weight_map["extra"]', "does not exist");
    withMap({ x: "../escape.safetensors" });
    expectError(() => openSafetensorsDir(d), "MACLM_BAD_FILE", 'weight_map["x"]', "outside the index's folder");
    withMap({ x: 3 });
    expectError(() => openSafetensorsDir(d), "MACLM_BAD_FILE", 'weight_map["x"]', "expected a shard file name");
    fs.writeFileSync(index, "{not json");
    expectError(() => openSafetensorsDir(d), "MACLM_BAD_FILE", index, "cannot read the index");
    fs.writeFileSync(index, "{}");
    expectError(() => openSafetensorsDir(d), "MACLM_BAD_FILE", "weight_map: expected an object");
  });
});

describe("writing", () => {
  it("round-trips float32, float64, int32 and uint8 tensors, scalars and empty tensors", () => {
    const tensors = {
      "layer.w": Tensor.from(
        Array.from({ length: 12 }, (_, i) => Math.sin(i) * 100),
        [3, 4],
      ),
      "layer.b": Tensor.from([1e-300, -0, Math.PI], [3], "float64"),
      ids: Tensor.from([-(2 ** 31), 2 ** 31 - 1, 0, 42], [2, 2], "int32"),
      mask: Tensor.from([0, 1, 255, 7, 0, 0, 1], [7], "uint8"),
      scalar: Tensor.scalar(-2.5),
      empty: Tensor.zeros([0, 4]),
      "ünï 🙂": Tensor.from([1, 2], [1, 2]),
    };
    const file = path.join(tmp, "roundtrip.safetensors");
    const meta = { format: "pt", 'key with "quotes"\n': "välue" };
    saveSafetensors(file, tensors, meta);
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(Number(fs.readFileSync(file).readBigUInt64LE(0)) % 8, "header padded to 8 bytes").toBe(0);
    const r = openSafetensors(file);
    try {
      expect([...r.names].sort()).toEqual(Object.keys(tensors).sort());
      expect(r.metadata).toEqual(meta);
      for (const [name, t] of Object.entries(tensors)) {
        const back = r.load(name, { dtype: t.dtype });
        expect(back.shape).toEqual(t.shape);
        expectSame(back.data, t.data, name);
        back.dispose();
      }
      expect(r.info("layer.b").dtype).toBe("F64");
      expect(r.info("ids").dtype).toBe("I32");
      expect(r.info("mask").dtype).toBe("U8");
    } finally {
      r.close();
    }
    // A Map works too, and the layout is deterministic: same tensors, same bytes.
    const again = path.join(tmp, "roundtrip2.safetensors");
    saveSafetensors(again, new Map(Object.entries(tensors).reverse()), meta);
    expect(fs.readFileSync(again).equals(fs.readFileSync(file))).toBe(true);
    for (const t of Object.values(tensors)) t.dispose();
  });

  it("writes the same bytes as Python's safetensors (F32, F64, I32, U8, metadata, scalar, empty)", () => {
    const src = path.join(fixtures, "layout.safetensors");
    const r = openSafetensors(src);
    const tensors = Object.fromEntries(
      r.names.map((n) => [n, r.load(n, { dtype: r.info(n).dtype === "F64" ? "float64" : undefined })]),
    );
    r.close();
    const file = path.join(tmp, "layout.safetensors");
    saveSafetensors(file, tensors, expected.layout.metadata);
    expect(fs.readFileSync(file).equals(fs.readFileSync(src))).toBe(true);
    for (const t of Object.values(tensors)) t.dispose();
  });

  it("rounds float32 to float16 and bfloat16 to nearest even, byte-identical with torch", () => {
    // Same bytes, except that NaN may be any NaN pattern (torch writes bfloat16 NaN as 0xffff, we as 0x7fc0).
    const sameFile = (ours: Buffer, theirs: Buffer, label: string): void => {
      expect(ours.length, label).toBe(theirs.length);
      const n = 8 + Number(theirs.readBigUInt64LE(0));
      expect(ours.subarray(0, n).equals(theirs.subarray(0, n)), `${label} header`).toBe(true);
      const nanMin = label.startsWith("bfloat16") ? 0x7f80 : 0x7c00;
      let compared = 0;
      for (let i = n; i < theirs.length; i += 2) {
        const [a, b] = [ours.readUInt16LE(i), theirs.readUInt16LE(i)];
        if ((b & 0x7fff) > nanMin)
          expect(a & 0x7fff, `${label}: NaN at element ${(i - n) / 2}`).toBeGreaterThan(nanMin);
        else if (a !== b)
          expect.fail(`${label}: element ${(i - n) / 2}: got 0x${a.toString(16)}, torch 0x${b.toString(16)}`);
        else compared++;
      }
      expect(compared).toBe(70); // 71 values, one NaN
    };
    const x = Tensor.from(new Float32Array(expected.rounding.source_f32.map(num)));
    for (const [dtype, fixture] of [
      ["float16", "f16"],
      ["bfloat16", "bf16"],
    ] as const) {
      const file = path.join(tmp, `${fixture}.safetensors`);
      const theirs = fs.readFileSync(path.join(fixtures, `${fixture}.safetensors`));
      saveSafetensors(file, { x }, undefined, { dtype });
      sameFile(fs.readFileSync(file), theirs, dtype);
      // float64 tensors convert through float32: same result here, since the sources are float32 values.
      const x64 = x.to("float64");
      saveSafetensors(file, { x: x64 }, undefined, { dtype });
      sameFile(fs.readFileSync(file), theirs, `${dtype} from float64`);
      x64.dispose();
    }
    x.dispose();
  });

  it("float16 conversion: every finite value round-trips; every midpoint rounds to the even neighbour", () => {
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    const decode = (h: number): number => {
      const s = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    };
    for (let h = 0; h < 0x10000; h++) {
      const v = decode(h);
      f[0] = v;
      const got = f32BitsToF16(bits[0]!);
      if (Number.isNaN(v)) expect(decode(got)).toBeNaN();
      else if (got !== h) expect.fail(`f16 ${h.toString(16)} -> ${got.toString(16)}`);
      if ((h & 0x7fff) < 0x7c00 && (h & 0x7fff) < 0x7bff) {
        // Midpoint to the next value away from zero (exact in float32): ties go to the even mantissa.
        const next = decode(h + 1);
        f[0] = (v + next) / 2;
        const mid = f32BitsToF16(bits[0]!);
        const even = h & 1 ? h + 1 : h;
        if (mid !== even)
          expect.fail(`midpoint above ${h.toString(16)} -> ${mid.toString(16)}, expected ${even.toString(16)}`);
      }
    }
    f[0] = 65520; // halfway between 65504 and the next step (65536): rounds to even, i.e. infinity
    expect(f32BitsToF16(bits[0]!)).toBe(0x7c00);
    f[0] = -1e9;
    expect(f32BitsToF16(bits[0]!)).toBe(0xfc00);
    f[0] = NaN;
    expect(f32BitsToF16(bits[0]!) & 0x7fff).toBeGreaterThan(0x7c00);
    f[0] = NaN;
    expect(f32BitsToBF16(bits[0]!) & 0x7fff).toBeGreaterThan(0x7f80);
    bits[0] = 0x3f808000; // 1 + 2^-8: halfway between bf16 1 and 1 + 2^-7 -> 1
    expect(f32BitsToBF16(bits[0]!)).toBe(0x3f80);
    bits[0] = 0x3f818000; // halfway above an odd mantissa -> up
    expect(f32BitsToBF16(bits[0]!)).toBe(0x3f82);
  });

  it("reads back float16/bfloat16 files it wrote", () => {
    const x = Tensor.from([1, -0.5, 65504, 2 ** -24, 3.140625, 0.1], [2, 3]);
    const file = path.join(tmp, "half.safetensors");
    saveSafetensors(file, { x }, { a: "b" }, { dtype: "float16" });
    let r = openSafetensors(file);
    expect(r.info("x")).toEqual({ dtype: "F16", shape: [2, 3], byteLength: 12 });
    let back = r.load("x");
    expectSame(back.data, [1, -0.5, 65504, 2 ** -24, 3.140625, 0.0999755859375], "f16");
    back.dispose();
    r.close();
    saveSafetensors(file, { x }, undefined, { dtype: "bfloat16" });
    r = openSafetensors(file);
    back = r.load("x", { dtype: "float64" });
    expectSame(back.data, [1, -0.5, 65536, 2 ** -24, 3.140625, 0.10009765625], "bf16");
    back.dispose();
    r.close();
    x.dispose();
  });

  it("replaces files atomically and leaves the old file and no temp file when it fails", () => {
    const d = fs.mkdtempSync(path.join(tmp, "atomic-"));
    const file = path.join(d, "ckpt.safetensors");
    const a = Tensor.from([1, 2, 3]);
    saveSafetensors(file, { a });
    const before = fs.readFileSync(file);
    const b = Tensor.from([4, 5]);
    b.dispose();
    expectError(() => saveSafetensors(file, { a, b }), "MACLM_DISPOSED", 'tensor "b"');
    expectError(() => saveSafetensors(file, { __metadata__: a }), "MACLM_BAD_ARGUMENT", "invalid tensor name");
    expectError(
      () => saveSafetensors(file, { a }, { k: 1 as unknown as string }),
      "MACLM_BAD_ARGUMENT",
      'metadata["k"] must be a string',
    );
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    // The rename fails (the target is a folder) after the data was written: the temp file must go.
    const asDir = path.join(d, "dir.safetensors");
    fs.mkdirSync(asDir);
    expectError(() => saveSafetensors(asDir, { a }), "MACLM_BAD_FILE", asDir, "cannot write");
    expect(fs.readdirSync(d).sort()).toEqual(["ckpt.safetensors", "dir.safetensors"]);
    // Overwrite.
    saveSafetensors(file, { a, c: Tensor.from([9]) });
    const r = openSafetensors(file);
    expect([...r.names]).toEqual(["a", "c"]);
    r.close();
    expect(fs.readdirSync(d).sort()).toEqual(["ckpt.safetensors", "dir.safetensors"]);
    a.dispose();
  });
});

describe("corrupt files", () => {
  const good = (name: string) =>
    rawFile(name, JSON.stringify({ a: f32Entry([2, 2], 0, 16), b: f32Entry([1], 16, 20) }), new Uint8Array(20));

  it("accepts a well-formed raw file (the baseline for the cases below)", () => {
    const r = openSafetensors(good("ok.safetensors"));
    expect([...r.names]).toEqual(["a", "b"]);
    r.close();
  });

  const cases: [string, () => string, string[]][] = [
    [
      "too short",
      () => {
        const f = path.join(tmp, "short.safetensors");
        fs.writeFileSync(f, Buffer.from([1, 0, 0]));
        return f;
      },
      ["3 bytes, too short"],
    ],
    [
      "header length past the file",
      () => rawFile("len.safetensors", "{}", new Uint8Array(0), 1000n),
      ["header length 1000 is larger than the rest of the file (2 bytes)"],
    ],
    [
      "oversized header length",
      () => rawFile("huge.safetensors", "{}", new Uint8Array(0), 1n << 40n),
      ["header length 1099511627776 is over the 100000000-byte limit"],
    ],
    ["invalid JSON", () => rawFile("json.safetensors", '{"a": {"dtype": '), ["header is not valid JSON"]],
    [
      "invalid UTF-8",
      () => rawFile("utf8.safetensors", new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
      ["header is not valid UTF-8"],
    ],
    ["not an object", () => rawFile("array.safetensors", "[1, 2]"), ["header must be a JSON object"]],
    [
      "unknown dtype",
      () =>
        rawFile(
          "dtype.safetensors",
          JSON.stringify({ a: { dtype: "F7", shape: [1], data_offsets: [0, 4] } }),
          new Uint8Array(4),
        ),
      ['tensor "a": unknown dtype "F7"'],
    ],
    [
      "bad shape",
      () => rawFile("shape.safetensors", JSON.stringify({ a: f32Entry([-1, 2], 0, 8) }), new Uint8Array(8)),
      ['tensor "a": shape must be an array of non-negative integers, got [-1,2]'],
    ],
    [
      "bad data_offsets",
      () =>
        rawFile(
          "offs.safetensors",
          JSON.stringify({ a: { dtype: "F32", shape: [1], data_offsets: [0] } }),
          new Uint8Array(4),
        ),
      ['tensor "a": data_offsets must be [begin, end]'],
    ],
    [
      "reversed data_offsets",
      () => rawFile("rev.safetensors", JSON.stringify({ a: f32Entry([1], 8, 4) }), new Uint8Array(8)),
      ['tensor "a": data_offsets [8, 4] end before they begin'],
    ],
    [
      "offsets not matching shape",
      () => rawFile("size.safetensors", JSON.stringify({ a: f32Entry([2, 2], 0, 12) }), new Uint8Array(16)),
      ['tensor "a": data_offsets [0, 12] span 12 bytes, but shape [2, 2] of F32 needs 16'],
    ],
    [
      "offsets past the data",
      () =>
        rawFile(
          "past.safetensors",
          JSON.stringify({ a: f32Entry([2, 2], 0, 16), b: f32Entry([2], 16, 24) }),
          new Uint8Array(20),
        ),
      ['tensor "b": data_offsets [16, 24] run past the end of the data (20 bytes', "truncated"],
    ],
    [
      "overlapping offsets",
      () =>
        rawFile(
          "overlap.safetensors",
          JSON.stringify({ a: f32Entry([4], 0, 16), b: f32Entry([2], 8, 16) }),
          new Uint8Array(16),
        ),
      ['tensors "a" [0, 16] and "b" [8, 16] have overlapping data_offsets'],
    ],
    [
      "duplicate names",
      () =>
        rawFile(
          "dup.safetensors",
          `{"a": ${JSON.stringify(f32Entry([1], 0, 4))}, "a": ${JSON.stringify(f32Entry([1], 4, 8))}}`,
          new Uint8Array(8),
        ),
      ['duplicate tensor name "a"'],
    ],
    [
      "duplicate field",
      () =>
        rawFile(
          "dupfield.safetensors",
          '{"a": {"dtype": "F32", "dtype": "F16", "shape": [1], "data_offsets": [0, 4]}}',
          new Uint8Array(4),
        ),
      ['duplicate key "dtype" in "a"'],
    ],
    [
      "non-string metadata",
      () => rawFile("meta.safetensors", JSON.stringify({ __metadata__: { step: 3 } })),
      ['__metadata__["step"] must be a string, got 3'],
    ],
    [
      "entry not an object",
      () => rawFile("entry.safetensors", JSON.stringify({ a: [1, 2] })),
      ['tensor "a": expected {dtype, shape, data_offsets}'],
    ],
    [
      "truncated file",
      () => {
        const f = good("trunc.safetensors");
        fs.truncateSync(f, fs.statSync(f).size - 3);
        return f;
      },
      ['tensor "b": data_offsets [16, 20] run past the end of the data (17 bytes', "truncated"],
    ],
    ["missing file", () => path.join(tmp, "does-not-exist.safetensors"), ["cannot open", "ENOENT"]],
  ];
  for (const [label, make, parts] of cases)
    it(`rejects: ${label}`, () => {
      const file = make();
      expectError(() => openSafetensors(file), "MACLM_BAD_FILE", file, ...parts);
    });

  it("a file truncated after it was opened fails at load() with a clear error", () => {
    const file = good("late.safetensors");
    const r = openSafetensors(file);
    fs.truncateSync(file, fs.statSync(file).size - 10);
    const before = liveNativeMemory();
    expectError(() => r.load("a"), "MACLM_BAD_FILE", file, 'tensor "a"', "unexpected end of file");
    expect(liveNativeMemory()).toEqual(before);
    r.close();
  });
});

describe("memory", () => {
  it("loads a large tensor without holding the file in memory (peak RSS of a child process)", () => {
    // 32 MiB of F32 (read straight into the tensor) and 16 MiB of F16 (converted chunk by chunk into 32 MiB of
    // float32). Reading the file into a JS buffer first would add the file's size to the peak. The child resets
    // its peak-RSS counter (VmHWM, Linux /proc/self/clear_refs) just before each load; where that is unavailable
    // it reports the lifetime peak instead, which only gives a weaker check.
    const n = 8 << 20;
    const big = Tensor.empty([n]);
    for (let i = 0; i < n; i += 4099) big.f32[i] = i % 2048;
    const f32File = path.join(tmp, "big-f32.safetensors");
    const f16File = path.join(tmp, "big-f16.safetensors");
    saveSafetensors(f32File, { w: big });
    saveSafetensors(f16File, { w: big }, undefined, { dtype: "float16" });
    big.dispose();

    const mod = pathToFileURL(path.join(here, "safetensors.ts")).href;
    const script = `
      import * as fs from "node:fs";
      const { openSafetensors } = await import(${JSON.stringify(mod)});
      const status = () => { try { return fs.readFileSync("/proc/self/status", "utf8"); } catch { return ""; } };
      const hwm = () => { const m = /VmHWM:\\s+(\\d+) kB/.exec(status()); return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024; };
      let resettable = true;
      const out = {};
      for (const [key, file] of [["f32", ${JSON.stringify(f32File)}], ["f16", ${JSON.stringify(f16File)}]]) {
        const r = openSafetensors(file);
        globalThis.gc();
        try { fs.writeFileSync("/proc/self/clear_refs", "5"); } catch { resettable = false; }
        const before = process.memoryUsage.rss();
        const t = r.load("w");
        out[key] = { delta: hwm() - before, bytes: t.size * 4, check: t.data[4099 * 7], resettable };
        t.dispose();
        r.close();
      }
      process.stdout.write(JSON.stringify(out));
    `;
    const stdout = execFileSync(
      process.execPath,
      ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: root,
        encoding: "utf8",
        // No allocator cache: a block freed by one load must not be reused by the next (its pages are resident).
        env: { ...process.env, NODE_OPTIONS: "", MACLM_ALLOC_CACHE_MB: "0" },
      },
    );
    const res = JSON.parse(stdout) as Record<
      "f32" | "f16",
      { delta: number; bytes: number; check: number; resettable: boolean }
    >;
    for (const k of ["f32", "f16"] as const) {
      expect(res[k].check, k).toBe((4099 * 7) % 2048);
      expect(res[k].bytes).toBe(32 << 20);
      // Growth of peak RSS during the load: the tensor plus the 1 MiB scratch and noise; a copy of the file
      // (32 or 16 MiB) would not fit under this bound.
      if (res[k].resettable) expect(res[k].delta, `${k} peak RSS growth`).toBeLessThan(res[k].bytes + (8 << 20));
      else expect(res[k].delta).toBeGreaterThan(0);
    }
  });
});
