/**
 * IEEE 754 half precision (binary16) conversions for the memory bank's float16 storage.
 *
 * Encoding rounds to nearest, ties to even (as numpy's astype(float16) and PyTorch's .half() do): values beyond
 * the largest half (65504) round to ±Infinity from the midpoint 65520 on, tiny values to signed subnormals or
 * zero, NaN stays NaN (quiet). Decoding is exact (every half is a float32) and goes through a 65,536-entry table.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The largest finite half-precision value. */
export const F16_MAX = 65504;
/** Magnitudes from this value on round to Infinity in half precision. */
export const F16_OVERFLOW = 65520;

/** Half-precision bit pattern of `x` (first rounded to float32), round to nearest even. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // Inf, NaN (kept quiet)
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00; // overflow to Inf
  if (e <= 0) {
    // Subnormal half (or zero): value = h · 2^-24 with h = mant24 / 2^(14 - e).
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++; // may carry into the smallest normal: correct
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct (→ Inf at top)
  return sign | h;
}

function f16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let table: Float32Array | null = null;

/** float32 value of every half bit pattern (built on first use, 256 KB). */
export function f16Table(): Float32Array {
  if (table === null) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16BitsToNumber(h);
  }
  return table;
}

/** The value of half bit pattern `h`. */
export const f16BitsToF32 = (h: number): number => f16Table()[h & 0xffff]!;

/** Encodes `src` into `dst` (same length), round to nearest even. */
export function encodeF16(src: ArrayLike<number>, dst: Uint16Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = f32ToF16Bits(src[i]!);
}

/** Decodes `src` into `dst` (same length). */
export function decodeF16(src: Uint16Array, dst: Float32Array): void {
  const t = f16Table();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
}
