/**
 * The frozen base LM as the amortizer's reader: its final hidden states over a text (B, L, C), so that memory
 * entries are built from what the LM itself understands of the document (Doc-to-LoRA, Generative Adapter and ICAE
 * all read the target LM's own states; a small sentence encoder is the weakest path, ../shared/design/
 * memory-training.md). The LM is held privately: it is MacModel's frozen base, never a trainable or saved part.
 */
import type { CausalLM, Encoder } from "../../models/types.js";
import { Module } from "../../nn/module.js";
import type { Tensor } from "../../tensor/index.js";

export class CausalLMEncoder extends Module implements Encoder {
  readonly modelType: string;
  readonly hiddenSize: number;
  readonly #lm: CausalLM;

  constructor(lm: CausalLM) {
    super();
    this.#lm = lm;
    this.modelType = `${lm.modelType}-encoder`;
    this.hiddenSize = lm.hiddenSize;
  }

  // ids (B, L) right-padded, mask (B, L) → (B, L, C). Causal: a token's state never depends on the padding after it.
  encode(ids: Tensor, attentionMask?: Tensor): Tensor {
    return this.#lm.hidden({ ids, attentionMask });
  }
}
