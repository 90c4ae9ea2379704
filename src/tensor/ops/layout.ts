/**
 * Layout ops, with autograd. Tensors are always contiguous, so all but reshape copy.
 *   reshape(x, shape):          a view sharing x's memory (-1 infers one dim); backward reshapes g back.
 *   permute(x, axes):           out dim d is x's dim axes[d] (up to 8-D); backward applies the inverse
 *                               permutation. (B, T, NH, HS) <-> (B, NH, T, HS) copies contiguous HS-runs.
 *   transpose(x, a, b):         permute swapping two axes.
 *   concat(xs, axis):           joined along axis (other dims equal); backward slices g.
 *   slice(x, axis, start, end): [start, end) along axis (negative counts from the end); backward writes g into
 *                               zeros.
 *   split(x, sizes, axis):      slices of the given sizes (or chunks of one size, the last possibly smaller).
 *   stack(xs, axis):            concat of xs each with a new size-1 axis.
 * Any dtype (int32 token ids too); gradients flow for float tensors.
 */
import { ShapeError, fmtShape } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { native } from "../native.js";
import { type Shape, Tensor, numel } from "../tensor.js";

/** dst[r · dstStride + dstOff + k] = src[r · srcStride + srcOff + k] for r < rows, k < len (element units). */
export interface BlockCopy {
  rows: number;
  len: number;
  dstStride: number;
  dstOff: number;
  srcStride: number;
  srcOff: number;
}

declare module "../backend.js" {
  interface Kernels {
    /** out = x with its dims permuted: out dim d is x dim perm[d]. */
    permute(out: Tensor, x: Tensor, perm: readonly number[]): void;
    /** Strided 2-D block copy, in place into dst (see BlockCopy). */
    copyBlock(dst: Tensor, src: Tensor, b: BlockCopy): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    permute(out: unknown, x: unknown, inShape: number[], perm: number[]): void;
    copyBlock(
      dst: unknown,
      src: unknown,
      rows: number,
      len: number,
      dstStride: number,
      dstOff: number,
      srcStride: number,
      srcOff: number,
    ): void;
  }
}

registerKernels("cpu", {
  permute: (out, x, perm) => native.permute(out.data, x.data, [...x.shape], [...perm]),
  copyBlock: (dst, src, b) =>
    native.copyBlock(dst.data, src.data, b.rows, b.len, b.dstStride, b.dstOff, b.srcStride, b.srcOff),
});

const MAX_DIMS = 8;

function normAxis(op: string, axis: number, ndim: number, shape: Shape): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim)
    throw new ShapeError(op, `axis ${axis} is out of range for shape ${fmtShape(shape)}`);
  return a;
}

/** A view of x with another shape of the same size; gradients flow through it. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const known = shape.reduce((a, d) => (d === -1 ? a : a * d), 1);
  const inferred = shape.filter((d) => d === -1).length;
  const ok =
    inferred <= 1 &&
    shape.every((d) => Number.isInteger(d) && d >= -1) &&
    (inferred === 0 ? known === x.size : known > 0 ? x.size % known === 0 : x.size === 0);
  if (!ok)
    throw new ShapeError("reshape", `cannot view ${fmtShape(x.shape)} (${x.size} elements) as ${fmtShape(shape)}`);
  const out = x.reshapeView(shape);
  return record(out, "reshape", [x], (g) => [g.reshapeView(x.shape)]);
}

function permuteRaw(x: Tensor, perm: readonly number[]): Tensor {
  const out = Tensor.uninit(
    perm.map((p) => x.shape[p]!),
    x.dtype,
    x.device,
  );
  kernels(x.device).permute(out, x, perm);
  return out;
}

/** Out dim d is x's dim axes[d] (negative axes count from the end). */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const nd = x.ndim;
  if (nd > MAX_DIMS)
    throw new ShapeError("permute", `at most ${MAX_DIMS} dims are supported, got ${fmtShape(x.shape)}`);
  const perm = axes.map((a) => (a < 0 ? a + nd : a));
  const seen = new Set(perm);
  if (perm.length !== nd || seen.size !== nd || perm.some((a) => !Number.isInteger(a) || a < 0 || a >= nd))
    throw new ShapeError(
      "permute",
      `axes [${axes.join(", ")}] are not a permutation of the dims of ${fmtShape(x.shape)}`,
    );
  const out = permuteRaw(x, perm);
  return record(out, "permute", [x], (g) => {
    const inv = new Array<number>(nd);
    perm.forEach((p, d) => (inv[p] = d));
    return [permuteRaw(g, inv)];
  });
}

/** Swaps axes a and b. */
export function transpose(x: Tensor, a: number, b: number): Tensor {
  const ia = normAxis("transpose", a, x.ndim, x.shape);
  const ib = normAxis("transpose", b, x.ndim, x.shape);
  const perm = x.shape.map((_, i) => (i === ia ? ib : i === ib ? ia : i));
  return permute(x, perm);
}

