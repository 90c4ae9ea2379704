/**
 * The counter-based dropout mask of native/kernels/dropout_mask.h, written plainly (BigInt for the 64-bit parts):
 * element i is kept iff (mix32(mix32(lo32(i) ^ k1) ^ (hi32(i) + k2)) >>> 8) ≥ round(p·2^24), k = splitmix64(seed),
 * k1 = lo32(k), k2 = hi32(k). Used by the attention reference (dropout on the probabilities).
 */
const M64 = (1n << 64n) - 1n;

function splitmix64(seed: bigint): bigint {
  let z = (seed + 0x9e3779b97f4a7c15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

function mix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** keep(i) for a seed and p: a function of the element index (any non-negative safe integer). */
export function refDropoutKeep(seed: number, p: number): (i: number) => boolean {
  const k = splitmix64(BigInt.asUintN(64, BigInt(seed)));
  const k1 = Number(k & 0xffffffffn);
  const k2 = Number(k >> 32n);
  const thresh = Math.round(p * 2 ** 24);
  return (i) => {
    const lo = i % 2 ** 32;
    const hi = Math.floor(i / 2 ** 32);
    return mix32(mix32((lo ^ k1) >>> 0) ^ ((hi + k2) >>> 0)) >>> 8 >= thresh;
  };
}
