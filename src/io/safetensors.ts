/**
 * Safetensors (Hugging Face's tensor file format): reading, sharded checkpoints, and crash-safe writing.
 *
 * Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON
 *   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * (usually padded with spaces to a multiple of 8), then the data buffer; offsets are relative to its start and
 * data is little-endian, row-major.
 *
 * Reading never loads a whole file: each tensor is read with fs.readSync at its offset straight into the native
 * memory of its Tensor (or, when its dtype must be converted, through a 1 MiB scratch buffer chunk by chunk), so
 * a checkpoint costs its tensors' memory and no more. load() converts:
 *   F64, F32, F16, BF16, F8_E4M3, F8_E5M2, F8_E8M0   -> float32 (default) or float64
 *   I64, I32, I16, I8, U64, U32, U16                  -> int32 (default, range-checked), float32, float64, uint8
 *   U8, BOOL                                          -> uint8 (default), int32, float32, float64
 * Float data is never converted to an integer dtype.
 *
 * Writing (saveSafetensors) produces the same bytes as Python's `safetensors` for the same tensors and
 * metadata: data ordered by dtype (widest first, the reference implementation's order) then name (UTF-8 byte
 * order), header padded with spaces to 8 bytes. The file is written to a temporary file in the target's folder,
 * fsynced, renamed over the target, and the folder fsynced, so a crash leaves either the old file or the new one.
 */
import * as fs from "node:fs";
import { endianness } from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { MacLmError, fmtShape } from "../errors.js";
import type { AnyTypedArray, DType } from "../tensor/dtype.js";
import { Tensor } from "../tensor/tensor.js";

// ---- dtypes ----------------------------------------------------------------------------------------------

/** Element types of the safetensors format that this module understands. */
export type SafetensorsDType =
  | "BOOL"
  | "U8"
  | "I8"
  | "F8_E5M2"
  | "F8_E4M3"
  | "F8_E8M0"
  | "I16"
  | "U16"
  | "F16"
  | "BF16"
  | "I32"
  | "U32"
  | "F32"
  | "F64"
  | "I64"
  | "U64";

/** Bytes per element, and the rank the reference writer orders data by (higher first). */
const DTYPES: Record<SafetensorsDType, { size: number; rank: number; kind: "float" | "int" | "bool" }> = {
  BOOL: { size: 1, rank: 0, kind: "bool" },
  U8: { size: 1, rank: 1, kind: "int" },
  I8: { size: 1, rank: 2, kind: "int" },
  F8_E5M2: { size: 1, rank: 3, kind: "float" },
  F8_E4M3: { size: 1, rank: 4, kind: "float" },
  F8_E8M0: { size: 1, rank: 5, kind: "float" },
  I16: { size: 2, rank: 6, kind: "int" },
  U16: { size: 2, rank: 7, kind: "int" },
  F16: { size: 2, rank: 8, kind: "float" },
  BF16: { size: 2, rank: 9, kind: "float" },
  I32: { size: 4, rank: 10, kind: "int" },
  U32: { size: 4, rank: 11, kind: "int" },
  F32: { size: 4, rank: 12, kind: "float" },
  F64: { size: 8, rank: 13, kind: "float" },
  I64: { size: 8, rank: 14, kind: "int" },
  U64: { size: 8, rank: 15, kind: "int" },
};

const isKnownDType = (d: string): d is SafetensorsDType => Object.hasOwn(DTYPES, d);

/** The dtype load() gives by default: float32 for floating data, int32 for integers, uint8 for U8 and BOOL. */
export function defaultLoadDType(d: SafetensorsDType): DType {
  if (d === "U8" || d === "BOOL") return "uint8";
  return DTYPES[d].kind === "float" ? "float32" : "int32";
}

/** The reference implementation refuses headers above 100 MB; so do we (a bigger length means corruption). */
export const MAX_HEADER_BYTES = 100_000_000;
const CHUNK_BYTES = 1 << 20;
const MAX_IO = 1 << 30;

