/**
 * ggml tensor types and their dequantisation to float32.
 *
 * Block layouts (all little-endian; "f16" is an IEEE half; a block covers `blockSize` consecutive elements of a
 * row, and rows are whole blocks):
 *   F32, F16, BF16, F64      plain scalars.
 *   Q4_0  (32 el, 18 B)      d:f16, qs[16]. x[j] = d·((qs[j] & 15) − 8), x[j+16] = d·((qs[j] >> 4) − 8).
 *   Q4_1  (32 el, 20 B)      d:f16, m:f16, qs[16]. x = d·q + m with q the nibbles as in Q4_0 (no −8).
 *   Q5_0  (32 el, 22 B)      d:f16, qh:u32, qs[16]. 5th bit of x[j] is bit j of qh, of x[j+16] bit j+16;
 *                            x = d·(q − 16).
 *   Q5_1  (32 el, 24 B)      d:f16, m:f16, qh:u32, qs[16]. x = d·q + m.
 *   Q8_0  (32 el, 34 B)      d:f16, qs[32] int8. x = d·q.
 *   Q2_K  (256 el, 84 B)     scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), d:f16, dmin:f16.
 *                            16 sub-blocks of 16, scale d·(sc & 15), min dmin·(sc >> 4); element 128h + 32g + l
 *                            (l < 32) is bits 2g..2g+1 of qs[32h + l]; x = scale·q − min.
 *   Q3_K  (256 el, 110 B)    hmask[32], qs[64] (low 2 bits), scales[12] (16 packed 6-bit scales, biased by 32),
 *                            d:f16. q = low2 − (hmask bit set ? 0 : 4); x = d·(scale − 32)·q.
 *   Q4_K  (256 el, 144 B)    d:f16, dmin:f16, scales[12] (8 packed 6-bit scales and 8 mins), qs[128].
 *                            8 sub-blocks of 32: sub-block 2c takes the low nibbles of qs[32c..32c+31], 2c+1 the
 *                            high ones; x = d·sc·q − dmin·m.
 *   Q5_K  (256 el, 176 B)    d, dmin, scales[12] as Q4_K, qh[32], qs[128]; 5th bit of element l of sub-block s is
 *                            bit s of qh[l].
 *   Q6_K  (256 el, 210 B)    ql[128], qh[64], scales[16] int8, d:f16. 16 sub-blocks of 16, q 6-bit biased by 32.
 * Results equal ggml's (and gguf-py's) to the bit: every product is exact in float64 and rounded once to float32.
 */
import { MacLmError } from "../errors.js";

export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  /** Elements per block (1 for plain scalar types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** Whether dequantise() handles it. */
  readonly supported: boolean;
}

const table: Array<[number, string, number, number, boolean]> = [
  [0, "F32", 1, 4, true],
  [1, "F16", 1, 2, true],
  [2, "Q4_0", 32, 18, true],
  [3, "Q4_1", 32, 20, true],
  [6, "Q5_0", 32, 22, true],
  [7, "Q5_1", 32, 24, true],
  [8, "Q8_0", 32, 34, true],
  [9, "Q8_1", 32, 36, false],
  [10, "Q2_K", 256, 84, true],
  [11, "Q3_K", 256, 110, true],
  [12, "Q4_K", 256, 144, true],
  [13, "Q5_K", 256, 176, true],
  [14, "Q6_K", 256, 210, true],
  [15, "Q8_K", 256, 292, false],
  [16, "IQ2_XXS", 256, 66, false],
  [17, "IQ2_XS", 256, 74, false],
  [18, "IQ3_XXS", 256, 98, false],
  [19, "IQ1_S", 256, 50, false],
  [20, "IQ4_NL", 32, 18, false],
  [21, "IQ3_S", 256, 110, false],
  [22, "IQ2_S", 256, 82, false],
  [23, "IQ4_XS", 256, 136, false],
  [24, "I8", 1, 1, false],
  [25, "I16", 1, 2, false],
  [26, "I32", 1, 4, false],
  [27, "I64", 1, 8, false],
  [28, "F64", 1, 8, true],
  [29, "IQ1_M", 256, 56, false],
  [30, "BF16", 1, 2, true],
  [34, "TQ1_0", 256, 54, false],
  [35, "TQ2_0", 256, 66, false],
  [39, "MXFP4", 32, 17, false],
];

