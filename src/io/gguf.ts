/**
 * GGUF reader (versions 2 and 3, little-endian), the file format of llama.cpp/ggml.
 *
 * Layout: magic "GGUF", version u32, tensor_count u64, kv_count u64; kv_count key/values (key: string,
 * type: u32, value); tensor_count tensor infos (name: string, n_dims: u32, ne[n_dims]: u64, type: u32,
 * offset: u64 relative to the data section); padding to `general.alignment` (default 32); the data section.
 * Strings are u64 length + UTF-8 bytes; arrays are element type u32 + count u64 + elements.
 *
 * ggml's ne[] lists dimensions innermost first; `shape` here is PyTorch order (outermost first), i.e. ne reversed:
 * a Linear weight with ne = [in, out] has shape [out, in], rows contiguous.
 *
 * Everything read from the file is checked before use: counts and lengths against the bytes left, tensor data
 * ranges against the file size, offsets against the alignment. Problems throw MacLmError MACLM_BAD_FILE naming
 * the file (and the key or tensor).
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { MacLmError, ShapeError, fmtShape } from "../errors.js";
import { Tensor } from "../tensor/tensor.js";
import { type GgmlTypeInfo, byteLengthOf, dequantize, ggmlTypes, unsupportedType } from "./dequant.js";

/** Metadata value types, as GGUF numbers them. */
export const GGUF_VALUE_TYPES = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "bool",
  "string",
  "array",
  "uint64",
  "int64",
  "float64",
] as const;
export type GgufValueTypeName = (typeof GGUF_VALUE_TYPES)[number];

export type GgufNumericArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array;

/**
 * A metadata value. 64-bit integers are numbers when they are safe integers, bigints otherwise. Arrays of numbers
 * are typed arrays of the element type (64-bit ones BigUint64Array/BigInt64Array); arrays of strings, bools and
 * arrays are plain arrays.
 */
export type GgufValue = number | bigint | boolean | string | GgufNumericArray | string[] | boolean[] | GgufValue[];

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml type name ("F32", "Q4_K", ...). */
  readonly type: string;
  readonly typeId: number;
  /** PyTorch order (outermost first): ggml's ne[] reversed. */
  readonly shape: readonly number[];
  /** Element count. */
  readonly size: number;
  /** Absolute byte offset of the tensor's data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface GgufFile {
  readonly path: string;
  readonly version: number;
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
  readonly metadata: Readonly<Record<string, GgufValue>>;
  /** Type of each metadata value: "uint32", "string", "array<string>", "array<array<int32>>", ... */
  readonly metadataTypes: Readonly<Record<string, string>>;
  readonly tensors: readonly GgufTensorInfo[];
  tensor(name: string): GgufTensorInfo;
  has(name: string): boolean;
  /** The tensor dequantised to a new float32 Tensor of its shape (native memory; dispose() it). */
  load(name: string): Tensor;
  /** The tensor dequantised into plain JS memory. */
  loadF32(name: string): Float32Array;
  /** The tensor's raw bytes as stored (quantised blocks for quantised types). */
  readRaw(name: string): Uint8Array;
  /** Typed metadata accessors: throw MACLM_BAD_FILE naming the key when it is missing or of another type. */
  string(key: string, fallback?: string): string;
  number(key: string, fallback?: number): number;
  bool(key: string, fallback?: boolean): boolean;
  strings(key: string): string[];
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const MAX_DIMS = 4;
const CHUNK = 1 << 20;
const CHUNK_READ = 4 << 20;

const bad = (path: string, msg: string): MacLmError => new MacLmError("MACLM_BAD_FILE", `${path}: ${msg}`);

/** Sequential little-endian reads through a growing window over a file descriptor, bounds-checked. */
class FileReader {
  private buf = new Uint8Array(0);
  private dv = new DataView(this.buf.buffer);
  private bufStart = 0;
  pos = 0;
  private readonly decoder = new TextDecoder("utf-8");

