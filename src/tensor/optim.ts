/**
 * Optimisation: AdamW with torch.optim.AdamW's semantics, and global gradient-norm clipping.
 *
 *   const opt = new AdamW(params, { lr: 3e-4, weightDecay: 0.1 });   // owns m and v (opt.dispose() frees them)
 *   const grads = grad(loss, params);
 *   clipGradNorm(grads, 1.0);
 *   opt.step(grads);                                                  // grads are not zeroed; dispose them
 *
 * AdamW (per parameter p with gradient g, step t counted from 1, fused in one native kernel):
 *   p <- p (1 - lr wd);  m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g²
 *   p <- p - lr / (1 - beta1^t) · m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * weightDecay 0 is Adam. Parameter groups may override weightDecay (e.g. 0 for norms and biases). `lr` is a
 * public field, for schedules. stateDict()/loadStateDict() carry m, v, the step counts and the hyperparameters
 * for an exact resume.
 */
import { MacLmError, fmtShape } from "../errors.js";
import { kernels, registerKernels } from "./backend.js";
import { isFloat } from "./dtype.js";
import { native } from "./native.js";
import { untrack } from "./scope.js";
import { Tensor } from "./tensor.js";
import { axpyInPlace } from "./ops/elementwise.js"; // also registers the affine kernel used by clipGradNorm

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step number of this update, from 1 (bias correction). */
  step: number;
}

declare module "./backend.js" {
  interface Kernels {
    /** One AdamW update in place on param, m and v (see optim.ts). */
    adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, h: AdamWHyper): void;
    /** Sum of squares of all elements, accumulated in double. */
    sumSquares(x: Tensor): number;
  }
}

declare module "./native.js" {
  interface NativeAddon {
    adamwStep(
      param: unknown,
      grad: unknown,
      m: unknown,
      v: unknown,
      lr: number,
      beta1: number,
      beta2: number,
      eps: number,
      weightDecay: number,
      step: number,
    ): void;
    sumSquares(x: unknown): number;
  }
}

registerKernels("cpu", {
  adamwStep: (p, g, m, v, h) =>
    native.adamwStep(p.data, g.data, m.data, v.data, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.step),
  sumSquares: (x) => native.sumSquares(x.data),
});

export interface AdamWOptions {
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 (torch's default). 0 gives Adam. */
  weightDecay?: number;
}

/** A set of parameters with its own weight decay (default: the optimizer's). */
export interface AdamWParamGroup {
  params: readonly Tensor[];
  weightDecay?: number;
}

/** Everything needed to resume: per-parameter m, v and step count, and the hyperparameters. */
export interface AdamWState {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Per parameter (flattened over groups, in order). */
  weightDecay: number[];
  step: number[];
  m: Tensor[];
  v: Tensor[];
}

const isGroup = (x: Tensor | AdamWParamGroup): x is AdamWParamGroup => !(x as Tensor).isTensor;

function checkHyper(name: string, value: number, lo: number, hi: number, loOpen = false): void {
  if (!Number.isFinite(value) || value < lo || (loOpen && value === lo) || value >= hi)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `AdamW: ${name} ${value} is outside ${loOpen ? "(" : "["}${lo}, ${hi})`);
}

export class AdamW {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** The parameters, flattened over groups, in order; step() takes one gradient per entry. */
  readonly params: readonly Tensor[];
  private readonly decay: number[];
  private readonly steps: number[];
  private readonly m: Tensor[];
  private readonly v: Tensor[];

