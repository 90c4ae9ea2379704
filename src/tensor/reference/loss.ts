/**
 * Double-precision reference for the softmax losses: cross-entropy with ignore index and reductions, and
 * log-softmax with its backward. Slow and obvious.
 */
import type { Arr } from "./basic.js";

function rowLse(x: Arr, off: number, V: number): number {
  let mx = -Infinity;
  for (let j = 0; j < V; j++) mx = Math.max(mx, x[off + j]!);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(x[off + j]! - mx);
  return mx + Math.log(s);
}

/** Per-row losses (0 where ignored), and the number of rows that count. */
export function refCrossEntropyRows(logits: Arr, targets: Arr, N: number, V: number, ignoreIndex = -100) {
  const losses = new Float64Array(N);
  let count = 0;
  for (let n = 0; n < N; n++) {
    const t = targets[n]!;
    if (t === ignoreIndex) continue;
    count++;
    losses[n] = rowLse(logits, n * V, V) - logits[n * V + t]!;
  }
  return { losses, count };
}

export function refCrossEntropy(
  logits: Arr,
  targets: Arr,
  N: number,
  V: number,
  ignoreIndex: number,
  reduction: "mean" | "sum" | "none",
): Float64Array {
  const { losses, count } = refCrossEntropyRows(logits, targets, N, V, ignoreIndex);
  if (reduction === "none") return losses;
  const s = losses.reduce((a, b) => a + b, 0);
  return Float64Array.of(reduction === "sum" ? s : count > 0 ? s / count : 0);
}

/** d loss / d logits for gradient `g` of the reduced loss ((N) for "none", a scalar otherwise). */
export function refCrossEntropyBackward(
  logits: Arr,
  targets: Arr,
  g: Arr,
  N: number,
  V: number,
  ignoreIndex: number,
  reduction: "mean" | "sum" | "none",
): Float64Array {
  const { count } = refCrossEntropyRows(logits, targets, N, V, ignoreIndex);
  const d = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const t = targets[n]!;
    if (t === ignoreIndex) continue;
    const s = reduction === "none" ? g[n]! : reduction === "sum" ? g[0]! : count > 0 ? g[0]! / count : 0;
    const l = rowLse(logits, n * V, V);
    for (let j = 0; j < V; j++) d[n * V + j] = (Math.exp(logits[n * V + j]! - l) - (j === t ? 1 : 0)) * s;
  }
  return d;
}

/** Rows of length V: x - logsumexp(x). */
export function refLogSoftmax(x: Arr, V: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let off = 0; off < x.length; off += V) {
    const l = rowLse(x, off, V);
    for (let j = 0; j < V; j++) out[off + j] = x[off + j]! - l;
  }
  return out;
}

/** d/dx of logSoftmax rows for upstream g, given the forward output `out` (rows of length V). */
export function refLogSoftmaxBackward(g: Arr, out: Arr, V: number): Float64Array {
  const dx = new Float64Array(g.length);
  for (let off = 0; off < g.length; off += V) {
    let s = 0;
    for (let j = 0; j < V; j++) s += g[off + j]!;
    for (let j = 0; j < V; j++) dx[off + j] = g[off + j]! - Math.exp(out[off + j]!) * s;
  }
  return dx;
}
