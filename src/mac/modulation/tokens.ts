/**
 * The extractive memory's modulation: the chosen entry z (B, W + 1, C) (aggregate/select.ts) is read by the frozen
 * LM as text — a fixed text before it, its W token-embedding rows, a fixed text after it — and the LM's own layers
 * turn them into every layer's prefix keys/values, exactly the keys/values of that text with the window's tokens in
 * it, placed before the question (test/mac/extractive.test.ts). The last row (the entry's key for the selection) is
 * not read. No parameters.
 *
 *   e        = [E[before] ; z[:, :W] ; E[after]]        (B, P, C),  P = |before| + W + |after|
 *   prefix_l = LM layers over e                         per layer (B, P, NKV, HS), positions 0..P−1
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import type { CausalLM, Modulation } from "../../models/types.js";
import { Module } from "../../nn/module.js";
import { Tensor, concat, expand, reshape, slice, untrack } from "../../tensor/index.js";
import type { Tokenizer } from "../../tokenizers/index.js";
import { inputEmbeddingTable } from "../amortize/window-entry.js";
import type { ModulationGenerator } from "./prefix.js";

export class TokensModulation extends Module implements ModulationGenerator {
  readonly latentDim: number;
  readonly #lm: CausalLM;
  /** The text around the window, as the LM reads it (a document in context is read in the same frame). */
  readonly frame: { before: string; after: string };
  readonly #before: Tensor; // (S0, C)
  readonly #after: Tensor; // (S1, C)

  constructor(lm: CausalLM, tokenizer: Tokenizer, text: { before?: string; after?: string } = {}) {
    super();
    const table = inputEmbeddingTable(lm);
    if (!table)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `tokens modulation: ${lm.modelType} exposes no input embeddings`);
    this.#lm = lm;
    this.latentDim = lm.hiddenSize;
    const C = lm.hiddenSize;
    const rows = (t: string): Tensor => {
      const ids = tokenizer.encode(t, { addSpecialTokens: false });
      const out = Tensor.zeros([ids.length, C]);
      ids.forEach((id, i) => out.data.set(table.f32.subarray(id * C, (id + 1) * C), i * C));
      return untrack(out); // held for the module's life, not by whatever scope builds it
    };
    this.frame = { before: text.before ?? "", after: text.after ?? "\n\n" };
    this.#before = rows(this.frame.before);
    this.#after = rows(this.frame.after);
  }

  forward(z: Tensor): Modulation {
    const C = this.latentDim;
    if (z.ndim !== 3 || z.dim(2) !== C || z.dim(1) < 2)
      throw new ShapeError("TokensModulation", `latent ${fmtShape(z.shape)} must be (B, W + 1, ${C})`);
    const [B, T] = [z.dim(0), z.dim(1)];
    const fixed = (t: Tensor): Tensor[] =>
      t.dim(0) === 0 ? [] : [expand(reshape(t, [1, t.dim(0), C]), [B, t.dim(0), C])];
    const e = concat([...fixed(this.#before), slice(z, 1, 0, T - 1), ...fixed(this.#after)], 1); // (B, P, C)
    const cache = this.#lm.newCache(B);
    this.#lm.hidden({ ids: Tensor.zeros([B, 0], "int32"), appendEmbeds: e, cache });
    return { prefix: cache.layers };
  }
}
