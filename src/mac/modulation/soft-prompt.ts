/**
 * Latent z (B, T, d) → T soft tokens that the frozen LM reads as if they were the start of its context:
 *
 *   e = e₀ + g ⊙ W·LN(z)                  (B, T, C)   input embeddings; e₀ (T, C) starts as the embeddings of a
 *                                                     neutral text and g small, so that an untrained memory reads
 *                                                     as a harmless preamble instead of noise
 *   (K_l, V_l) = LM layers over e          (B, T, NKV, HS) for every layer l, rotary positions 0..T−1
 *   prefix[l] = (K_l, V_l)                 the question's tokens then start at position T
 *
 * Unlike a P-tuning prefix, whose per-layer keys/values are free outputs of an FFN that must learn every layer's
 * key/value distribution (norms, rotary phases) from scratch, the soft tokens pass through the LM's own layers: the
 * memory speaks the LM's input language (the interface of gist tokens, ICAE and xRAG). The cost is one LM forward
 * (and backward, in training) over T extra positions. Gradients reach z through the frozen LM.
 */
import { LayerNorm, Linear } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import type { CausalLM, Modulation } from "../../models/types.js";
import { ShapeError, fmtShape } from "../../errors.js";
import { Tensor, add, mul } from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import type { ModulationGenerator } from "./prefix.js";

export interface SoftPromptOptions {
  rng?: Rng;
  /** Initial gain g of the latent's contribution (default 0.1 · the RMS of the LM's embeddings, given by the builder). */
  gain?: number;
  /** Initial e₀ (T, C): input embeddings of a neutral text (default zeros). */
  base?: Tensor;
  /** T: soft tokens (the latent's length). */
  numTokens: number;
}

export class SoftPromptModulation extends Module implements ModulationGenerator {
  readonly latentDim: number;
  norm: LayerNorm;
  proj: Linear; // (C, d)
  gain: Tensor; // (C)
  base: Tensor; // (T, C)
  readonly #lm: CausalLM;

  constructor(lm: CausalLM, latentDim: number, opts: SoftPromptOptions) {
    super();
    this.#lm = lm;
    this.latentDim = latentDim;
    const rng = opts.rng ?? new Rng(0);
    this.norm = new LayerNorm(latentDim);
    this.proj = new Linear(latentDim, lm.hiddenSize, { rng, std: 1 / Math.sqrt(latentDim) });
    this.gain = this.param(Tensor.full([lm.hiddenSize], opts.gain ?? 0.1));
    const T = opts.numTokens;
    if (opts.base && (opts.base.ndim !== 2 || opts.base.dim(0) !== T || opts.base.dim(1) !== lm.hiddenSize))
      throw new ShapeError(
        "SoftPromptModulation",
        `base ${fmtShape(opts.base.shape)} must be (${T}, ${lm.hiddenSize})`,
      );
    this.base = this.param(opts.base ?? Tensor.zeros([T, lm.hiddenSize]));
  }

  forward(z: Tensor): Modulation {
    const B = z.dim(0);
    const e = add(this.base, mul(this.proj.forward(this.norm.forward(z)), this.gain)); // (B, T, C)
    const cache = this.#lm.newCache(B);
    this.#lm.hidden({ ids: Tensor.zeros([B, 0], "int32"), appendEmbeds: e, cache });
    return { prefix: cache.layers }; // per layer (B, T, NKV, HS), keys rotated at positions 0..T−1
  }
}
