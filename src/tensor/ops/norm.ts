/**
 * Normalisation over the last dimension.
 *   layerNorm(x (..., C), weight (C), bias (C) | null, eps):  y = (x − mean)·rstd·weight + bias, biased variance
 *                                                            (torch.nn.LayerNorm).
 *   rmsNorm(x (..., C), weight (C), eps):                     y = x·rsqrt(mean(x²) + eps)·weight
 *                                                            (Llama RMSNorm, T5LayerNorm).
 * Forward saves the per-row mean and rstd (shape (...)) when the result is recorded for backward, nothing
 * otherwise. Backward computes only the gradients asked for: a frozen weight/bias costs nothing, and the
 * input gradient's row reductions are skipped when only parameter gradients are needed.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { needsRecord, record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { native } from "../native.js";
import { Tensor } from "../tensor.js";

declare module "../backend.js" {
  interface Kernels {
    /** out = layernorm(x) over the last dim; mean/rstd (x.shape[:-1]) are written when given. */
    layerNormForward(
      out: Tensor,
      mean: Tensor | null,
      rstd: Tensor | null,
      x: Tensor,
      weight: Tensor,
      bias: Tensor | null,
      eps: number,
    ): void;
    /** Writes each non-null gradient from g (like x), the input and the saved mean/rstd. */
    layerNormBackward(
      dx: Tensor | null,
      dweight: Tensor | null,
      dbias: Tensor | null,
      g: Tensor,
      x: Tensor,
      weight: Tensor,
      mean: Tensor,
      rstd: Tensor,
    ): void;
    rmsNormForward(out: Tensor, rstd: Tensor | null, x: Tensor, weight: Tensor, eps: number): void;
    rmsNormBackward(
      dx: Tensor | null,
      dweight: Tensor | null,
      g: Tensor,
      x: Tensor,
      weight: Tensor,
      rstd: Tensor,
    ): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    layernormForward(
      out: unknown,
      mean: unknown,
      rstd: unknown,
      inp: unknown,
      weight: unknown,
      bias: unknown,
      rows: number,
      c: number,
      eps: number,
    ): void;
    layernormBackward(
      dinp: unknown,
      dweight: unknown,
      dbias: unknown,
      dout: unknown,
      inp: unknown,
      weight: unknown,
      mean: unknown,
      rstd: unknown,
      rows: number,
      c: number,
    ): void;
    rmsnormForward(
      out: unknown,
      rstd: unknown,
      inp: unknown,
      weight: unknown,
      rows: number,
      c: number,
      eps: number,
    ): void;
    rmsnormBackward(
      dinp: unknown,
      dweight: unknown,
      dout: unknown,
      inp: unknown,
      weight: unknown,
      rstd: unknown,
      rows: number,
      c: number,
    ): void;
  }
}

/** (rows, C) of a tensor normalised over its last dim. */
const rowsOf = (x: Tensor): [number, number] => {
  const c = x.dim(-1);
  return [c === 0 ? 0 : x.size / c, c];
};

registerKernels("cpu", {
  layerNormForward(out, mean, rstd, x, weight, bias, eps) {
    const [rows, c] = rowsOf(x);
    native.layernormForward(
      out.data,
      mean?.data ?? null,
      rstd?.data ?? null,
      x.data,
      weight.data,
      bias?.data ?? null,
      rows,
      c,
      eps,
    );
  },
  layerNormBackward(dx, dweight, dbias, g, x, weight, mean, rstd) {
    const [rows, c] = rowsOf(x);
    native.layernormBackward(
      dx?.data ?? null,
      dweight?.data ?? null,
      dbias?.data ?? null,
      g.data,
      x.data,
      weight.data,
      mean.data,
      rstd.data,
      rows,
      c,
    );
  },
  rmsNormForward(out, rstd, x, weight, eps) {
    const [rows, c] = rowsOf(x);
    native.rmsnormForward(out.data, rstd?.data ?? null, x.data, weight.data, rows, c, eps);
  },
  rmsNormBackward(dx, dweight, g, x, weight, rstd) {
    const [rows, c] = rowsOf(x);
    native.rmsnormBackward(dx?.data ?? null, dweight?.data ?? null, g.data, x.data, weight.data, rstd.data, rows, c);
  },
});