/** Copy of [start, end) along axis of x, as (outer, n·inner) rows. No autograd. */
function sliceRaw(x: Tensor, a: number, start: number, end: number): Tensor {
  const inner = numel(x.shape.slice(a + 1));
  const n = x.shape[a]!;
  const m = end - start;
  const out = Tensor.uninit(
    x.shape.map((d, i) => (i === a ? m : d)),
    x.dtype,
    x.device,
  );
  kernels(x.device).copyBlock(out, x, {
    rows: numel(x.shape.slice(0, a)),
    len: m * inner,
    dstStride: m * inner,
    dstOff: 0,
    srcStride: n * inner,
    srcOff: start * inner,
  });
  return out;
}

/** Elements [start, end) along axis (negative start/end count from the end; end defaults to the dim size). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis("slice", axis, x.ndim, x.shape);
  const n = x.shape[a]!;
  const s = start < 0 ? start + n : start;
  const e = end === undefined ? n : end < 0 ? end + n : end;
  if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > n || s > e)
    throw new ShapeError(
      "slice",
      `range [${start}, ${end ?? n}) is out of bounds for axis ${axis} of ${fmtShape(x.shape)}`,
    );
  const out = sliceRaw(x, a, s, e);
  return record(out, "slice", [x], (g) => {
    const dx = Tensor.zeros(x.shape, x.dtype);
    const inner = numel(x.shape.slice(a + 1));
    kernels(x.device).copyBlock(dx, g, {
      rows: numel(x.shape.slice(0, a)),
      len: (e - s) * inner,
      dstStride: n * inner,
      dstOff: s * inner,
      srcStride: (e - s) * inner,
      srcOff: 0,
    });
    return [dx];
  });
}

/** Joins xs along axis; all other dims, the dtype and the device must agree. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const first = xs[0];
  if (first === undefined) throw new ShapeError("concat", "needs at least one tensor");
  const nd = first.ndim;
  const a = normAxis("concat", axis, nd, first.shape);
  for (const x of xs) {
    if (x.ndim !== nd || x.shape.some((d, i) => i !== a && d !== first.shape[i]))
      throw new ShapeError(
        "concat",
        `shapes ${xs.map((t) => fmtShape(t.shape)).join(", ")} differ outside axis ${axis}`,
      );
    if (x.dtype !== first.dtype) throw new ShapeError("concat", `dtype mismatch: ${first.dtype} vs ${x.dtype}`);
    if (x.device !== first.device) throw new ShapeError("concat", `device mismatch: ${first.device} vs ${x.device}`);
  }
  const total = xs.reduce((s, x) => s + x.shape[a]!, 0);
  const outer = numel(first.shape.slice(0, a));
  const inner = numel(first.shape.slice(a + 1));
  const out = Tensor.uninit(
    first.shape.map((d, i) => (i === a ? total : d)),
    first.dtype,
    first.device,
  );
  const k = kernels(first.device);
  const offsets: number[] = [];
  let off = 0;
  for (const x of xs) {
    offsets.push(off);
    const len = x.shape[a]! * inner;
    k.copyBlock(out, x, { rows: outer, len, dstStride: total * inner, dstOff: off * inner, srcStride: len, srcOff: 0 });
    off += x.shape[a]!;
  }
  return record(out, "concat", xs, (g, needs) =>
    xs.map((x, i) => (needs[i] ? sliceRaw(g, a, offsets[i]!, offsets[i]! + x.shape[a]!) : null)),
  );
}

/**
 * Splits x along axis: `sizes` as an array gives each part's size (they must add up to the dim); a number
 * gives chunks of that size, the last one smaller if the dim does not divide.
 */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis("split", axis, x.ndim, x.shape);
  const n = x.shape[a]!;
  let parts: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0)
      throw new ShapeError("split", `chunk size must be a positive integer, got ${sizes}`);
    parts = [];
    for (let s = 0; s < n; s += sizes) parts.push(Math.min(sizes, n - s));
  } else {
    parts = [...sizes];
    if (parts.some((p) => !Number.isInteger(p) || p < 0) || parts.reduce((s, p) => s + p, 0) !== n)
      throw new ShapeError(
        "split",
        `sizes [${parts.join(", ")}] do not add up to ${n} (axis ${axis} of ${fmtShape(x.shape)})`,
      );
  }
  const out: Tensor[] = [];
  let s = 0;
  for (const p of parts) {
    out.push(slice(x, a, s, s + p));
    s += p;
  }
  return out;
}

/** Stacks equally shaped tensors along a new axis (0..ndim; negative counts from the end of the result). */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  const first = xs[0];
  if (first === undefined) throw new ShapeError("stack", "needs at least one tensor");
  const a = normAxis("stack", axis, first.ndim + 1, [...first.shape, 1]);
  for (const x of xs)
    if (x.ndim !== first.ndim || x.shape.some((d, i) => d !== first.shape[i]))
      throw new ShapeError("stack", `shapes differ: ${xs.map((t) => fmtShape(t.shape)).join(", ")}`);
  const shape = [...first.shape.slice(0, a), 1, ...first.shape.slice(a)];
  return concat(
    xs.map((x) => reshape(x, shape)),
    a,
  );
}