  constructor(
    private readonly fd: number,
    readonly size: number,
    readonly path: string,
  ) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Makes bytes [pos, pos + n) available in the window; `what` names the field for the error. */
  private need(n: number, what: string): number {
    if (n > this.remaining)
      throw bad(
        this.path,
        `truncated file: ${what} needs ${n} bytes at offset ${this.pos}, only ${this.remaining} left`,
      );
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return rel;
    const len = Math.min(Math.max(n, CHUNK), this.remaining);
    const buf = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const r = readSync(this.fd, buf, got, len - got, this.pos + got);
      if (r === 0) throw bad(this.path, `truncated file: could not read ${what} at offset ${this.pos}`);
      got += r;
    }
    this.buf = buf;
    this.dv = new DataView(buf.buffer);
    this.bufStart = this.pos;
    return 0;
  }

  u8(what: string): number {
    const r = this.need(1, what);
    this.pos += 1;
    return this.buf[r]!;
  }
  i8(what: string): number {
    const r = this.need(1, what);
    this.pos += 1;
    return this.dv.getInt8(r);
  }
  u16(what: string): number {
    const r = this.need(2, what);
    this.pos += 2;
    return this.dv.getUint16(r, true);
  }
  i16(what: string): number {
    const r = this.need(2, what);
    this.pos += 2;
    return this.dv.getInt16(r, true);
  }
  u32(what: string): number {
    const r = this.need(4, what);
    this.pos += 4;
    return this.dv.getUint32(r, true);
  }
  i32(what: string): number {
    const r = this.need(4, what);
    this.pos += 4;
    return this.dv.getInt32(r, true);
  }
  f32(what: string): number {
    const r = this.need(4, what);
    this.pos += 4;
    return this.dv.getFloat32(r, true);
  }
  f64(what: string): number {
    const r = this.need(8, what);
    this.pos += 8;
    return this.dv.getFloat64(r, true);
  }
  u64big(what: string): bigint {
    const r = this.need(8, what);
    this.pos += 8;
    return this.dv.getBigUint64(r, true);
  }
  i64big(what: string): bigint {
    const r = this.need(8, what);
    this.pos += 8;
    return this.dv.getBigInt64(r, true);
  }
  /** A u64 that must be a safe integer (counts, lengths, offsets, dims). */
  u64(what: string): number {
    const v = this.u64big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(this.path, `${what} is ${v}, too large`);
    return Number(v);
  }
  bytes(n: number, what: string): Uint8Array {
    const r = this.need(n, what);
    this.pos += n;
    return this.buf.subarray(r, r + n);
  }
  string(what: string): string {
    const n = this.u64(`${what} length`);
    if (n > this.remaining)
      throw bad(
        this.path,
        `truncated file: ${what} says ${n} bytes at offset ${this.pos}, only ${this.remaining} left`,
      );
    return this.decoder.decode(this.bytes(n, what));
  }
  /** Reads `count` fixed-size elements into a typed array (copying, so the window can move). */
  typed<T>(count: number, elem: number, what: string, make: (buf: ArrayBuffer) => T): T {
    const n = count * elem;
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const take = Math.min(n - done, CHUNK);
      out.set(this.bytes(take, what), done);
      done += take;
    }
    return make(out.buffer);
  }
}

/** Smallest encoded size of a value of each type (to bound counts before allocating). */
const minSize = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

function readValue(r: FileReader, type: number, what: string, depth: number): [GgufValue, string] {
  switch (type) {
    case 0:
      return [r.u8(what), "uint8"];
    case 1:
      return [r.i8(what), "int8"];
    case 2:
      return [r.u16(what), "uint16"];
    case 3:
      return [r.i16(what), "int16"];
    case 4:
      return [r.u32(what), "uint32"];
    case 5:
      return [r.i32(what), "int32"];
    case 6:
      return [r.f32(what), "float32"];
    case 7: {
      const b = r.u8(what);
      if (b > 1) throw bad(r.path, `${what}: bool byte is ${b}`);
      return [b === 1, "bool"];
    }
    case 8:
      return [r.string(what), "string"];
    case 9:
      return readArray(r, what, depth);
    case 10: {
      const v = r.u64big(what);
      return [v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v, "uint64"];
    }
    case 11: {
      const v = r.i64big(what);
      return [v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v, "int64"];
    }
    case 12:
      return [r.f64(what), "float64"];
    default:
      throw bad(r.path, `${what}: unknown metadata value type ${type}`);
  }
}

