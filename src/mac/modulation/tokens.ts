/**
 * The extractive memory's modulation: the chosen entry z (B, W + 1, C) (aggregate/select.ts) is read by the frozen
 * LM as text — its W token-embedding rows, then the separator's embeddings — and the LM's own layers turn them into
 * every layer's prefix keys/values, exactly the keys/values of the window's tokens placed before the question
 * (test: modulation/tokens.test.ts). The last row (the entry's key for the selection) is not read. No parameters.
 *
 *   e        = [z[:, :W] ; E[separator]]          (B, W + S, C)
 *   prefix_l = LM layers over e                   per layer (B, W + S, NKV, HS), positions 0..W+S−1
 */
import { MacLmError } from "../../errors.js";
import type { CausalLM, Modulation } from "../../models/types.js";
import { Module } from "../../nn/module.js";
import { ShapeError, fmtShape } from "../../errors.js";
import { Tensor, concat, expand, reshape, slice } from "../../tensor/index.js";
import type { Tokenizer } from "../../tokenizers/index.js";
import { WINDOW_SEPARATOR, inputEmbeddingTable } from "../amortize/window-entry.js";
import type { ModulationGenerator } from "./prefix.js";

export class TokensModulation extends Module implements ModulationGenerator {
  readonly latentDim: number;
  readonly #lm: CausalLM;
  readonly #separator: Tensor; // (S, C)

  constructor(lm: CausalLM, tokenizer: Tokenizer) {
    super();
    const table = inputEmbeddingTable(lm);
    if (!table)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `tokens modulation: ${lm.modelType} exposes no input embeddings`);
    this.#lm = lm;
    this.latentDim = lm.hiddenSize;
    const C = lm.hiddenSize;
    const ids = tokenizer.encode(WINDOW_SEPARATOR, { addSpecialTokens: false });
    this.#separator = Tensor.zeros([ids.length, C]);
    ids.forEach((id, i) => this.#separator.data.set(table.f32.subarray(id * C, (id + 1) * C), i * C));
  }

  forward(z: Tensor): Modulation {
    const C = this.latentDim;
    if (z.ndim !== 3 || z.dim(2) !== C || z.dim(1) < 2)
      throw new ShapeError("TokensModulation", `latent ${fmtShape(z.shape)} must be (B, W + 1, ${C})`);
    const [B, T] = [z.dim(0), z.dim(1)];
    const S = this.#separator.dim(0);
    const sep = expand(reshape(this.#separator, [1, S, C]), [B, S, C]);
    const e = concat([slice(z, 1, 0, T - 1), sep], 1); // (B, W + S, C)
    const cache = this.#lm.newCache(B);
    this.#lm.hidden({ ids: Tensor.zeros([B, 0], "int32"), appendEmbeds: e, cache });
    return { prefix: cache.layers };
  }
}
