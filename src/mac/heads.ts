/**
 * Per-slot layers, stacked: G independent copies of a layer (one per slot or prefix position) held as one
 * (G, ...) parameter and applied with one batched matmul over the group dim, instead of G small modules.
 * Inputs are laid out group-first, (G, B, C): slot g of every batch item goes through copy g.
 *
 *   StackedLinear(G, in, out):  y[g] = x[g] · W[g]ᵀ + b[g]      W (G, out, in), b (G, out)     (G, B, in) -> (G, B, out)
 *   StackedLayerNorm(G, C):     y[g] = LN(x[g]) ⊙ w[g] + b[g]   w, b (G, C)                    (G, B, C) -> (G, B, C)
 *
 * SlotHeads: MAC's per-slot MLP heads (reference models/module/aggregate.py, class MLP; one per latent slot):
 *   MLP_i(x) = skip_i(x) + fc2_i(tanh(fc1_i(LN_i(x))))   fc1: dIn -> d, fc2: d -> d,
 *   skip_i = identity if dIn == d, else Linear(dIn, d) with bias.
 *   forward: (B, T, dIn) -> (B, T, d), slot i through head i.
 * Parameter names and the reference's (mlps.{i}.*): norm.weight[i] = mlp.0.weight, fc1.weight[i] = mlp.1.weight,
 * fc2.weight[i] = mlp.3.weight, skip.weight[i] = skip.weight (biases likewise).
 *
 * Initialisation is PyTorch's default per copy (Linear: U(±1/sqrt(in)) for weight and bias; LayerNorm: 1, 0).
 */
import { MacLmError, ShapeError, fmtShape } from "../errors.js";
import { Module } from "../nn/module.js";
import {
  type FloatDType,
  Tensor,
  add,
  layerNorm,
  matmul,
  mul,
  permute,
  reshape,
  tanh,
  untrack,
} from "../tensor/index.js";
import { Rng, rand, randn } from "../tensor/random.js";

export interface StackedInitOptions {
  /** Seeded generator for the initial values (default: a fixed seed). */
  rng?: Rng;
  /** Normal(0, std²) weights and zero biases instead of PyTorch's uniform default. */
  std?: number;
  /** Parameter dtype (float64 for gradient checks). Default float32. */
  dtype?: FloatDType;
}

/**
 * Converts every parameter of a module tree to `dtype` in place (float64 for gradient checks), keeping
 * requiresGrad. Returns the module.
 */
export function castParameters<M extends Module>(m: M, dtype: FloatDType): M {
  const visit = (mod: Module): void => {
    const rec = mod as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(mod)) {
      if (v instanceof Tensor) {
        if (v.dtype === dtype) continue;
        const t = untrack(v.to(dtype));
        t.requiresGrad = v.requiresGrad;
        v.dispose();
        rec[k] = t;
      }
    }
    for (const [, c] of mod.children()) visit(c);
  };
  visit(m);
  return m;
}

/** G copies of torch.nn.Linear(in, out), applied to (G, B, in). */
export class StackedLinear extends Module {
  weight: Tensor; // (G, out, in)
  bias: Tensor | null; // (G, out)

  constructor(
    readonly groups: number,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: StackedInitOptions & { bias?: boolean; zero?: boolean } = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const dtype = opts.dtype ?? "float32";
    const bound = 1 / Math.sqrt(inFeatures);
    const wShape = [groups, outFeatures, inFeatures];
    this.weight = this.param(
      opts.zero
        ? Tensor.zeros(wShape, dtype)
        : opts.std !== undefined
          ? randn(wShape, { rng, std: opts.std, dtype })
          : rand(wShape, { rng, low: -bound, high: bound, dtype }),
    );
    this.bias =
      (opts.bias ?? true)
        ? this.param(
            opts.zero || opts.std !== undefined
              ? Tensor.zeros([groups, outFeatures], dtype)
              : rand([groups, outFeatures], { rng, low: -bound, high: bound, dtype }),
          )
        : null;
  }

