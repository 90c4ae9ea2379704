/**
 * Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div; scale/shift by constants.
 * Backward of a broadcast operand sums the gradient over the broadcast dimensions (sumTo).
 */
import { ShapeError, fmtShape } from "../../errors.js";
import { record, setGradAccumulator } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { native, type Floats } from "../native.js";
import { type Shape, Tensor } from "../tensor.js";

export type BinaryKind = "add" | "sub" | "mul" | "div";
const kindCode: Record<BinaryKind, number> = { add: 0, sub: 1, mul: 2, div: 3 };

declare module "../backend.js" {
  interface Kernels {
    /** out = a ∘ b with broadcasting (see broadcastPlan). */
    binary(kind: BinaryKind, out: Tensor, a: Tensor, b: Tensor, plan: BroadcastPlan): void;
    /** out = alpha * a + beta (out may be a). */
    affine(out: Tensor, a: Tensor, alpha: number, beta: number): void;
    /** y += alpha * x, in place. */
    axpy(y: Tensor, x: Tensor, alpha: number): void;
    /** out = g summed down to out's shape (out broadcasts to g's shape). */
    sumTo(out: Tensor, g: Tensor): void;
  }
}

/** How two shapes broadcast: the output shape and each operand's element strides in it (0 = broadcast). */
export interface BroadcastPlan {
  shape: number[];
  stridesA: number[];
  stridesB: number[];
  /** 1: same shape, contiguous; 2: b is a trailing row repeated over a's rows; 0: general. */
  mode: 0 | 1 | 2;
}

function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Strides of `shape` (right-aligned) inside `outShape`, with 0 where it broadcasts. */
function stridesIn(shape: Shape, outShape: Shape): number[] {
  const own = contiguousStrides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : own[i - off]!));
}

export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1)
      throw new ShapeError(op, `shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast (dim ${i}: ${da} vs ${db})`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

export function broadcastPlan(op: string, a: Shape, b: Shape): BroadcastPlan {
  const shape = broadcastShapes(op, a, b);
  const same = (x: Shape, y: Shape) => x.length === y.length && x.every((d, i) => d === y[i]);
  const stridesA = stridesIn(a, shape);
  const stridesB = stridesIn(b, shape);
  if (same(a, b)) return { shape, stridesA, stridesB, mode: 1 };
  // b a trailing suffix of a (bias/row broadcasting), with a full-size.
  const bIsRow =
    same(a, shape) && b.length >= 1 && b.length <= a.length && b.every((d, i) => d === a[a.length - b.length + i]);
  return { shape, stridesA, stridesB, mode: bIsRow ? 2 : 0 };
}

registerKernels("cpu", {
  binary(kind, out, a, b, plan) {
    if (plan.mode === 1) native.binary(kindCode[kind], out.data, a.data, b.data, [out.size], [1], [1], 1);
    else if (plan.mode === 2) {
      const c = b.size;
      native.binary(kindCode[kind], out.data, a.data, b.data, [out.size / Math.max(c, 1), c], [c, 1], [0, 1], 2);
    } else native.binary(kindCode[kind], out.data, a.data, b.data, plan.shape, plan.stridesA, plan.stridesB, 0);
  },
  affine: (out, a, alpha, beta) => native.affine(out.data, a.data, alpha, beta),
  axpy: (y, x, alpha) => native.axpy(y.data, x.data, alpha),
  sumTo(out, g) {
    native.sumTo(out.data, g.data, [...g.shape], stridesIn(out.shape, g.shape));
  },
});

declare module "../native.js" {
  interface NativeAddon {
    binary(
      kind: number,
      out: unknown,
      a: unknown,
      b: unknown,
      shape: number[],
      sa: number[],
      sb: number[],
      mode: number,
    ): void;
    affine(out: unknown, a: unknown, alpha: number, beta: number): void;
    axpy(y: unknown, x: unknown, alpha: number): void;
    sumTo(out: unknown, g: unknown, shape: number[], stridesOut: number[]): void;
  }
}

function checkSameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new ShapeError(op, `dtype mismatch: ${a.dtype} vs ${b.dtype}`);
  if (a.device !== b.device) throw new ShapeError(op, `device mismatch: ${a.device} vs ${b.device}`);
}

