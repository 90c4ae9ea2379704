/**
 * Plain double-precision reference implementations of the basic kernels (elementwise with broadcasting, matrix
 * product). Slow and obvious on purpose: the native kernels are tested against these.
 */
export type Arr = ArrayLike<number>;

export function refBroadcastIndex(outIdx: number, outShape: readonly number[], shape: readonly number[]): number {
  let rem = outIdx;
  let idx = 0;
  let stride = 1;
  const off = outShape.length - shape.length;
  for (let d = outShape.length - 1; d >= 0; d--) {
    const od = outShape[d]!;
    const i = rem % od;
    rem = Math.floor(rem / od);
    if (d >= off) {
      const sd = shape[d - off]!;
      if (sd !== 1) idx += i * stride;
      stride *= sd;
    }
  }
  return idx;
}

export function refBinary(
  f: (x: number, y: number) => number,
  a: Arr,
  aShape: readonly number[],
  b: Arr,
  bShape: readonly number[],
  outShape: readonly number[],
): Float64Array {
  const n = outShape.reduce((x, y) => x * y, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++)
    out[i] = f(a[refBroadcastIndex(i, outShape, aShape)]!, b[refBroadcastIndex(i, outShape, bShape)]!);
  return out;
}

/** C (M, N) = op(A) · op(B); A is (M, K) or (K, M) if transA; B is (K, N) or (N, K) if transB. */
export function refMatmul(
  a: Arr,
  b: Arr,
  m: number,
  n: number,
  k: number,
  transA = false,
  transB = false,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++)
        s += (transA ? a[p * m + i]! : a[i * k + p]!) * (transB ? b[j * k + p]! : b[p * n + j]!);
      c[i * n + j] = s;
    }
  return c;
}