function checkNormArgs(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, eps: number): void {
  if (x.dtype !== "float32" && x.dtype !== "float64")
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `${op}: input must be float32 or float64, got ${x.dtype}`);
  if (x.ndim < 1 || x.dim(-1) < 1)
    throw new ShapeError(op, `input ${fmtShape(x.shape)} needs a last dimension of size ≥ 1`);
  const c = x.dim(-1);
  for (const [name, t] of [
    ["weight", weight],
    ["bias", bias],
  ] as const) {
    if (t === null) continue;
    if (t.ndim !== 1 || t.size !== c)
      throw new ShapeError(
        op,
        `${name} ${fmtShape(t.shape)} does not match input ${fmtShape(x.shape)} (expected [${c}])`,
      );
    if (t.dtype !== x.dtype) throw new ShapeError(op, `dtype mismatch: input ${x.dtype} vs ${name} ${t.dtype}`);
    if (t.device !== x.device) throw new ShapeError(op, `device mismatch: input ${x.device} vs ${name} ${t.device}`);
  }
  if (!(eps >= 0) || !Number.isFinite(eps))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: eps must be a finite number ≥ 0, got ${eps}`);
}

/** Layer normalisation over the last dim (torch.nn.functional.layer_norm with normalized_shape = [C]). */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null = null, eps = 1e-5): Tensor {
  checkNormArgs("layerNorm", x, weight, bias, eps);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const k = kernels(x.device);
  const out = Tensor.uninit(x.shape, x.dtype, x.device);
  if (!needsRecord(inputs)) {
    k.layerNormForward(out, null, null, x, weight, bias, eps);
    return out;
  }
  const stats = x.shape.slice(0, -1);
  const mean = Tensor.uninit(stats, x.dtype, x.device);
  const rstd = Tensor.uninit(stats, x.dtype, x.device);
  k.layerNormForward(out, mean, rstd, x, weight, bias, eps);
  return record(out, "layerNorm", inputs, (g, needs) => {
    const dx = needs[0] ? Tensor.uninit(x.shape, x.dtype, x.device) : null;
    const dw = needs[1] ? Tensor.uninit(weight.shape, weight.dtype, weight.device) : null;
    const db = bias && needs[2] ? Tensor.uninit(bias.shape, bias.dtype, bias.device) : null;
    if (dx || dw || db) kernels(x.device).layerNormBackward(dx, dw, db, g, x, weight, mean, rstd);
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

/** RMS normalisation over the last dim: Llama's RMSNorm, T5's T5LayerNorm (no mean subtraction, no bias). */
export function rmsNorm(x: Tensor, weight: Tensor, eps = 1e-6): Tensor {
  checkNormArgs("rmsNorm", x, weight, null, eps);
  const k = kernels(x.device);
  const out = Tensor.uninit(x.shape, x.dtype, x.device);
  if (!needsRecord([x, weight])) {
    k.rmsNormForward(out, null, x, weight, eps);
    return out;
  }
  const rstd = Tensor.uninit(x.shape.slice(0, -1), x.dtype, x.device);
  k.rmsNormForward(out, rstd, x, weight, eps);
  return record(out, "rmsNorm", [x, weight], (g, needs) => {
    const dx = needs[0] ? Tensor.uninit(x.shape, x.dtype, x.device) : null;
    const dw = needs[1] ? Tensor.uninit(weight.shape, weight.dtype, weight.device) : null;
    if (dx || dw) kernels(x.device).rmsNormBackward(dx, dw, g, x, weight, rstd);
    return [dx, dw];
  });
}