/** g reduced to `shape` (sum over broadcast dims); g itself when shapes already agree. */
export function reduceTo(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const out = Tensor.uninit(shape, g.dtype, g.device);
  kernels(g.device).sumTo(out, g);
  return out;
}

function binaryRaw(kind: BinaryKind, a: Tensor, b: Tensor): Tensor {
  checkSameDtype(kind, a, b);
  const plan = broadcastPlan(kind, a.shape, b.shape);
  const out = Tensor.uninit(plan.shape, a.dtype, a.device);
  kernels(a.device).binary(kind, out, a, b, plan);
  return out;
}

export function add(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("add", a, b);
  return record(out, "add", [a, b], (g, needs) => [
    needs[0] ? reduceTo(g, a.shape) : null,
    needs[1] ? reduceTo(g, b.shape) : null,
  ]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("sub", a, b);
  return record(out, "sub", [a, b], (g, needs) => [
    needs[0] ? reduceTo(g, a.shape) : null,
    needs[1] ? reduceTo(scale(g, -1), b.shape) : null,
  ]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("mul", a, b);
  return record(out, "mul", [a, b], (g, needs) => [
    needs[0] ? reduceTo(binaryRaw("mul", g, b), a.shape) : null,
    needs[1] ? reduceTo(binaryRaw("mul", g, a), b.shape) : null,
  ]);
}

export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw("div", a, b);
  return record(out, "div", [a, b], (g, needs) => [
    needs[0] ? reduceTo(binaryRaw("div", g, b), a.shape) : null,
    // d(a/b)/db = -a/b^2 = -out/b
    needs[1] ? reduceTo(scale(binaryRaw("mul", g, binaryRaw("div", out, b)), -1), b.shape) : null,
  ]);
}

/** alpha * a + beta. */
export function affine(a: Tensor, alpha: number, beta = 0): Tensor {
  const out = Tensor.uninit(a.shape, a.dtype, a.device);
  kernels(a.device).affine(out, a, alpha, beta);
  return record(out, "affine", [a], (g) => [scale(g, alpha)]);
}

export const scale = (a: Tensor, alpha: number): Tensor => affine(a, alpha, 0);
export const addScalar = (a: Tensor, beta: number): Tensor => affine(a, 1, beta);
export const neg = (a: Tensor): Tensor => affine(a, -1, 0);

/** y += alpha * x in place, outside autograd (optimizers, gradient accumulation). */
export function axpyInPlace(y: Tensor, x: Tensor, alpha = 1): void {
  checkSameDtype("axpy", y, x);
  if (y.size !== x.size) throw new ShapeError("axpy", `sizes differ: ${fmtShape(y.shape)} vs ${fmtShape(x.shape)}`);
  kernels(y.device).axpy(y, x, alpha);
}

export type { Floats };

setGradAccumulator((a, b) => binaryRaw("add", a, b));

/** x broadcast (copied) to `shape` (NumPy rules); backward sums over the broadcast dims. */
export function expand(x: Tensor, shape: Shape): Tensor {
  const target = broadcastShapes("expand", shape, x.shape);
  if (target.length !== shape.length || target.some((d, i) => d !== shape[i]))
    throw new ShapeError("expand", `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  const zero = Tensor.zeros([], x.dtype);
  const plan: BroadcastPlan = {
    shape: target,
    stridesA: target.map(() => 0),
    stridesB: stridesIn(x.shape, target),
    mode: 0,
  };
  const out = Tensor.uninit(target, x.dtype, x.device);
  kernels(x.device).binary("add", out, zero, x, plan);
  zero.dispose();
  return record(out, "expand", [x], (g) => [reduceTo(g, x.shape)]);
}