let scratchBuf: ArrayBuffer | null = null;
let scratchBuf2: ArrayBuffer | null = null;
const scratch = (): ArrayBuffer => (scratchBuf ??= new ArrayBuffer(CHUNK_BYTES));
const scratch2 = (): ArrayBuffer => (scratchBuf2 ??= new ArrayBuffer(CHUNK_BYTES));

function checkHost(): void {
  if (endianness() !== "LE")
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      "safetensors: big-endian hosts are not supported (the format is little-endian)",
    );
}

const badFile = (file: string, message: string, cause?: unknown): MacLmError =>
  new MacLmError("MACLM_BAD_FILE", `${file}: ${message}`, cause === undefined ? undefined : { cause });

// ---- float conversions ------------------------------------------------------------------------------------

let f16Table: Float32Array | null = null;
/** All 65536 float16 values as float32 (exact). */
function f16Values(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (f16Table = t);
}

const f8Tables = new Map<SafetensorsDType, Float32Array>();
/** The 256 values of an 8-bit float format (E4M3 "fn": no infinities; E5M2 IEEE-like; E8M0 powers of two). */
function f8Values(d: SafetensorsDType): Float32Array {
  const cached = f8Tables.get(d);
  if (cached) return cached;
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const s = b & 0x80 ? -1 : 1;
    if (d === "F8_E4M3") {
      const e = (b >> 3) & 0xf;
      const m = b & 7;
      t[b] = e === 15 && m === 7 ? NaN : e === 0 ? s * m * 2 ** -9 : s * (1 + m / 8) * 2 ** (e - 7);
    } else if (d === "F8_E5M2") {
      const e = (b >> 2) & 0x1f;
      const m = b & 3;
      t[b] = e === 31 ? (m ? NaN : s * Infinity) : e === 0 ? s * m * 2 ** -16 : s * (1 + m / 4) * 2 ** (e - 15);
    } else t[b] = b === 255 ? NaN : 2 ** (b - 127); // F8_E8M0
  }
  f8Tables.set(d, t);
  return t;
}

/** float32 bits -> float16 bits, round to nearest even; overflow gives ±inf, NaN stays NaN (quiet). */
export function f32BitsToF16(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // float16 subnormal (or zero): value / 2^-24 = (1.mant) * 2^(e - 14 + 23) -> shift the 24-bit mantissa.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r; // r = 0x400 is the smallest normal, as it should be
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++; // a carry into the exponent (even up to inf) is right
  return sign | r;
}

/** float32 bits -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet). */
export function f32BitsToBF16(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- header parsing ---------------------------------------------------------------------------------------

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute file offsets. */
  start: number;
  end: number;
}

/**
 * Keys of every JSON object in `text` (already known to be valid JSON), to find duplicates that JSON.parse would
 * silently merge. Returns the top-level keys in file order.
 */
function scanKeys(text: string, file: string): string[] {
  interface Frame {
    obj: boolean;
    expectKey: boolean;
    keys: Set<string>;
    last: string;
  }
  const stack: Frame[] = [];
  const top: string[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const f = stack[stack.length - 1];
      if (f?.obj && f.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (f.keys.has(key)) {
          if (stack.length === 1) throw badFile(file, `header: duplicate tensor name "${key}"`);
          const where = stack
            .slice(0, -1)
            .map((s) => s.last)
            .join(".");
          throw badFile(file, `header: duplicate key "${key}" in "${where}"`);
        }
        f.keys.add(key);
        f.last = key;
        f.expectKey = false;
        if (stack.length === 1) top.push(key);
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ obj: c === 0x7b, expectKey: c === 0x7b, keys: new Set(), last: "" });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const f = stack[stack.length - 1];
      if (f) f.expectKey = f.obj;
    }
  }
  return top;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