function readArray(r: FileReader, what: string, depth: number): [GgufValue, string] {
  if (depth > 8) throw bad(r.path, `${what}: arrays nested too deeply`);
  const et = r.u32(`${what} element type`);
  if (et >= minSize.length) throw bad(r.path, `${what}: unknown array element type ${et}`);
  const n = r.u64(`${what} count`);
  if (n * minSize[et]! > r.remaining)
    throw bad(r.path, `${what}: array of ${n} ${GGUF_VALUE_TYPES[et]} cannot fit in the ${r.remaining} bytes left`);
  const tn = `array<${GGUF_VALUE_TYPES[et]}>`;
  switch (et) {
    case 0:
      return [r.typed(n, 1, what, (b) => new Uint8Array(b)), tn];
    case 1:
      return [r.typed(n, 1, what, (b) => new Int8Array(b)), tn];
    case 2:
      return [r.typed(n, 2, what, (b) => new Uint16Array(b)), tn];
    case 3:
      return [r.typed(n, 2, what, (b) => new Int16Array(b)), tn];
    case 4:
      return [r.typed(n, 4, what, (b) => new Uint32Array(b)), tn];
    case 5:
      return [r.typed(n, 4, what, (b) => new Int32Array(b)), tn];
    case 6:
      return [r.typed(n, 4, what, (b) => new Float32Array(b)), tn];
    case 10:
      return [r.typed(n, 8, what, (b) => new BigUint64Array(b)), tn];
    case 11:
      return [r.typed(n, 8, what, (b) => new BigInt64Array(b)), tn];
    case 12:
      return [r.typed(n, 8, what, (b) => new Float64Array(b)), tn];
    case 7: {
      const out: boolean[] = new Array<boolean>(n);
      for (let i = 0; i < n; i++) out[i] = readValue(r, 7, what, depth)[0] as boolean;
      return [out, tn];
    }
    case 8: {
      const out: string[] = new Array<string>(n);
      for (let i = 0; i < n; i++) out[i] = r.string(`${what}[${i}]`);
      return [out, tn];
    }
    default: {
      // Arrays of arrays: each element carries its own element type.
      const out: GgufValue[] = new Array<GgufValue>(n);
      let inner = "array";
      for (let i = 0; i < n; i++) {
        const [v, t] = readArray(r, `${what}[${i}]`, depth + 1);
        out[i] = v;
        inner = t;
      }
      return [out, `array<${inner}>`];
    }
  }
}

/** Reads a GGUF file's header, metadata and tensor table (tensor data is read on load()). */
export function openGguf(path: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new MacLmError("MACLM_BAD_FILE", `${path}: cannot open GGUF file (${(e as Error).message})`, { cause: e });
  }
  try {
    return parse(fd, path);
  } finally {
    closeSync(fd);
  }
}