  constructor(params: readonly Tensor[] | readonly AdamWParamGroup[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    const wd = opts.weightDecay ?? 0.01;
    checkHyper("lr", this.lr, 0, Infinity);
    checkHyper("beta1", this.beta1, 0, 1);
    checkHyper("beta2", this.beta2, 0, 1);
    checkHyper("eps", this.eps, 0, Infinity);
    checkHyper("weightDecay", wd, 0, Infinity);
    const flat: Tensor[] = [];
    this.decay = [];
    for (const item of params as readonly (Tensor | AdamWParamGroup)[]) {
      const group = isGroup(item) ? item : { params: [item] };
      const gwd = group.weightDecay ?? wd;
      checkHyper("weightDecay", gwd, 0, Infinity);
      for (const p of group.params) {
        if (!isFloat(p.dtype))
          throw new MacLmError(
            "MACLM_DTYPE_MISMATCH",
            `AdamW: parameter ${p.name ?? flat.length} is ${p.dtype}, not a float tensor`,
          );
        if (flat.includes(p))
          throw new MacLmError("MACLM_BAD_ARGUMENT", `AdamW: parameter ${p.name ?? flat.length} is listed twice`);
        flat.push(p);
        this.decay.push(gwd);
      }
    }
    this.params = flat;
    this.steps = flat.map(() => 0);
    // Owned by the optimizer (freed by dispose()), not by any open scope().
    this.m = flat.map((p) => untrack(Tensor.zeros(p.shape, p.dtype)));
    this.v = flat.map((p) => untrack(Tensor.zeros(p.shape, p.dtype)));
  }

  /**
   * Updates every parameter in place from its gradient (grads[i] for params[i]; null skips that parameter this
   * step, leaving its state and step count alone). Gradients are read only.
   */
  step(grads: readonly (Tensor | null)[]): void {
    if (grads.length !== this.params.length)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `AdamW.step: got ${grads.length} gradients for ${this.params.length} parameters`,
      );
    checkHyper("lr", this.lr, 0, Infinity);
    // Check everything before changing anything.
    grads.forEach((g, i) => {
      const p = this.params[i]!;
      if (g === null) return;
      if (g.dtype !== p.dtype || g.shape.length !== p.shape.length || g.shape.some((d, k) => d !== p.shape[k]))
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `AdamW.step: gradient ${i} is ${g.dtype} ${fmtShape(g.shape)}, parameter ${p.name ?? i} is ${p.dtype} ${fmtShape(p.shape)}`,
        );
      if (this.m[i]!.disposed || this.v[i]!.disposed)
        throw new MacLmError(
          "MACLM_DISPOSED",
          "AdamW.step: the optimizer state was disposed (AdamW.dispose() was called)",
        );
    });
    grads.forEach((g, i) => {
      if (g === null) return;
      const p = this.params[i]!;
      const step = ++this.steps[i]!;
      kernels(p.device).adamwStep(p, g, this.m[i]!, this.v[i]!, {
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: this.decay[i]!,
        step,
      });
    });
  }

  /**
   * The state for a checkpoint. m and v are the optimizer's own tensors (not copies): save them before the
   * next step() and do not modify them.
   */
  stateDict(): AdamWState {
    return {
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: [...this.decay],
      step: [...this.steps],
      m: [...this.m],
      v: [...this.v],
    };
  }

  /** Restores a state from stateDict() (values are copied; shapes and dtypes must match the parameters). */
  loadStateDict(s: AdamWState): void {
    const n = this.params.length;
    if (s.m.length !== n || s.v.length !== n || s.step.length !== n || s.weightDecay.length !== n)
      throw new MacLmError(
        "MACLM_BAD_CHECKPOINT",
        `AdamW.loadStateDict: state has ${s.m.length} m, ${s.v.length} v, ${s.step.length} steps, ${s.weightDecay.length} decays for ${n} parameters`,
      );
    for (let i = 0; i < n; i++) {
      const p = this.params[i]!;
      for (const [what, t] of [
        ["m", s.m[i]!],
        ["v", s.v[i]!],
      ] as const)
        if (t.dtype !== p.dtype || t.size !== p.size || t.shape.some((d, k) => d !== p.shape[k]))
          throw new MacLmError(
            "MACLM_BAD_CHECKPOINT",
            `AdamW.loadStateDict: ${what}[${i}] is ${t.dtype} ${fmtShape(t.shape)}, parameter ${p.name ?? i} is ${p.dtype} ${fmtShape(p.shape)}`,
          );
      const st = s.step[i]!;
      if (!Number.isInteger(st) || st < 0)
        throw new MacLmError("MACLM_BAD_CHECKPOINT", `AdamW.loadStateDict: step[${i}] ${st} is not a count`);
    }
    checkHyper("lr", s.lr, 0, Infinity);
    checkHyper("beta1", s.beta1, 0, 1);
    checkHyper("beta2", s.beta2, 0, 1);
    checkHyper("eps", s.eps, 0, Infinity);
    s.weightDecay.forEach((w) => checkHyper("weightDecay", w, 0, Infinity));
    this.lr = s.lr;
    this.beta1 = s.beta1;
    this.beta2 = s.beta2;
    this.eps = s.eps;
    for (let i = 0; i < n; i++) {
      if (s.m[i] !== this.m[i]) this.m[i]!.data.set(s.m[i]!.data);
      if (s.v[i] !== this.v[i]) this.v[i]!.data.set(s.v[i]!.data);
      this.steps[i] = s.step[i]!;
      this.decay[i] = s.weightDecay[i]!;
    }
  }

  /** Frees m and v. */
  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/**
 * Global L2 norm of all gradients (sum of squares in double), and in-place scaling of every gradient by
 * maxNorm / (norm + 1e-6) when the norm exceeds maxNorm (torch.nn.utils.clip_grad_norm_). Returns the norm
 * before clipping. A non-finite norm is returned as is and leaves the gradients untouched: skip that step.
 */
