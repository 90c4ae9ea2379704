/**
 * Activations (elementwise, any shape) and softmax over the last dimension.
 *   gelu(x, "none")  x·Φ(x), the exact erf form (BERT; torch's default)
 *   gelu(x, "tanh")  ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (GPT-2's gelu_new)
 *   silu(x)          x·σ(x)
 *   swiglu(gate, up) silu(gate)·up, one fused op (the Llama MLP's gate; gate and up have the same shape)
 *   tanh(x), sigmoid(x)
 *   softmax(x)       exp(x − max)/Σ exp(x − max) over the last dim, numerically stable
 * Backward: gelu/silu/swiglu recompute from their inputs; tanh, sigmoid and softmax use their output
 * (softmax: dx = y ⊙ (g − Σ g ⊙ y) per row).
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { native } from "../native.js";
import { Tensor } from "../tensor.js";

export type GeluApproximate = "none" | "tanh";

declare module "../backend.js" {
  interface Kernels {
    geluForward(out: Tensor, x: Tensor, approximate: GeluApproximate): void;
    geluBackward(dx: Tensor, g: Tensor, x: Tensor, approximate: GeluApproximate): void;
    siluForward(out: Tensor, x: Tensor): void;
    siluBackward(dx: Tensor, g: Tensor, x: Tensor): void;
    swigluForward(out: Tensor, gate: Tensor, up: Tensor): void;
    /** Writes dgate and/or dup (null: not needed). */
    swigluBackward(dgate: Tensor | null, dup: Tensor | null, g: Tensor, gate: Tensor, up: Tensor): void;
    tanhForward(out: Tensor, x: Tensor): void;
    /** From the forward output y. */
    tanhBackward(dx: Tensor, g: Tensor, y: Tensor): void;
    sigmoidForward(out: Tensor, x: Tensor): void;
    /** From the forward output y. */
    sigmoidBackward(dx: Tensor, g: Tensor, y: Tensor): void;
    /** Over the last dim. */
    softmaxForward(out: Tensor, x: Tensor): void;
    /** From the forward output y, over the last dim. */
    softmaxBackward(dx: Tensor, g: Tensor, y: Tensor): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    geluForward(out: unknown, inp: unknown, approximate: number): void;
    geluBackward(dinp: unknown, dout: unknown, inp: unknown, approximate: number): void;
    siluForward(out: unknown, inp: unknown): void;
    siluBackward(dinp: unknown, dout: unknown, inp: unknown): void;
    swigluForward(out: unknown, gate: unknown, up: unknown): void;
    swigluBackward(dgate: unknown, dup: unknown, dout: unknown, gate: unknown, up: unknown): void;
    tanhForward(out: unknown, inp: unknown): void;
    tanhBackward(dinp: unknown, dout: unknown, out: unknown): void;
    sigmoidForward(out: unknown, inp: unknown): void;
    sigmoidBackward(dinp: unknown, dout: unknown, out: unknown): void;
    softmaxForward(out: unknown, inp: unknown, rows: number, c: number): void;
    softmaxBackward(dinp: unknown, dout: unknown, out: unknown, rows: number, c: number): void;
  }
}

const approxCode = (a: GeluApproximate): number => (a === "tanh" ? 1 : 0);
const lastDim = (x: Tensor): [number, number] => {
  const c = x.ndim === 0 ? 1 : x.dim(-1);
  return [c === 0 ? 0 : x.size / c, c];
};

