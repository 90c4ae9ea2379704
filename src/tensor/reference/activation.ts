/**
 * Plain float64 references for the activation kernels (ops/activation.ts): each function and its derivative
 * straight from the formula, and softmax with its Jacobian. Slow and obvious on purpose.
 */
export type Arr = ArrayLike<number>;

/**
 * erf by the everywhere-convergent series with positive terms (Abramowitz & Stegun 7.1.6):
 *   erf(x) = 2/√π · e^(−x²) · Σ_n 2^n x^(2n+1) / (1·3·…·(2n+1)).
 */
export function refErf(x: number): number {
  if (x < 0) return -refErf(-x);
  if (x > 6) return 1;
  let term = x;
  let sum = x;
  for (let n = 1; n < 500 && term > 1e-17 * sum; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

/**
 * erfc: 1 − erf below 1.5 (erfc ≥ 0.03 there, so little cancellation), else the continued fraction (A&S 7.1.14),
 * which keeps relative accuracy in the tail (checked against mpmath: ≤ 3e-15 relative).
 */
export function refErfc(x: number): number {
  if (x < 1.5) return 1 - refErf(x);
  let f = x;
  for (let k = 120; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** Standard normal CDF Φ(x) = erfc(−x/√2)/2, accurate in both tails. */
export const refPhi = (x: number): number =>
  x >= 0 ? 1 - 0.5 * refErfc(x / Math.SQRT2) : 0.5 * refErfc(-x / Math.SQRT2);

const K = Math.sqrt(2 / Math.PI);
const A = 0.044715;

// In the tanh form, 1 + tanh(u) and 1 − tanh²(u) are written as 2/(1 + e^(−2u)) and 4/(e^u + e^(−u))²
// (the same quantities without the cancellation of 1 + tanh(u) at u ≪ 0 or of 1 − tanh² at |u| ≫ 0).
const onePlusTanh = (u: number): number => 2 / (1 + Math.exp(-2 * u));
const sech2 = (u: number): number => 4 / (Math.exp(u) + Math.exp(-u)) ** 2;

export const refGelu = (x: number, approximate: "none" | "tanh"): number =>
  approximate === "tanh" ? 0.5 * x * onePlusTanh(K * (x + A * x ** 3)) : x * refPhi(x);

/** d gelu / dx. */
export function refGeluGrad(x: number, approximate: "none" | "tanh"): number {
  if (approximate === "none") return refPhi(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
  const u = K * (x + A * x ** 3);
  return 0.5 * onePlusTanh(u) + 0.5 * x * sech2(u) * K * (1 + 3 * A * x * x);
}

export const refSigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
export const refSigmoidGrad = (x: number): number => refSigmoid(x) * (1 - refSigmoid(x));
export const refSilu = (x: number): number => x * refSigmoid(x);
export const refSiluGrad = (x: number): number => refSigmoid(x) + x * refSigmoidGrad(x);
export const refTanhGrad = (x: number): number => sech2(x);

/** Applies f elementwise into a new float64 array. */
export const refMap = (a: Arr, f: (v: number, i: number) => number): Float64Array => Float64Array.from(a, f);

/** Softmax over rows of length c, with the max subtracted. */
export function refSoftmax(x: Arr, rows: number, c: number): Float64Array {
  const y = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let j = 0; j < c; j++) m = Math.max(m, x[r * c + j]!);
    let s = 0;
    for (let j = 0; j < c; j++) s += Math.exp(x[r * c + j]! - m);
    for (let j = 0; j < c; j++) y[r * c + j] = Math.exp(x[r * c + j]! - m) / s;
  }
  return y;
}

/** dx_i = Σ_j g_j·∂y_j/∂x_i with the softmax Jacobian ∂y_j/∂x_i = y_j·(δ_ij − y_i). */
export function refSoftmaxBackward(g: Arr, y: Arr, rows: number, c: number): Float64Array {
  const dx = new Float64Array(rows * c);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < c; i++) {
      let s = 0;
      for (let j = 0; j < c; j++) s += g[r * c + j]! * y[r * c + j]! * ((i === j ? 1 : 0) - y[r * c + i]!);
      dx[r * c + i] = s;
    }
  return dx;
}
