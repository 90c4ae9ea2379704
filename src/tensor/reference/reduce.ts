/** Double-precision reference for sum/mean over all elements or one axis. Slow and obvious. */
import type { Arr } from "./basic.js";

/** x of `shape` reduced over `axis` (all elements when undefined); mean divides by the reduced count. */
export function refSum(x: Arr, shape: readonly number[], axis?: number, mean = false): Float64Array {
  if (axis === undefined) {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i]!;
    return Float64Array.of(mean ? s / x.length : s);
  }
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const n = shape[axis]!;
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += x[(o * n + k) * inner + i]!;
      out[o * inner + i] = mean ? s / n : s;
    }
  return out;
}
