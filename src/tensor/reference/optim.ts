/**
 * Double-precision reference of torch.optim.AdamW's algorithm (single-tensor path, no amsgrad), step by step:
 *   p <- p (1 - lr wd);  m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g²;
 *   p <- p - lr / (1 - beta1^t) · m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 */
import type { Arr } from "./basic.js";

export interface RefAdamWConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** Runs steps 1..grads.length on a copy of p; returns the final p, m, v. */
export function refAdamW(p0: Arr, grads: readonly Arr[], cfg: RefAdamWConfig) {
  const n = p0.length;
  const p = Float64Array.from(p0);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  grads.forEach((g, k) => {
    const t = k + 1;
    const bc1 = 1 - cfg.beta1 ** t;
    const bc2 = 1 - cfg.beta2 ** t;
    for (let i = 0; i < n; i++) {
      p[i] = p[i]! * (1 - cfg.lr * cfg.weightDecay);
      m[i] = cfg.beta1 * m[i]! + (1 - cfg.beta1) * g[i]!;
      v[i] = cfg.beta2 * v[i]! + (1 - cfg.beta2) * g[i]! * g[i]!;
      p[i] = p[i]! - ((cfg.lr / bc1) * m[i]!) / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + cfg.eps);
    }
  });
  return { p, m, v };
}

/** sqrt of the sum of squares of every element of every array. */
export function refGlobalNorm(xs: readonly Arr[]): number {
  let s = 0;
  for (const x of xs) for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}
