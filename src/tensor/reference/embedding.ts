/**
 * Double-precision reference for the row gather / scatter-add kernels (embedding, indexSelect). Slow and obvious.
 */
import type { Arr } from "./basic.js";

/** out (N, C) = table[ids[n], :]. */
export function refEmbedding(ids: Arr, table: Arr, C: number): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let n = 0; n < ids.length; n++) for (let c = 0; c < C; c++) out[n * C + c] = table[ids[n]! * C + c]!;
  return out;
}

/** dtable (V, C) = sum over n with ids[n] = v of g[n, :]. */
export function refEmbeddingBackward(ids: Arr, g: Arr, V: number, C: number): Float64Array {
  const d = new Float64Array(V * C);
  for (let n = 0; n < ids.length; n++) for (let c = 0; c < C; c++) d[ids[n]! * C + c]! += g[n * C + c]!;
  return d;
}
