/**
 * The basic layers, holding parameters under Hugging Face's names (weight, bias) so checkpoints load by key.
 * Weights are initialised like PyTorch's defaults unless a std is given (models re-initialise as their papers do).
 */
import { type Tensor, dropout, embedding, layerNorm, linear, rmsNorm } from "../tensor/index.js";
import { Tensor as T } from "../tensor/index.js";
import { Rng, randn, rand } from "../tensor/random.js";
import { Module } from "./module.js";

export interface InitOptions {
  /** Seeded generator for the initial values. */
  rng?: Rng;
  /** Normal(0, std²) weights instead of PyTorch's uniform default. */
  std?: number;
}

/** y = x·Wᵀ + b with W (out, in), as torch.nn.Linear. */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: InitOptions & { bias?: boolean } = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.param(
      opts.std !== undefined
        ? randn([outFeatures, inFeatures], { rng, std: opts.std })
        : rand([outFeatures, inFeatures], { rng, low: -bound, high: bound }),
    );
    this.bias =
      (opts.bias ?? true)
        ? this.param(
            opts.std !== undefined ? T.zeros([outFeatures]) : rand([outFeatures], { rng, low: -bound, high: bound }),
          )
        : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class Embedding extends Module {
  weight: Tensor;

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    opts: InitOptions = {},
  ) {
    super();
    this.weight = this.param(randn([numEmbeddings, dim], { rng: opts.rng ?? new Rng(0), std: opts.std ?? 1 }));
  }

  /** ids: int32 (...) -> (..., dim) */
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    opts: { bias?: boolean } = {},
  ) {
    super();
    this.weight = this.param(T.full([dim], 1));
    this.bias = (opts.bias ?? true) ? this.param(T.zeros([dim])) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** x · rsqrt(mean(x²) + eps) · w — Llama's RMSNorm and T5's LayerNorm. */
export class RMSNorm extends Module {
  weight: Tensor;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.weight = this.param(T.full([dim], 1));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

// Dropout masks come from a seeded counter: each call takes the next seed, so a run is reproducible from its
// starting seed, and a resumed run continues the same sequence once the counter is restored.
let dropoutSeed = 0;
export const dropoutState = (): number => dropoutSeed;
export function setDropoutState(seed: number): void {
  dropoutSeed = seed;
}
/** Takes the counter's next seed (for dropout inside other ops: attention probabilities). */
export const nextDropoutSeed = (): number => dropoutSeed++;

/**
 * The attention op's dropout option for a module's attention probabilities (Hugging Face's attn_pdrop /
 * attention_dropout): a fresh seed in training mode with p > 0, else null (eval mode: no dropout, no seed taken).
 */
export function attentionDropout(module: Module, p: number): { p: number; seed: number } | null {
  return module.training && p > 0 ? { p, seed: nextDropoutSeed() } : null;
}

export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, { seed: nextDropoutSeed(), training: true });
  }
}