export function clipGradNorm(grads: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `clipGradNorm: maxNorm must be a positive number, got ${maxNorm}`);
  let sq = 0;
  for (const g of grads) {
    if (!isFloat(g.dtype))
      throw new MacLmError("MACLM_DTYPE_MISMATCH", `clipGradNorm: gradient ${fmtShape(g.shape)} is ${g.dtype}`);
    sq += kernels(g.device).sumSquares(g);
  }
  const norm = Math.sqrt(sq);
  if (Number.isFinite(norm) && norm > maxNorm) {
    const coef = maxNorm / (norm + 1e-6);
    for (const g of grads) kernels(g.device).affine(g, g, coef, 0);
  }
  return norm;
}

/**
 * Sums micro-batch gradients in place: `acc` (the first micro-batch's gradients, or null) += grads. Returns the
 * accumulator. Gradients of the same parameters, in the same order.
 */
export function accumulateGrads(acc: Tensor[] | null, grads: Tensor[]): Tensor[] {
  if (acc === null) return grads;
  if (acc.length !== grads.length)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `accumulateGrads: ${grads.length} gradients for ${acc.length}`);
  acc.forEach((g, i) => axpyInPlace(g, grads[i]!, 1));
  return acc;
}

/**
 * One optimizer step from the sum of `microBatches` micro-batches' gradients: averages them, clips the global norm
 * to `clip`, and steps (a non-finite norm skips the step, leaving weights and Adam's state alone). Returns the norm
 * before clipping. The one place where MAC's trainer and the fine-tuning baselines turn gradients into an update.
 */
export function optimizerStep(
  opt: AdamW,
  grads: readonly Tensor[],
  opts: { microBatches?: number; clip: number; lr?: number },
): number {
  const n = opts.microBatches ?? 1;
  if (n > 1) for (const g of grads) kernels(g.device).affine(g, g, 1 / n, 0);
  const norm = clipGradNorm(grads, opts.clip);
  if (opts.lr !== undefined) opt.lr = opts.lr;
  if (Number.isFinite(norm)) opt.step(grads);
  return norm;
}

/**
 * Returns freed native memory to the system: the engine's large-block cache and glibc's free pages. Long loops
 * whose tensors vary in size fragment the heap otherwise (resident memory grew by MBs per step in training, by
 * ~250 MB per batch of generations).
 */
export function releaseFreedMemory(opts: { cache?: boolean } = {}): void {
  if (opts.cache) native.trimAllocCache();
  native.mallocTrim();
}
