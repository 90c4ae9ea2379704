/**
 * Inverted dropout: each element is zeroed with probability p and the rest are scaled by 1/(1 − p).
 *
 * The mask is counter-based: element i is kept iff hash(seed, i) ≥ p·2^24 (see native/kernels/dropout.cc), so
 * the same seed gives the same mask on every run, machine and thread count, and backward regenerates the mask
 * from the seed instead of storing it (no memory held between forward and backward). Callers pass a fresh
 * seed per call site and step (e.g. derived from the step number and layer index) to get independent masks.
 *
 * p = 0 or training = false returns the input itself: no copy, no graph node.
 */
import { MacLmError } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { native } from "../native.js";
import { Tensor } from "../tensor.js";

declare module "../backend.js" {
  interface Kernels {
    /** out = x ⊙ mask(seed, p) / (1 − p); the same call on g gives the backward. */
    dropoutForward(out: Tensor, x: Tensor, p: number, seed: number): void;
    dropoutBackward(dx: Tensor, g: Tensor, p: number, seed: number): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    dropoutForward(out: unknown, inp: unknown, p: number, seed: number): void;
    dropoutBackward(dinp: unknown, dout: unknown, p: number, seed: number): void;
  }
}

registerKernels("cpu", {
  dropoutForward: (out, x, p, seed) => native.dropoutForward(out.data, x.data, p, seed),
  dropoutBackward: (dx, g, p, seed) => native.dropoutBackward(dx.data, g.data, p, seed),
});

export interface DropoutOptions {
  /** Selects the mask: any safe integer (negative ones too). Same seed and size, same mask. */
  seed: number;
  /** Default true; false returns the input unchanged (evaluation). */
  training?: boolean;
}

export function dropout(x: Tensor, p: number, opts: DropoutOptions): Tensor {
  if (!(p >= 0 && p <= 1)) throw new MacLmError("MACLM_BAD_ARGUMENT", `dropout: p must be in [0, 1], got ${p}`);
  if (!Number.isSafeInteger(opts.seed))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `dropout: seed must be a safe integer, got ${opts.seed}`);
  if (x.dtype !== "float32" && x.dtype !== "float64")
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `dropout: input must be float32 or float64, got ${x.dtype}`);
  if (p === 0 || opts.training === false) return x;
  const seed = opts.seed;
  const out = Tensor.uninit(x.shape, x.dtype, x.device);
  kernels(x.device).dropoutForward(out, x, p, seed);
  return record(out, "dropout", [x], (g) => {
    const dx = Tensor.uninit(g.shape, g.dtype, g.device);
    kernels(g.device).dropoutBackward(dx, g, p, seed);
    return [dx];
  });
}
