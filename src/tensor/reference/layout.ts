/** Double-precision reference for the layout ops (permute, slice, concat, index select). Slow and obvious. */
import type { Arr } from "./basic.js";

const stridesOf = (shape: readonly number[]): number[] => {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
};

/** out[i_0..] = x[j] with j's index in input dim perm[d] equal to i_d. */
export function refPermute(x: Arr, shape: readonly number[], perm: readonly number[]): Float64Array {
  const outShape = perm.map((p) => shape[p]!);
  const inStr = stridesOf(shape);
  const out = new Float64Array(x.length);
  const idx = new Array<number>(outShape.length).fill(0);
  for (let i = 0; i < x.length; i++) {
    let rem = i;
    for (let d = outShape.length - 1; d >= 0; d--) {
      idx[d] = rem % outShape[d]!;
      rem = Math.floor(rem / outShape[d]!);
    }
    let off = 0;
    for (let d = 0; d < outShape.length; d++) off += idx[d]! * inStr[perm[d]!]!;
    out[i] = x[off]!;
  }
  return out;
}

/** Elements of x (of `shape`) with index in [start, end) along `axis`. */
export function refSlice(x: Arr, shape: readonly number[], axis: number, start: number, end: number): Float64Array {
  const str = stridesOf(shape);
  const outShape = shape.map((d, i) => (i === axis ? end - start : d));
  const n = outShape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const k = rem % outShape[d]!;
      rem = Math.floor(rem / outShape[d]!);
      off += (d === axis ? k + start : k) * str[d]!;
    }
    out[i] = x[off]!;
  }
  return out;
}

/** Concatenation along `axis` of xs (with shapes `shapes`). */
export function refConcat(xs: readonly Arr[], shapes: readonly (readonly number[])[], axis: number): Float64Array {
  const outShape = shapes[0]!.map((d, i) => (i === axis ? shapes.reduce((a, s) => a + s[axis]!, 0) : d));
  const n = outShape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const outStr = stridesOf(outShape);
  let offset = 0;
  xs.forEach((x, t) => {
    const sh = shapes[t]!;
    for (let i = 0; i < x.length; i++) {
      let rem = i;
      let o = 0;
      for (let d = sh.length - 1; d >= 0; d--) {
        const k = rem % sh[d]!;
        rem = Math.floor(rem / sh[d]!);
        o += (d === axis ? k + offset : k) * outStr[d]!;
      }
      out[o] = x[i]!;
    }
    offset += sh[axis]!;
  });
  return out;
}
