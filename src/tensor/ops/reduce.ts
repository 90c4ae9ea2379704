/**
 * Reductions: sum and mean over all elements (-> scalar, or all-ones shape with keepDim) or over one axis
 * (negative counts from the end; the axis is dropped unless keepDim). Accumulation is in double, in a fixed
 * order, so float32 results do not depend on the thread count. Backward broadcasts g (scaled by 1/n for mean)
 * back over the reduced axis.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { isFloat } from "../dtype.js";
import { native } from "../native.js";
import { Tensor, numel } from "../tensor.js";

/** x viewed as (outer, n, inner), reduced over n. */
export interface AxisDims {
  outer: number;
  n: number;
  inner: number;
}

declare module "../backend.js" {
  interface Kernels {
    /** out (1 element) = scale · sum of x. */
    sumAll(out: Tensor, x: Tensor, scale: number): void;
    /** out (outer, inner) = scale · sum over n of x (outer, n, inner). */
    sumAxis(out: Tensor, x: Tensor, dims: AxisDims, scale: number): void;
    /** dx (outer, n, inner) = scale · g (outer, inner) repeated over n. */
    broadcastAxis(dx: Tensor, g: Tensor, dims: AxisDims, scale: number): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    sumAll(out: unknown, x: unknown, scale: number): void;
    sumAxis(out: unknown, x: unknown, outer: number, n: number, inner: number, scale: number): void;
    broadcastAxis(dx: unknown, g: unknown, outer: number, n: number, inner: number, scale: number): void;
  }
}

registerKernels("cpu", {
  sumAll: (out, x, scale) => native.sumAll(out.data, x.data, scale),
  sumAxis: (out, x, d, scale) => native.sumAxis(out.data, x.data, d.outer, d.n, d.inner, scale),
  broadcastAxis: (dx, g, d, scale) => native.broadcastAxis(dx.data, g.data, d.outer, d.n, d.inner, scale),
});

export interface ReduceOptions {
  /** Reduce over this axis only (negative counts from the end); default: all elements. */
  axis?: number;
  /** Keep the reduced axis (or all axes) with size 1. */
  keepDim?: boolean;
}

function reduce(op: "sum" | "mean", x: Tensor, opts: ReduceOptions): Tensor {
  if (!isFloat(x.dtype))
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `${op}: expected a float32 or float64 tensor, got ${x.dtype}`);
  const keepDim = opts.keepDim ?? false;
  let dims: AxisDims;
  let outShape: number[];
  if (opts.axis === undefined) {
    dims = { outer: 1, n: x.size, inner: 1 };
    outShape = keepDim ? x.shape.map(() => 1) : [];
  } else {
    const a = opts.axis < 0 ? opts.axis + x.ndim : opts.axis;
    if (!Number.isInteger(a) || a < 0 || a >= x.ndim)
      throw new ShapeError(op, `axis ${opts.axis} is out of range for shape ${fmtShape(x.shape)}`);
    dims = { outer: numel(x.shape.slice(0, a)), n: x.shape[a]!, inner: numel(x.shape.slice(a + 1)) };
    outShape = keepDim ? x.shape.map((d, i) => (i === a ? 1 : d)) : x.shape.filter((_, i) => i !== a);
  }
  const scale = op === "mean" ? 1 / dims.n : 1;
  const out = Tensor.uninit(outShape, x.dtype, x.device);
  const k = kernels(x.device);
  if (opts.axis === undefined) k.sumAll(out, x, scale);
  else k.sumAxis(out, x, dims, scale);
  return record(out, op, [x], (g) => {
    const dx = Tensor.uninit(x.shape, x.dtype, x.device);
    kernels(x.device).broadcastAxis(dx, g, dims, scale);
    return [dx];
  });
}

/** Sum over all elements, or over `axis`. */
export const sum = (x: Tensor, opts: ReduceOptions = {}): Tensor => reduce("sum", x, opts);

/** Mean over all elements, or over `axis` (NaN for an empty reduction, as torch). */
export const mean = (x: Tensor, opts: ReduceOptions = {}): Tensor => reduce("mean", x, opts);