function parse(fd: number, path: string): GgufFile {
  const size = fstatSync(fd).size;
  const r = new FileReader(fd, size, path);
  if (size < 4) throw bad(path, `not a GGUF file (${size} bytes)`);
  const magic = r.u32("magic");
  if (magic !== MAGIC) {
    const seen = Buffer.from(new Uint32Array([magic]).buffer).toString("latin1");
    throw bad(path, `not a GGUF file: magic is ${JSON.stringify(seen)}, expected "GGUF"`);
  }
  const version = r.u32("version");
  if (version !== 2 && version !== 3) {
    const swapped =
      ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
    if (swapped === 2 || swapped === 3) throw bad(path, `big-endian GGUF (version ${swapped}) is not supported`);
    throw bad(path, `unsupported GGUF version ${version} (supported: 2, 3)`);
  }
  const tensorCount = r.u64("tensor count");
  const kvCount = r.u64("metadata count");
  // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8 + 4 + 4 + 8.
  if (kvCount * 13 > r.remaining) throw bad(path, `metadata count ${kvCount} cannot fit in a ${size}-byte file`);
  if (tensorCount * 24 > r.remaining) throw bad(path, `tensor count ${tensorCount} cannot fit in a ${size}-byte file`);

  const metadata: Record<string, GgufValue> = Object.create(null) as Record<string, GgufValue>;
  const metadataTypes: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(`metadata key #${i}`);
    if (key in metadata) throw bad(path, `duplicate metadata key ${JSON.stringify(key)}`);
    const type = r.u32(`type of metadata ${key}`);
    const [value, typeName] = readValue(r, type, `metadata ${key}`, 0);
    metadata[key] = value;
    metadataTypes[key] = typeName;
  }

  let alignment = DEFAULT_ALIGNMENT;
  if ("general.alignment" in metadata) {
    const a = metadata["general.alignment"];
    if (metadataTypes["general.alignment"] !== "uint32" || typeof a !== "number" || a === 0 || (a & (a - 1)) !== 0)
      throw bad(
        path,
        `general.alignment must be a power-of-two uint32, got ${String(a)} (${metadataTypes["general.alignment"]})`,
      );
    alignment = a;
  }

  interface Raw {
    name: string;
    type: GgmlTypeInfo;
    ne: number[];
    size: number;
    rel: number;
    byteLength: number;
  }
  const raws: Raw[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = r.string(`name of tensor #${i}`);
    if (seen.has(name)) throw bad(path, `duplicate tensor name ${JSON.stringify(name)}`);
    seen.add(name);
    const nDims = r.u32(`dims of tensor ${name}`);
    if (nDims > MAX_DIMS) throw bad(path, `tensor ${name} has ${nDims} dims (at most ${MAX_DIMS})`);
    const ne: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const v = r.u64(`dim ${d} of tensor ${name}`);
      ne.push(v);
      count *= v;
      if (count > Number.MAX_SAFE_INTEGER) throw bad(path, `tensor ${name} has too many elements`);
    }
    const typeId = r.u32(`type of tensor ${name}`);
    const type = ggmlTypes.get(typeId);
    if (type === undefined) throw bad(path, `tensor ${name} has unknown ggml type id ${typeId}`);
    const rel = r.u64(`offset of tensor ${name}`);
    if ((ne[0] ?? 1) % type.blockSize !== 0)
      throw bad(
        path,
        `tensor ${name}: row length ${ne[0] ?? 1} is not a multiple of the ${type.name} block size ${type.blockSize}`,
      );
    if (rel % alignment !== 0)
      throw bad(path, `tensor ${name}: data offset ${rel} is not a multiple of the alignment ${alignment}`);
    raws.push({ name, type, ne, size: count, rel, byteLength: byteLengthOf(type, count) });
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = raws.map((t) => {
    const offset = dataOffset + t.rel;
    if (offset + t.byteLength > size)
      throw bad(
        path,
        `truncated file: tensor ${t.name} (${t.type.name}, ${t.byteLength} bytes at ${offset}) runs past the end of the ${size}-byte file`,
      );
    return Object.freeze({
      name: t.name,
      type: t.type.name,
      typeId: t.type.id,
      shape: Object.freeze([...t.ne].reverse()),
      size: t.size,
      offset,
      byteLength: t.byteLength,
    });
  });
  const byName = new Map(tensors.map((t) => [t.name, t]));

  const info = (name: string): GgufTensorInfo => {
    const t = byName.get(name);
    if (t === undefined) throw new MacLmError("MACLM_BAD_ARGUMENT", `${path}: no tensor named ${JSON.stringify(name)}`);
    return t;
  };
  const readRaw = (name: string): Uint8Array => {
    const t = info(name);
    const out = new Uint8Array(t.byteLength);
    withFile(path, t, (fd) => readRange(fd, path, t, 0, out));
    return out;
  };
  const dequantInto = (t: GgufTensorInfo, out: Float32Array): void => {
    const type = ggmlTypes.get(t.typeId)!;
    const where = `${path}: tensor ${t.name}`;
    if (!type.supported) throw unsupportedType(type, where);
    if (type.name === "F32") {
      withFile(path, t, (fd) => readRange(fd, path, t, 0, new Uint8Array(out.buffer, out.byteOffset, t.byteLength)));
      return;
    }
    // Whole blocks, ~4 MiB of file at a time, so a big tensor never needs its raw bytes in memory at once.
    const blocks = t.size / type.blockSize;
    const step = Math.max(1, Math.floor(CHUNK_READ / type.typeSize));
    const raw = new Uint8Array(Math.min(blocks, step) * type.typeSize);
    withFile(path, t, (fd) => {
      for (let b = 0; b < blocks; b += step) {
        const nb = Math.min(step, blocks - b);
        const bytes = raw.subarray(0, nb * type.typeSize);
        readRange(fd, path, t, b * type.typeSize, bytes);
        dequantize(type, bytes, nb * type.blockSize, out.subarray(b * type.blockSize), where);
      }
    });
  };
  const meta = <T>(key: string, kind: string, check: (v: GgufValue) => boolean, fallback: T | undefined): T => {
    if (!(key in metadata)) {
      if (fallback !== undefined) return fallback;
      throw bad(path, `metadata ${key} is missing`);
    }
    const v = metadata[key]!;
    if (!check(v)) throw bad(path, `metadata ${key} is ${metadataTypes[key]}, expected ${kind}`);
    return v as T;
  };

  return Object.freeze({
    path,
    version,
    alignment,
    dataOffset,
    fileSize: size,
    metadata: Object.freeze(metadata),
    metadataTypes: Object.freeze(metadataTypes),
    tensors: Object.freeze(tensors),
    tensor: info,
    has: (name: string) => byName.has(name),
    readRaw,
    loadF32(name: string): Float32Array {
      const t = info(name);
      const out = new Float32Array(t.size);
      dequantInto(t, out);
      return out;
    },
    load(name: string): Tensor {
      const t = info(name);
      const type = ggmlTypes.get(t.typeId)!;
      if (!type.supported) throw unsupportedType(type, `${path}: tensor ${t.name}`);
      const out = Tensor.empty(t.shape, "float32");
      try {
        dequantInto(t, out.f32);
      } catch (e) {
        out.dispose();
        throw e;
      }
      out.name = t.name;
      return out;
    },
    string: (key: string, fallback?: string) => meta<string>(key, "string", (v) => typeof v === "string", fallback),
    number: (key: string, fallback?: number) => meta<number>(key, "a number", (v) => typeof v === "number", fallback),
    bool: (key: string, fallback?: boolean) => meta<boolean>(key, "bool", (v) => typeof v === "boolean", fallback),
    strings: (key: string) =>
      meta<string[]>(key, "array<string>", (v) => Array.isArray(v) && v.every((x) => typeof x === "string"), undefined),
  });
}