function parseHeader(
  file: string,
  text: string,
  dataStart: number,
  dataLen: number,
): { entries: Entry[]; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw badFile(file, `header is not valid JSON (${(e as Error).message})`, e);
  }
  if (!isObject(json)) throw badFile(file, `header must be a JSON object, got ${show(json)}`);
  const keys = scanKeys(text, file);
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const name of keys) {
    const v = json[name];
    if (name === "__metadata__") {
      if (!isObject(v)) throw badFile(file, `header: __metadata__ must be an object of strings, got ${show(v)}`);
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== "string") throw badFile(file, `header: __metadata__["${k}"] must be a string, got ${show(s)}`);
        Object.defineProperty(metadata, k, { value: s, enumerable: true, writable: true, configurable: true }); // even "__proto__"
      }
      continue;
    }
    const what = `tensor "${name}"`;
    if (!isObject(v)) throw badFile(file, `${what}: expected {dtype, shape, data_offsets}, got ${show(v)}`);
    const { dtype, shape, data_offsets: offsets } = v;
    if (typeof dtype !== "string") throw badFile(file, `${what}: dtype must be a string, got ${show(dtype)}`);
    if (!isKnownDType(dtype))
      throw badFile(file, `${what}: unknown dtype "${dtype}" (known: ${Object.keys(DTYPES).join(", ")})`);
    if (!Array.isArray(shape) || !shape.every(isCount))
      throw badFile(file, `${what}: shape must be an array of non-negative integers, got ${show(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount))
      throw badFile(
        file,
        `${what}: data_offsets must be [begin, end] with non-negative integers, got ${show(offsets)}`,
      );
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw badFile(file, `${what}: data_offsets [${begin}, ${end}] end before they begin`);
    let count = 1;
    for (const d of shape as number[]) count *= d;
    const need = count * DTYPES[dtype].size;
    if (!Number.isSafeInteger(need)) throw badFile(file, `${what}: shape ${fmtShape(shape as number[])} is too large`);
    if (end - begin !== need)
      throw badFile(
        file,
        `${what}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but shape ${fmtShape(shape as number[])} of ${dtype} needs ${need}`,
      );
    if (end > dataLen)
      throw badFile(
        file,
        `${what}: data_offsets [${begin}, ${end}] run past the end of the data (${dataLen} bytes after the header): the file is truncated or the offsets are wrong`,
      );
    entries.push({ name, dtype, shape: shape as number[], start: dataStart + begin, end: dataStart + end });
  }
  const sorted = entries.filter((e) => e.end > e.start).sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const q = sorted[i]!;
    if (q.start < p.end)
      throw badFile(
        file,
        `tensors "${p.name}" [${p.start - dataStart}, ${p.end - dataStart}] and "${q.name}" [${q.start - dataStart}, ${q.end - dataStart}] have overlapping data_offsets`,
      );
  }
  return { entries, metadata };
}

// ---- reading ----------------------------------------------------------------------------------------------

export interface SafetensorsInfo {
  dtype: SafetensorsDType;
  shape: number[];
  byteLength: number;
}

export interface LoadOptions {
  /** The tensor's dtype (default: defaultLoadDType of the stored dtype). */
  dtype?: DType;
}

/** An open safetensors file, or a sharded checkpoint seen as one. */
export interface SafetensorsReader {
  readonly path: string;
  /** The header's __metadata__ (merged over shards). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names, in file order. */
  readonly names: readonly string[];
  has(name: string): boolean;
  info(name: string): SafetensorsInfo;
  /** A new Tensor (owned by the caller / the current scope) with the named tensor's data. */
  load(name: string, opts?: LoadOptions): Tensor;
  /** Closes the file(s). Idempotent; load() afterwards throws. */
  close(): void;
}

function readFully(fd: number, dst: Uint8Array, position: number, file: string, what: string): void {
  let done = 0;
  while (done < dst.length) {
    const n = fs.readSync(fd, dst, done, Math.min(dst.length - done, MAX_IO), position + done);
    if (n === 0)
      throw badFile(
        file,
        `${what}: unexpected end of file at byte ${position + done} (the file is truncated or changed since it was opened)`,
      );
    done += n;
  }
}

function bytesOf(a: AnyTypedArray | Uint16Array | Uint32Array, count = a.length): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, count * a.BYTES_PER_ELEMENT);
}

const INT_RANGE: Partial<Record<DType, [number, number]>> = { int32: [-0x80000000, 0x7fffffff], uint8: [0, 255] };

/** Converts `count` elements of `src` dtype held at the start of `buf` into dst[off...]. */
function convertChunk(
  src: SafetensorsDType,
  buf: ArrayBuffer,
  count: number,
  dst: AnyTypedArray,
  off: number,
  target: DType,
  where: () => string,
): void {
  const range = INT_RANGE[target];
  const rangeError = (i: number, v: number | bigint): MacLmError =>
    new MacLmError(
      "MACLM_DTYPE_MISMATCH",
      `${where()}: element ${off + i} = ${v} does not fit in ${target}; load it with {dtype: "float64"} instead`,
    );
  switch (src) {
    case "F32":
      dst.set(new Float32Array(buf, 0, count), off);
      return;
    case "F64":
      dst.set(new Float64Array(buf, 0, count), off);
      return;
    case "F16": {
      const s = new Uint16Array(buf, 0, count);
      const t = f16Values();
      for (let i = 0; i < count; i++) dst[off + i] = t[s[i]!]!;
      return;
    }
    case "BF16": {
      const s = new Uint16Array(buf, 0, count);
      if (dst instanceof Float32Array) {
        const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
        for (let i = 0; i < count; i++) bits[off + i] = s[i]! << 16;
      } else {
        const tmp = new Float32Array(1);
        const tmpBits = new Uint32Array(tmp.buffer);
        for (let i = 0; i < count; i++) {
          tmpBits[0] = s[i]! << 16;
          dst[off + i] = tmp[0]!;
        }
      }
      return;
    }
    case "F8_E4M3":
    case "F8_E5M2":
    case "F8_E8M0": {
      const s = new Uint8Array(buf, 0, count);
      const t = f8Values(src);
      for (let i = 0; i < count; i++) dst[off + i] = t[s[i]!]!;
      return;
    }
    case "I64":
    case "U64": {
      const s = src === "I64" ? new BigInt64Array(buf, 0, count) : new BigUint64Array(buf, 0, count);
      const lo = range ? BigInt(range[0]) : 0n;
      const hi = range ? BigInt(range[1]) : 0n;
      for (let i = 0; i < count; i++) {
        const v = s[i]!;
        if (range && (v < lo || v > hi)) throw rangeError(i, v);
        dst[off + i] = Number(v);
      }
      return;
    }
    default: {
      // BOOL, U8, I8, I16, U16, I32, U32: typed-array set converts exactly once the range is known to fit.
      const Ctor = {
        BOOL: Uint8Array,
        U8: Uint8Array,
        I8: Int8Array,
        I16: Int16Array,
        U16: Uint16Array,
        I32: Int32Array,
        U32: Uint32Array,
      }[src];
      const s = new Ctor(buf, 0, count);
      if (range)
        for (let i = 0; i < count; i++) {
          const v = s[i]!;
          if (v < range[0] || v > range[1]) throw rangeError(i, v);
        }
      dst.set(s, off);
    }
  }
}

/** Stored dtype and tensor dtype whose bytes are identical: read straight into the tensor. */
const DIRECT: Partial<Record<SafetensorsDType, DType>> = {
  F32: "float32",
  F64: "float64",
  I32: "int32",
  U8: "uint8",
  BOOL: "uint8",
};

class SafetensorsFile implements SafetensorsReader {
  readonly names: readonly string[];
  private fd: number | null;
  private readonly entries: Map<string, Entry>;

  constructor(
    readonly path: string,
    fd: number,
    entries: Entry[],
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.fd = fd;
    this.entries = new Map(entries.map((e) => [e.name, e]));
    this.names = Object.freeze(entries.map((e) => e.name));
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) {
      const some = this.names
        .slice(0, 5)
        .map((n) => `"${n}"`)
        .join(", ");
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${this.path}: no tensor named "${name}" (${this.names.length} tensors${some ? `: ${some}${this.names.length > 5 ? ", ..." : ""}` : ""})`,
      );
    }
    return e;
  }

  info(name: string): SafetensorsInfo {
    const e = this.entry(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.end - e.start };
  }

  load(name: string, opts: LoadOptions = {}): Tensor {
    const e = this.entry(name);
    if (this.fd === null) throw new MacLmError("MACLM_BAD_ARGUMENT", `${this.path}: load("${name}") after close()`);
    const fd = this.fd;
    const target = opts.dtype ?? defaultLoadDType(e.dtype);
    const where = (): string => `${this.path}: tensor "${name}" (${e.dtype} ${fmtShape(e.shape)})`;
    if (DTYPES[e.dtype].kind === "float" && (target === "int32" || target === "uint8"))
      throw new MacLmError("MACLM_DTYPE_MISMATCH", `${where()}: floating-point data cannot be loaded as ${target}`);
    const t = Tensor.empty(e.shape, target);
    t.name = name;
    try {
      const dst = t.data;
      if (DIRECT[e.dtype] === target) readFully(fd, bytesOf(dst), e.start, this.path, `tensor "${name}"`);
      else {
        const size = DTYPES[e.dtype].size;
        const per = CHUNK_BYTES / size;
        const buf = scratch();
        for (let done = 0; done < t.size; done += per) {
          const count = Math.min(per, t.size - done);
          readFully(fd, new Uint8Array(buf, 0, count * size), e.start + done * size, this.path, `tensor "${name}"`);
          convertChunk(e.dtype, buf, count, dst, done, target, where);
        }
      }
    } catch (err) {
      t.dispose();
      throw err;
    }
    return t;
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Opens and validates a .safetensors file (header only; tensors are read by load()). */
export function openSafetensors(file: string): SafetensorsReader {
  checkHost();
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw badFile(file, `cannot open: ${(e as Error).message}`, e);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8)
      throw badFile(file, `file is ${size} bytes, too short for a safetensors header (8-byte length + JSON)`);
    const lenBytes = new Uint8Array(8);
    readFully(fd, lenBytes, 0, file, "header length");
    const len = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (len > BigInt(MAX_HEADER_BYTES))
      throw badFile(
        file,
        `header length ${len} is over the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file, or corrupted`,
      );
    const n = Number(len);
    if (n > size - 8)
      throw badFile(
        file,
        `header length ${n} is larger than the rest of the file (${size - 8} bytes): truncated or not a safetensors file`,
      );
    if (n < 2) throw badFile(file, `header length ${n} is too small for a JSON object`);
    const headerBytes = new Uint8Array(n);
    readFully(fd, headerBytes, 8, file, "header");
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch (e) {
      throw badFile(file, "header is not valid UTF-8", e);
    }
    const { entries, metadata } = parseHeader(file, text, 8 + n, size - 8 - n);
    return new SafetensorsFile(file, fd, entries, Object.freeze(metadata));
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

// ---- sharded checkpoints ------------------------------------------------------------------------------------

class ShardedSafetensors implements SafetensorsReader {
  readonly names: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;

  constructor(
    readonly path: string,
    private readonly shards: SafetensorsReader[],
    private readonly owner: Map<string, SafetensorsReader>,
    /** The index file's own "metadata" (e.g. total_size), as parsed. */
    readonly indexMetadata: Readonly<Record<string, unknown>>,
  ) {
    this.names = Object.freeze([...owner.keys()]);
    this.metadata = Object.freeze(Object.assign({}, ...shards.map((s) => s.metadata)) as Record<string, string>);
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  private shard(name: string): SafetensorsReader {
    const s = this.owner.get(name);
    if (!s)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${this.path}: no tensor named "${name}" in the weight_map (${this.names.length} tensors)`,
      );
    return s;
  }

  info(name: string): SafetensorsInfo {
    return this.shard(name).info(name);
  }

  load(name: string, opts?: LoadOptions): Tensor {
    return this.shard(name).load(name, opts);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

function openIndex(indexPath: string): SafetensorsReader {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(indexPath, "utf8"));
  } catch (e) {
    throw badFile(indexPath, `cannot read the index: ${(e as Error).message}`, e);
  }
  if (!isObject(json) || !isObject(json.weight_map))
    throw badFile(indexPath, `weight_map: expected an object mapping tensor names to shard files`);
  const dir = path.dirname(path.resolve(indexPath));
  const byFile = new Map<string, SafetensorsReader>();
  const owner = new Map<string, SafetensorsReader>();
  try {
    for (const [name, shard] of Object.entries(json.weight_map)) {
      if (typeof shard !== "string" || shard === "")
        throw badFile(indexPath, `weight_map["${name}"]: expected a shard file name, got ${show(shard)}`);
      const full = path.resolve(dir, shard);
      if (path.relative(dir, full).startsWith("..") || path.isAbsolute(path.relative(dir, full)))
        throw badFile(indexPath, `weight_map["${name}"]: shard "${shard}" lies outside the index's folder`);
      let reader = byFile.get(full);
      if (!reader) {
        if (!fs.existsSync(full)) throw badFile(indexPath, `weight_map["${name}"]: shard file ${full} does not exist`);
        reader = openSafetensors(full);
        byFile.set(full, reader);
      }
      if (!reader.has(name))
        throw badFile(indexPath, `weight_map["${name}"]: shard ${full} has no tensor of that name`);
      owner.set(name, reader);
    }
  } catch (e) {
    for (const r of byFile.values()) r.close();
    throw e;
  }
  const meta = isObject(json.metadata) ? json.metadata : {};
  return new ShardedSafetensors(indexPath, [...byFile.values()], owner, Object.freeze({ ...meta }));
}

/**
 * Opens a checkpoint: a folder (with model.safetensors.index.json, else model.safetensors, else its only
 * *.safetensors.index.json or *.safetensors file), an index .json, or a single .safetensors file. Sharded
 * checkpoints present the same interface over all shards.
 */
export function openSafetensorsDir(dirOrIndex: string): SafetensorsReader {
  checkHost();
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dirOrIndex);
  } catch (e) {
    throw badFile(dirOrIndex, `cannot open: ${(e as Error).message}`, e);
  }
  if (!stat.isDirectory()) return dirOrIndex.endsWith(".json") ? openIndex(dirOrIndex) : openSafetensors(dirOrIndex);
  const index = path.join(dirOrIndex, "model.safetensors.index.json");
  if (fs.existsSync(index)) return openIndex(index);
  const single = path.join(dirOrIndex, "model.safetensors");
  if (fs.existsSync(single)) return openSafetensors(single);
  const files = fs.readdirSync(dirOrIndex);
  const indexes = files.filter((f) => f.endsWith(".safetensors.index.json"));
  if (indexes.length === 1) return openIndex(path.join(dirOrIndex, indexes[0]!));
  const tensors = files.filter((f) => f.endsWith(".safetensors"));
  if (indexes.length === 0 && tensors.length === 1) return openSafetensors(path.join(dirOrIndex, tensors[0]!));
  throw badFile(
    dirOrIndex,
    `no model.safetensors.index.json or model.safetensors here, and no single other checkpoint to choose (found ${indexes.length} index files, ${tensors.length} .safetensors files)`,
  );
}