registerKernels("cpu", {
  geluForward: (out, x, a) => native.geluForward(out.data, x.data, approxCode(a)),
  geluBackward: (dx, g, x, a) => native.geluBackward(dx.data, g.data, x.data, approxCode(a)),
  siluForward: (out, x) => native.siluForward(out.data, x.data),
  siluBackward: (dx, g, x) => native.siluBackward(dx.data, g.data, x.data),
  swigluForward: (out, gate, up) => native.swigluForward(out.data, gate.data, up.data),
  swigluBackward: (dgate, dup, g, gate, up) =>
    native.swigluBackward(dgate?.data ?? null, dup?.data ?? null, g.data, gate.data, up.data),
  tanhForward: (out, x) => native.tanhForward(out.data, x.data),
  tanhBackward: (dx, g, y) => native.tanhBackward(dx.data, g.data, y.data),
  sigmoidForward: (out, x) => native.sigmoidForward(out.data, x.data),
  sigmoidBackward: (dx, g, y) => native.sigmoidBackward(dx.data, g.data, y.data),
  softmaxForward(out, x) {
    const [rows, c] = lastDim(x);
    native.softmaxForward(out.data, x.data, rows, c);
  },
  softmaxBackward(dx, g, y) {
    const [rows, c] = lastDim(y);
    native.softmaxBackward(dx.data, g.data, y.data, rows, c);
  },
});

function checkFloat(op: string, x: Tensor): void {
  if (x.dtype !== "float32" && x.dtype !== "float64")
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `${op}: input must be float32 or float64, got ${x.dtype}`);
}

const like = (x: Tensor): Tensor => Tensor.uninit(x.shape, x.dtype, x.device);

/** GELU; `approximate` as in torch: "none" (exact, erf) or "tanh" (GPT-2). */
export function gelu(x: Tensor, approximate: GeluApproximate = "none"): Tensor {
  checkFloat("gelu", x);
  if (approximate !== "none" && approximate !== "tanh")
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `gelu: approximate must be "none" or "tanh", got ${String(approximate)}`,
    );
  const out = like(x);
  kernels(x.device).geluForward(out, x, approximate);
  return record(out, "gelu", [x], (g) => {
    const dx = like(x);
    kernels(x.device).geluBackward(dx, g, x, approximate);
    return [dx];
  });
}

/** SiLU (swish): x·σ(x). */
export function silu(x: Tensor): Tensor {
  checkFloat("silu", x);
  const out = like(x);
  kernels(x.device).siluForward(out, x);
  return record(out, "silu", [x], (g) => {
    const dx = like(x);
    kernels(x.device).siluBackward(dx, g, x);
    return [dx];
  });
}

/** silu(gate)·up in one pass (Llama MLP: down(swiglu(gate(x), up(x)))). */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  checkFloat("swiglu", gate);
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i]))
    throw new ShapeError(
      "swiglu",
      `gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} must have the same shape`,
    );
  if (gate.dtype !== up.dtype) throw new ShapeError("swiglu", `dtype mismatch: gate ${gate.dtype} vs up ${up.dtype}`);
  if (gate.device !== up.device)
    throw new ShapeError("swiglu", `device mismatch: gate ${gate.device} vs up ${up.device}`);
  const out = like(gate);
  kernels(gate.device).swigluForward(out, gate, up);
  return record(out, "swiglu", [gate, up], (g, needs) => {
    const dgate = needs[0] ? like(gate) : null;
    const dup = needs[1] ? like(up) : null;
    if (dgate || dup) kernels(gate.device).swigluBackward(dgate, dup, g, gate, up);
    return [dgate, dup];
  });
}

export function tanh(x: Tensor): Tensor {
  checkFloat("tanh", x);
  const out = like(x);
  kernels(x.device).tanhForward(out, x);
  return record(out, "tanh", [x], (g) => {
    const dx = like(x);
    kernels(x.device).tanhBackward(dx, g, out);
    return [dx];
  });
}

/** σ(x) = 1/(1 + e^−x). */
export function sigmoid(x: Tensor): Tensor {
  checkFloat("sigmoid", x);
  const out = like(x);
  kernels(x.device).sigmoidForward(out, x);
  return record(out, "sigmoid", [x], (g) => {
    const dx = like(x);
    kernels(x.device).sigmoidBackward(dx, g, out);
    return [dx];
  });
}

/** Softmax over the last dimension (a 0-d tensor counts as one row of one). */
export function softmax(x: Tensor): Tensor {
  checkFloat("softmax", x);
  const out = like(x);
  kernels(x.device).softmaxForward(out, x);
  return record(out, "softmax", [x], (g) => {
    const dx = like(x);
    kernels(x.device).softmaxBackward(dx, g, out);
    return [dx];
  });
}