  /** x (G, B, in) -> (G, B, out). */
  forward(x: Tensor): Tensor {
    const G = this.groups;
    if (x.ndim !== 3 || x.dim(0) !== G || x.dim(2) !== this.inFeatures)
      throw new ShapeError(
        "StackedLinear",
        `input ${fmtShape(x.shape)} must be (G, B, in) = (${G}, B, ${this.inFeatures}); weight ${fmtShape(this.weight.shape)}`,
      );
    const y = matmul(x, this.weight, { transB: true }); // (G, B, out)
    return this.bias ? add(y, reshape(this.bias, [G, 1, this.outFeatures])) : y;
  }
}

/** G copies of torch.nn.LayerNorm(C), applied to (G, B, C). */
export class StackedLayerNorm extends Module {
  weight: Tensor; // (G, C)
  bias: Tensor; // (G, C)
  #ones: Tensor | null = null;

  constructor(
    readonly groups: number,
    readonly dim: number,
    readonly eps = 1e-5,
    opts: { dtype?: FloatDType } = {},
  ) {
    super();
    const dtype = opts.dtype ?? "float32";
    this.weight = this.param(Tensor.full([groups, dim], 1, dtype));
    this.bias = this.param(Tensor.zeros([groups, dim], dtype));
  }

  /** A constant (C) of ones in x's dtype: the normalisation runs unscaled, then the per-copy affine applies. */
  private ones(dtype: FloatDType): Tensor {
    if (this.#ones === null || this.#ones.dtype !== dtype) {
      this.#ones?.dispose();
      this.#ones = untrack(Tensor.full([this.dim], 1, dtype));
    }
    return this.#ones;
  }

  /** x (G, B, C) -> (G, B, C). */
  forward(x: Tensor): Tensor {
    const [G, C] = [this.groups, this.dim];
    if (x.ndim !== 3 || x.dim(0) !== G || x.dim(2) !== C)
      throw new ShapeError("StackedLayerNorm", `input ${fmtShape(x.shape)} must be (G, B, C) = (${G}, B, ${C})`);
    if (x.dtype !== "float32" && x.dtype !== "float64")
      throw new MacLmError(
        "MACLM_DTYPE_MISMATCH",
        `StackedLayerNorm: input must be float32 or float64, got ${x.dtype}`,
      );
    const n = layerNorm(x, this.ones(x.dtype), null, this.eps);
    return add(mul(n, reshape(this.weight, [G, 1, C])), reshape(this.bias, [G, 1, C]));
  }

  override dispose(): void {
    this.#ones?.dispose();
    this.#ones = null;
    super.dispose();
  }
}

export interface SlotHeadsOptions extends StackedInitOptions {
  /** LayerNorm epsilon (torch default 1e-5). */
  eps?: number;
}

/** T per-slot MLP heads (see the module comment): (B, T, dIn) -> (B, T, d). */
export class SlotHeads extends Module {
  norm: StackedLayerNorm;
  fc1: StackedLinear;
  fc2: StackedLinear;
  skip: StackedLinear | null;

  constructor(
    readonly numSlots: number,
    readonly inDim: number,
    readonly outDim: number,
    opts: SlotHeadsOptions = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const init = { rng, std: opts.std, dtype: opts.dtype };
    this.norm = new StackedLayerNorm(numSlots, inDim, opts.eps ?? 1e-5, { dtype: opts.dtype });
    this.fc1 = new StackedLinear(numSlots, inDim, outDim, init);
    this.fc2 = new StackedLinear(numSlots, outDim, outDim, init);
    this.skip = inDim === outDim ? null : new StackedLinear(numSlots, inDim, outDim, init);
  }

  /** x (B, T, dIn) -> (B, T, d). */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 3 || x.dim(1) !== this.numSlots || x.dim(2) !== this.inDim)
      throw new ShapeError(
        "SlotHeads",
        `input ${fmtShape(x.shape)} must be (B, T, dIn) = (B, ${this.numSlots}, ${this.inDim})`,
      );
    const xs = permute(x, [1, 0, 2]); // (T, B, dIn)
    const h = this.fc2.forward(tanh(this.fc1.forward(this.norm.forward(xs)))); // (T, B, d)
    const y = add(this.skip ? this.skip.forward(xs) : xs, h); // (T, B, d)
    return permute(y, [1, 0, 2]); // (B, T, d)
  }
}