// ---- writing ------------------------------------------------------------------------------------------------

export interface SaveOptions {
  /** Stored dtype of floating-point tensors (default: their own, F32 or F64). float64 data converts via float32. */
  dtype?: "float32" | "float16" | "bfloat16";
}

const utf8 = new TextEncoder();

function writeFully(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, MAX_IO));
}

function storedDType(t: Tensor, opts: SaveOptions): SafetensorsDType {
  switch (t.dtype) {
    case "int32":
      return "I32";
    case "uint8":
      return "U8";
    default:
      if (opts.dtype === "float16") return "F16";
      if (opts.dtype === "bfloat16") return "BF16";
      if (opts.dtype === "float32") return "F32";
      return t.dtype === "float64" ? "F64" : "F32";
  }
}

/** Writes `t`'s data as `dtype` (its own bytes, or converted in chunks). */
function writeTensor(fd: number, t: Tensor, dtype: SafetensorsDType): void {
  const src = t.data;
  if (DIRECT[dtype] === t.dtype) return writeFully(fd, bytesOf(src));
  const per = CHUNK_BYTES / 4;
  for (let done = 0; done < t.size; done += per) {
    const count = Math.min(per, t.size - done);
    let f32: Float32Array;
    if (src instanceof Float32Array) f32 = src.subarray(done, done + count);
    else {
      f32 = new Float32Array(scratch2(), 0, count);
      f32.set(src.subarray(done, done + count));
    }
    if (dtype === "F32") {
      writeFully(fd, bytesOf(f32));
      continue;
    }
    const bits = new Uint32Array(f32.buffer, f32.byteOffset, count);
    const out = new Uint16Array(scratch(), 0, count);
    if (dtype === "F16") for (let i = 0; i < count; i++) out[i] = f32BitsToF16(bits[i]!);
    else for (let i = 0; i < count; i++) out[i] = f32BitsToBF16(bits[i]!);
    writeFully(fd, bytesOf(out));
  }
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch (e) {
    // Some platforms and file systems cannot fsync a directory; the rename itself has still happened.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "EINVAL" && code !== "EPERM" && code !== "EBADF" && code !== "ENOTSUP") throw e;
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/**
 * Writes `tensors` (name -> Tensor) and optional string `metadata` to `file`, crash-safely (temporary file,
 * fsync, rename, fsync of the folder). Float tensors are stored as opts.dtype when given (float16/bfloat16
 * rounded to nearest even), else as their own dtype; int32 as I32, uint8 as U8.
 */
export function saveSafetensors(
  file: string,
  tensors: Readonly<Record<string, Tensor>> | ReadonlyMap<string, Tensor>,
  metadata?: Readonly<Record<string, string>>,
  opts: SaveOptions = {},
): void {
  checkHost();
  const list =
    tensors instanceof Map ? [...(tensors as ReadonlyMap<string, Tensor>).entries()] : Object.entries(tensors);
  if (opts.dtype !== undefined && !["float32", "float16", "bfloat16"].includes(opts.dtype))
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `saveSafetensors ${file}: dtype must be float32, float16 or bfloat16, got ${show(opts.dtype)}`,
    );
  const items = list.map(([name, t]) => {
    if (typeof name !== "string" || name === "__metadata__")
      throw new MacLmError("MACLM_BAD_ARGUMENT", `saveSafetensors ${file}: invalid tensor name ${show(name)}`);
    if (!(t instanceof Tensor))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `saveSafetensors ${file}: "${name}" is not a Tensor`);
    if (t.disposed)
      throw new MacLmError(
        "MACLM_DISPOSED",
        `saveSafetensors ${file}: tensor "${name}" ${fmtShape(t.shape)} was disposed`,
      );
    return { name, t, dtype: storedDType(t, opts) };
  });
  if (metadata !== undefined)
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== "string")
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `saveSafetensors ${file}: metadata["${k}"] must be a string, got ${show(v)}`,
        );
  items.sort((a, b) => DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || compareUtf8(a.name, b.name));

  // Header, in the reference writer's form: __metadata__ (keys sorted) first, then tensors in data order.
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(",")}}`);
  }
  let offset = 0;
  for (const it of items) {
    const bytes = it.t.size * DTYPES[it.dtype].size;
    parts.push(
      `${JSON.stringify(it.name)}:{"dtype":"${it.dtype}","shape":[${it.t.shape.join(",")}],"data_offsets":[${offset},${offset + bytes}]}`,
    );
    offset += bytes;
  }
  const json = utf8.encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);

  const target = path.resolve(file);
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, "wx");
    writeFully(fd, head);
    for (const it of items) writeTensor(fd, it.t, it.dtype);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (e instanceof MacLmError) throw e;
    throw badFile(file, `cannot write: ${(e as Error).message}`, e);
  }
  fsyncDir(dir);
}
