/**
 * Plain float64 references for the normalisation kernels (ops/norm.ts). x is (rows, C) row-major, weight and
 * bias (C). Backward goes through the Jacobian of x̂ with respect to the row, written out from the definition,
 * O(C²) per row: slow and obvious on purpose.
 */
export type Arr = ArrayLike<number>;

export interface RefLayerNorm {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function refLayerNorm(x: Arr, w: Arr, b: Arr | null, rows: number, c: number, eps: number): RefLayerNorm {
  const y = new Float64Array(rows * c);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < c; j++) s += x[r * c + j]!;
    const m = s / c;
    let v = 0;
    for (let j = 0; j < c; j++) v += (x[r * c + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / c + eps);
    for (let j = 0; j < c; j++) y[r * c + j] = (x[r * c + j]! - m) * rs * w[j]! + (b ? b[j]! : 0);
    mean[r] = m;
    rstd[r] = rs;
  }
  return { y, mean, rstd };
}

export interface RefNormGrads {
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

/**
 * Gradients of L = Σ g ⊙ y. x̂_j = (x_j − m)·rstd; ∂x̂_j/∂x_i = rstd·(δ_ij − 1/C − x̂_i·x̂_j/C) for layernorm,
 * rstd·(δ_ij − x̂_i·x̂_j/C) for rmsnorm; dx_i = Σ_j g_j·w_j·∂x̂_j/∂x_i; dw = Σ_rows g·x̂; db = Σ_rows g.
 */
function refNormBackward(
  g: Arr,
  x: Arr,
  w: Arr,
  rows: number,
  c: number,
  eps: number,
  centered: boolean,
): RefNormGrads {
  const dx = new Float64Array(rows * c);
  const dw = new Float64Array(c);
  const db = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    if (centered) {
      for (let j = 0; j < c; j++) m += x[r * c + j]!;
      m /= c;
    }
    let v = 0;
    for (let j = 0; j < c; j++) v += (x[r * c + j]! - m) ** 2;
    const rs = 1 / Math.sqrt(v / c + eps);
    const xh = Array.from({ length: c }, (_, j) => (x[r * c + j]! - m) * rs);
    for (let i = 0; i < c; i++) {
      let s = 0;
      for (let j = 0; j < c; j++) {
        const jac = rs * ((i === j ? 1 : 0) - (centered ? 1 / c : 0) - (xh[i]! * xh[j]!) / c);
        s += g[r * c + j]! * w[j]! * jac;
      }
      dx[r * c + i] = s;
    }
    for (let j = 0; j < c; j++) {
      dw[j] = dw[j]! + g[r * c + j]! * xh[j]!;
      db[j] = db[j]! + g[r * c + j]!;
    }
  }
  return { dx, dw, db };
}

export const refLayerNormBackward = (g: Arr, x: Arr, w: Arr, rows: number, c: number, eps: number): RefNormGrads =>
  refNormBackward(g, x, w, rows, c, eps, true);

export function refRmsNorm(
  x: Arr,
  w: Arr,
  rows: number,
  c: number,
  eps: number,
): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(rows * c);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < c; j++) s += x[r * c + j]! ** 2;
    const rs = 1 / Math.sqrt(s / c + eps);
    for (let j = 0; j < c; j++) y[r * c + j] = x[r * c + j]! * rs * w[j]!;
    rstd[r] = rs;
  }
  return { y, rstd };
}

/** dx and dw of rmsNorm (db unused, zero-based sums of g). */
export const refRmsNormBackward = (g: Arr, x: Arr, w: Arr, rows: number, c: number, eps: number): RefNormGrads =>
  refNormBackward(g, x, w, rows, c, eps, false);
