/**
 * Softmax losses over the last dimension, fused and numerically stable (max-subtracted, sums in double).
 *   crossEntropy(logits, targets, {ignoreIndex = -100, reduction = "mean"}):
 *       logits (..., V), targets (...) int32 -> scalar ("mean", "sum") or (...) ("none").
 *       loss_n = logsumexp(logits_n) - logits_n[t_n]; rows whose target is ignoreIndex contribute 0 and do not
 *       count; "mean" divides by the count of the others (0, not NaN, when there are none) — torch semantics.
 *       Backward writes (softmax - onehot) · g / count straight into dlogits from the saved per-row logsumexp.
 *   logSoftmax(x): x - logsumexp(x) over the last dim; backward dx = g - exp(out) · sum(g).
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { needsRecord, record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { isFloat } from "../dtype.js";
import { native } from "../native.js";
import { Tensor } from "../tensor.js";

export type Reduction = "mean" | "sum" | "none";
const reductionCode: Record<Reduction, number> = { none: 0, sum: 1, mean: 2 };

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (default -100, as torch). */
  ignoreIndex?: number;
  /** Default "mean". */
  reduction?: Reduction;
}

declare module "../backend.js" {
  interface Kernels {
    /**
     * Per-row logsumexp into lse (rows), losses reduced into out ((rows) for "none", 1 element otherwise).
     * Returns the number of non-ignored targets, or -(row + 1) for the first target outside [0, V).
     */
    crossEntropyForward(
      out: Tensor,
      lse: Tensor,
      logits: Tensor,
      targets: Tensor,
      ignoreIndex: number,
      reduction: Reduction,
    ): number;
    /** dlogits = (softmax - onehot) · scale per row, from the saved lse; g has out's shape. */
    crossEntropyBackward(
      dlogits: Tensor,
      logits: Tensor,
      lse: Tensor,
      targets: Tensor,
      g: Tensor,
      ignoreIndex: number,
      reduction: Reduction,
      count: number,
    ): void;
    /** out = x - logsumexp(x) per row of the last dim. */
    logSoftmaxForward(out: Tensor, x: Tensor): void;
    /** dx = g - exp(out) · rowsum(g). */
    logSoftmaxBackward(dx: Tensor, g: Tensor, out: Tensor): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    crossEntropyForward(
      out: unknown,
      lse: unknown,
      logits: unknown,
      targets: unknown,
      n: number,
      v: number,
      ignoreIndex: number,
      reduction: number,
    ): number;
    crossEntropyBackward(
      dlogits: unknown,
      logits: unknown,
      lse: unknown,
      targets: unknown,
      g: unknown,
      n: number,
      v: number,
      ignoreIndex: number,
      reduction: number,
      count: number,
    ): void;
    logSoftmaxForward(out: unknown, x: unknown, rows: number, v: number): void;
    logSoftmaxBackward(dx: unknown, g: unknown, out: unknown, rows: number, v: number): void;
  }
}

const lastDim = (t: Tensor): number => (t.ndim === 0 ? 1 : t.shape[t.ndim - 1]!);
const rowsOf = (t: Tensor): number => {
  const v = lastDim(t);
  return v === 0 ? 0 : t.size / v;
};

registerKernels("cpu", {
  crossEntropyForward: (out, lse, logits, targets, ignoreIndex, reduction) =>
    native.crossEntropyForward(
      out.data,
      lse.data,
      logits.data,
      targets.data,
      targets.size,
      lastDim(logits),
      ignoreIndex,
      reductionCode[reduction],
    ),
  crossEntropyBackward: (dlogits, logits, lse, targets, g, ignoreIndex, reduction, count) =>
    native.crossEntropyBackward(
      dlogits.data,
      logits.data,
      lse.data,
      targets.data,
      g.data,
      targets.size,
      lastDim(logits),
      ignoreIndex,
      reductionCode[reduction],
      count,
    ),
  logSoftmaxForward: (out, x) => native.logSoftmaxForward(out.data, x.data, rowsOf(x), lastDim(x)),
  logSoftmaxBackward: (dx, g, out) => native.logSoftmaxBackward(dx.data, g.data, out.data, rowsOf(out), lastDim(out)),
});

/** Fused log-softmax + negative log-likelihood; see the module comment. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = "crossEntropy";
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? "mean";
  if (!(reduction in reductionCode))
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${op}: reduction must be "mean", "sum" or "none", got ${String(reduction)}`,
    );
  if (!Number.isInteger(ignoreIndex))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: ignoreIndex must be an integer`);
  if (!isFloat(logits.dtype))
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `${op}: logits must be float32 or float64, got ${logits.dtype}`);
  if (targets.dtype !== "int32")
    throw new MacLmError(
      "MACLM_DTYPE_MISMATCH",
      `${op}: targets must be int32, got ${targets.dtype} ${fmtShape(targets.shape)}`,
    );
  if (logits.ndim < 1 || targets.ndim !== logits.ndim - 1 || targets.shape.some((d, i) => d !== logits.shape[i]))
    throw new ShapeError(
      op,
      `logits ${fmtShape(logits.shape)} must be (..., V) with targets (...), got targets ${fmtShape(targets.shape)}`,
    );
  if (logits.device !== targets.device)
    throw new ShapeError(op, `device mismatch: ${logits.device} vs ${targets.device}`);
  const V = lastDim(logits);
  const out = Tensor.uninit(reduction === "none" ? targets.shape : [], logits.dtype, logits.device);
  const lse = Tensor.uninit([targets.size], logits.dtype, logits.device);
  const k = kernels(logits.device);
  const count = k.crossEntropyForward(out, lse, logits, targets, ignoreIndex, reduction);
  if (count < 0) {
    out.dispose();
    lse.dispose();
    const row = -count - 1;
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${op}: target ${targets.data[row]} at row ${row} of targets ${fmtShape(targets.shape)} is outside [0, ${V}) ` +
        `(logits ${fmtShape(logits.shape)}) and is not ignoreIndex ${ignoreIndex}`,
    );
  }
  if (!needsRecord([logits])) {
    lse.dispose();
    return out;
  }
  return record(out, op, [logits, targets], (g, needs) => {
    if (!needs[0]) return [null, null];
    const d = Tensor.uninit(logits.shape, logits.dtype, logits.device);
    kernels(logits.device).crossEntropyBackward(d, logits, lse, targets, g, ignoreIndex, reduction, count);
    return [d, null];
  });
}

/** log(softmax(x)) over the last dimension, computed stably. */
export function logSoftmax(x: Tensor): Tensor {
  if (!isFloat(x.dtype))
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `logSoftmax: x must be float32 or float64, got ${x.dtype}`);
  if (x.ndim < 1) throw new ShapeError("logSoftmax", `input must be at least 1-D, got ${fmtShape(x.shape)}`);
  const out = Tensor.uninit(x.shape, x.dtype, x.device);
  kernels(x.device).logSoftmaxForward(out, x);
  return record(out, "logSoftmax", [x], (g) => {
    const dx = Tensor.uninit(x.shape, x.dtype, x.device);
    kernels(x.device).logSoftmaxBackward(dx, g, out);
    return [dx];
  });
}