/** Opens the file for reading tensor t's data and runs `f` with the descriptor. */
function withFile<R>(path: string, t: GgufTensorInfo, f: (fd: number) => R): R {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${path}: cannot reopen to read tensor ${t.name} (${(e as Error).message})`,
      { cause: e },
    );
  }
  try {
    return f(fd);
  } finally {
    closeSync(fd);
  }
}

/** Reads bytes [from, from + out.length) of tensor t's data. */
function readRange(fd: number, path: string, t: GgufTensorInfo, from: number, out: Uint8Array): void {
  let got = 0;
  while (got < out.length) {
    const n = readSync(fd, out, got, out.length - got, t.offset + from + got);
    if (n === 0) throw bad(path, `truncated file: tensor ${t.name} ends at byte ${t.offset + from + got}`);
    got += n;
  }
}

/**
 * Undoes llama.cpp's reordering of Llama q/k projection rows. Its converter (convert_hf_to_gguf.py, `permute`)
 * stores, within each head of size HS, HF row p·HS/2 + j (p ∈ {0, 1}, j < HS/2) at row 2j + p, interleaving the
 * two rotary halves for ggml's RoPE. This maps them back: out[h·HS + p·HS/2 + j] = in[h·HS + 2j + p].
 * `nHead` is the number of heads of this projection (attention heads for q, key/value heads for k).
 * Works on a weight [NH·HS, C] or a bias [NH·HS]; returns a new tensor.
 */
export function unpermuteLlamaQK(weight: Tensor, nHead: number): Tensor {
  const rows = weight.shape[0];
  if (weight.ndim < 1 || weight.ndim > 2 || rows === undefined)
    throw new ShapeError(
      "unpermuteLlamaQK",
      `expected a weight [rows, cols] or a bias [rows], got ${fmtShape(weight.shape)}`,
    );
  if (!Number.isInteger(nHead) || nHead <= 0 || rows % (2 * nHead) !== 0)
    throw new ShapeError(
      "unpermuteLlamaQK",
      `${rows} rows do not split into ${nHead} heads of even size (shape ${fmtShape(weight.shape)})`,
    );
  const cols = weight.ndim === 2 ? weight.shape[1]! : 1;
  const out = Tensor.empty(weight.shape, weight.dtype);
  // Any typed array works the same way (subarray/set); the cast only satisfies the signature.
  unpermuteRows(weight.data as Float32Array, out.data as Float32Array, rows, cols, nHead);
  if (weight.name !== undefined) out.name = weight.name;
  return out;
}

/** unpermuteLlamaQK on plain row-major arrays ([rows, cols]); src and dst must not overlap. */
export function unpermuteRows(src: Float32Array, dst: Float32Array, rows: number, cols: number, nHead: number): void {
  const hs = rows / nHead;
  const half = hs / 2;
  for (let h = 0; h < nHead; h++)
    for (let p = 0; p < 2; p++)
      for (let j = 0; j < half; j++) {
        const from = (h * hs + 2 * j + p) * cols;
        const to = (h * hs + p * half + j) * cols;
        dst.set(src.subarray(from, from + cols), to);
      }
}