/** Every ggml type a GGUF file may name, by id. */
export const ggmlTypes: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  table.map(([id, name, blockSize, typeSize, supported]) => [
    id,
    Object.freeze({ id, name, blockSize, typeSize, supported }),
  ]),
);

export const ggmlTypeByName = (name: string): GgmlTypeInfo | undefined =>
  [...ggmlTypes.values()].find((t) => t.name === name);

/** The names of the types dequantise() supports. */
export const supportedGgmlTypes = (): string[] => [...ggmlTypes.values()].filter((t) => t.supported).map((t) => t.name);

// ---- scalar conversions ------------------------------------------------------------------------------------

let halfTable: Float32Array | null = null;

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 value of every half-precision bit pattern (built once, 256 KB). */
export function f16Table(): Float32Array {
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

// ---- dequantisation ----------------------------------------------------------------------------------------

/** Bytes that `n` elements of `type` occupy (n must be a whole number of blocks). */
export function byteLengthOf(type: GgmlTypeInfo, n: number): number {
  return (n / type.blockSize) * type.typeSize;
}

/**
 * Dequantises `n` elements of ggml type `type` from `src` (at least byteLengthOf(type, n) bytes) into `out`
 * (offset 0, at least n floats). `where` names the file and tensor for error messages.
 */
export function dequantize(type: GgmlTypeInfo, src: Uint8Array, n: number, out: Float32Array, where = "tensor"): void {
  if (!type.supported) throw unsupportedType(type, where);
  if (n % type.blockSize !== 0)
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${where}: ${n} elements of ${type.name} are not whole blocks of ${type.blockSize}`,
    );
  const need = byteLengthOf(type, n);
  if (src.length < need)
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${where}: ${type.name} data is ${src.length} bytes, ${n} elements need ${need}`,
    );
  if (out.length < n)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: output has ${out.length} floats, need ${n}`);
  const nb = n / type.blockSize;
  switch (type.name) {
    case "F32":
      return f32(src, n, out);
    case "F64":
      return f64(src, n, out);
    case "F16":
      return f16(src, n, out);
    case "BF16":
      return bf16(src, n, out);
    case "Q4_0":
      return q4_0(src, nb, out);
    case "Q4_1":
      return q4_1(src, nb, out);
    case "Q5_0":
      return q5_0(src, nb, out);
    case "Q5_1":
      return q5_1(src, nb, out);
    case "Q8_0":
      return q8_0(src, nb, out);
    case "Q2_K":
      return q2_k(src, nb, out);
    case "Q3_K":
      return q3_k(src, nb, out);
    case "Q4_K":
      return q4_k(src, nb, out);
    case "Q5_K":
      return q5_k(src, nb, out);
    case "Q6_K":
      return q6_k(src, nb, out);
    default:
      throw unsupportedType(type, where);
  }
}

/** The error for a tensor of a type dequantize() does not handle; `where` names the file and tensor. */
export function unsupportedType(type: GgmlTypeInfo, where: string): MacLmError {
  return new MacLmError(
    "MACLM_BAD_FILE",
    `${where}: ggml type ${type.name} (${type.id}) is not supported; supported: ${supportedGgmlTypes().join(", ")}`,
  );
}

function f32(src: Uint8Array, n: number, out: Float32Array): void {
  if (src.byteOffset % 4 === 0) out.set(new Float32Array(src.buffer, src.byteOffset, n));
  else new Uint8Array(out.buffer, out.byteOffset, n * 4).set(src.subarray(0, n * 4));
}

function f64(src: Uint8Array, n: number, out: Float32Array): void {
  const dv = new DataView(src.buffer, src.byteOffset, n * 8);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
}

function f16(src: Uint8Array, n: number, out: Float32Array): void {
  const t = f16Table();
  for (let i = 0; i < n; i++) out[i] = t[src[2 * i]! | (src[2 * i + 1]! << 8)]!;
}

function bf16(src: Uint8Array, n: number, out: Float32Array): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, n);
  for (let i = 0; i < n; i++) bits[i] = ((src[2 * i]! | (src[2 * i + 1]! << 8)) << 16) >>> 0;
}

function q4_0(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 18, y += 32) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const q = s[o + 2 + j]!;
      out[y + j] = ((q & 15) - 8) * d;
      out[y + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

function q4_1(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 20, y += 32) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    const m = t[s[o + 2]! | (s[o + 3]! << 8)]!;
    for (let j = 0; j < 16; j++) {
      const q = s[o + 4 + j]!;
      out[y + j] = (q & 15) * d + m;
      out[y + j + 16] = (q >> 4) * d + m;
    }
  }
}

function q5_0(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 22, y += 32) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    const qh = (s[o + 2]! | (s[o + 3]! << 8) | (s[o + 4]! << 16) | (s[o + 5]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = s[o + 6 + j]!;
      const lo = (q & 15) | (((qh >>> j) & 1) << 4);
      const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      out[y + j] = (lo - 16) * d;
      out[y + j + 16] = (hi - 16) * d;
    }
  }
}

function q5_1(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 24, y += 32) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    const m = t[s[o + 2]! | (s[o + 3]! << 8)]!;
    const qh = (s[o + 4]! | (s[o + 5]! << 8) | (s[o + 6]! << 16) | (s[o + 7]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = s[o + 8 + j]!;
      const lo = (q & 15) | (((qh >>> j) & 1) << 4);
      const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      out[y + j] = lo * d + m;
      out[y + j + 16] = hi * d + m;
    }
  }
}

function q8_0(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  const q = new Int8Array(s.buffer, s.byteOffset, s.length);
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 34, y += 32) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    for (let j = 0; j < 32; j++) out[y + j] = q[o + 2 + j]! * d;
  }
}

// K-quants: 256 elements per super-block.

function q2_k(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 84, y += 256) {
    const d = t[s[o + 80]! | (s[o + 81]! << 8)]!;
    const dmin = t[s[o + 82]! | (s[o + 83]! << 8)]!;
    // Two halves of 128 elements; half h reads qs[32h .. 32h+31], 2 bits per element at shift 2g for its
    // 32-element group g (0..3). Each 16-element sub-block has its own scale byte.
    for (let h = 0; h < 2; h++) {
      for (let g = 0; g < 4; g++) {
        for (let part = 0; part < 2; part++) {
          const sc = s[o + h * 8 + g * 2 + part]!;
          const dl = d * (sc & 15);
          const ml = dmin * (sc >> 4);
          const base = y + h * 128 + g * 32 + part * 16;
          const qo = o + 16 + h * 32 + part * 16;
          for (let l = 0; l < 16; l++) out[base + l] = dl * ((s[qo + l]! >> (2 * g)) & 3) - ml;
        }
      }
    }
  }
}

function q3_k(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  const scale = new Int32Array(16);
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 110, y += 256) {
    const d = t[s[o + 108]! | (s[o + 109]! << 8)]!;
    const sc = o + 96;
    for (let i = 0; i < 16; i++) {
      const low = i < 8 ? s[sc + i]! & 15 : s[sc + i - 8]! >> 4;
      const high = (s[sc + 8 + (i & 3)]! >> (2 * (i >> 2))) & 3;
      scale[i] = (low | (high << 4)) - 32;
    }
    // Same element order as Q2_K; the third bit comes from hmask[l] bit (4h + g), and a clear bit subtracts 4.
    for (let h = 0; h < 2; h++) {
      for (let g = 0; g < 4; g++) {
        const bit = 4 * h + g;
        for (let part = 0; part < 2; part++) {
          const dl = d * scale[h * 8 + g * 2 + part]!;
          const base = y + h * 128 + g * 32 + part * 16;
          const qo = o + 32 + h * 32 + part * 16;
          const ho = o + part * 16;
          for (let l = 0; l < 16; l++) {
            const q = ((s[qo + l]! >> (2 * g)) & 3) - ((s[ho + l]! >> bit) & 1 ? 0 : 4);
            out[base + l] = dl * q;
          }
        }
      }
    }
  }
}

/** The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at s[o..o+11] (Q4_K, Q5_K). */
function scaleMinK4(s: Uint8Array, o: number, j: number, res: Int32Array): void {
  if (j < 4) {
    res[0] = s[o + j]! & 63;
    res[1] = s[o + j + 4]! & 63;
  } else {
    res[0] = (s[o + j + 4]! & 15) | ((s[o + j - 4]! >> 6) << 4);
    res[1] = (s[o + j + 4]! >> 4) | ((s[o + j]! >> 6) << 4);
  }
}

function q4_k(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  const sm = new Int32Array(2);
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 144, y += 256) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    const dmin = t[s[o + 2]! | (s[o + 3]! << 8)]!;
    for (let sub = 0; sub < 8; sub++) {
      scaleMinK4(s, o + 4, sub, sm);
      const dl = d * sm[0]!;
      const ml = dmin * sm[1]!;
      const qo = o + 16 + (sub >> 1) * 32;
      const shift = (sub & 1) * 4;
      const base = y + sub * 32;
      for (let l = 0; l < 32; l++) out[base + l] = dl * ((s[qo + l]! >> shift) & 15) - ml;
    }
  }
}

function q5_k(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  const sm = new Int32Array(2);
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 176, y += 256) {
    const d = t[s[o]! | (s[o + 1]! << 8)]!;
    const dmin = t[s[o + 2]! | (s[o + 3]! << 8)]!;
    const ho = o + 16;
    for (let sub = 0; sub < 8; sub++) {
      scaleMinK4(s, o + 4, sub, sm);
      const dl = d * sm[0]!;
      const ml = dmin * sm[1]!;
      const qo = o + 48 + (sub >> 1) * 32;
      const shift = (sub & 1) * 4;
      const base = y + sub * 32;
      for (let l = 0; l < 32; l++) {
        const q = ((s[qo + l]! >> shift) & 15) | (((s[ho + l]! >> sub) & 1) << 4);
        out[base + l] = dl * q - ml;
      }
    }
  }
}

function q6_k(s: Uint8Array, nb: number, out: Float32Array): void {
  const t = f16Table();
  for (let b = 0, o = 0, y = 0; b < nb; b++, o += 210, y += 256) {
    const d = t[s[o + 208]! | (s[o + 209]! << 8)]!;
    // Two halves of 128; in half h, 32-lane group k (0..3) takes low (k < 2) or high nibbles of
    // ql[64h + 32(k & 1) + l] and bits 2k..2k+1 of qh[32h + l]; 16-element sub-block scale at 192 + (element / 16).
    for (let h = 0; h < 2; h++) {
      for (let k = 0; k < 4; k++) {
        const qlo = o + h * 64 + (k & 1) * 32;
        const qho = o + 128 + h * 32;
        const nshift = (k >> 1) * 4;
        const base = y + h * 128 + k * 32;
        for (let l = 0; l < 32; l++) {
          const sc = (s[o + 192 + h * 8 + k * 2 + (l >> 4)]! << 24) >> 24;
          const q = (((s[qlo + l]! >> nshift) & 15) | (((s[qho + l]! >> (2 * k)) & 3) << 4)) - 32;
          out[base + l] = d * sc * q;
        }
      }
    }
  }
}
