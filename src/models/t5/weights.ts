/**
 * Loading T5 weights from a Hugging Face checkpoint (T5Model, T5ForConditionalGeneration or T5EncoderModel):
 * our parameter names are transformers'. Tied copies of `shared` (encoder.embed_tokens.weight,
 * decoder.embed_tokens.weight, and lm_head.weight when the head is tied) are ignored, as is the unused
 * decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight of old checkpoints; a checkpoint without
 * shared.weight (some T5EncoderModel exports) gives it through encoder.embed_tokens.weight. Building without the
 * decoder or without the LM head ignores their entries.
 */
import { type WeightSource, fillParameters } from "../checkpoint.js";
import { loadSafetensorsFolder, readHfConfig } from "../hf-folder.js";
import { t5ConfigFromJson } from "./config.js";
import { type T5LmHead, T5Model } from "./model.js";

const ALWAYS_IGNORED =
  /^(encoder|decoder)\.embed_tokens\.weight$|^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$/;

/** Copies a checkpoint into `model` (see the module comment). */
export function loadT5Weights(model: T5Model, src: WeightSource): void {
  const have = new Set(src.names);
  const sharedKey =
    have.has("shared.weight") || !have.has("encoder.embed_tokens.weight")
      ? "shared.weight"
      : "encoder.embed_tokens.weight";
  fillParameters(model, src, {
    keyOf: (p) => (p === "shared.weight" ? sharedKey : p),
    ignore: (n) =>
      (ALWAYS_IGNORED.test(n) && n !== sharedKey) ||
      (model.decoder === null && n.startsWith("decoder.")) ||
      (model.lm_head === null && n === "lm_head.weight"),
  });
}

export interface LoadT5Options {
  /** Freeze every weight (requiresGrad = false). */
  freeze?: boolean;
  /** Build the decoder (default true). */
  decoder?: boolean;
  /**
   * The LM head (default: "tied" when config.json's tie_word_embeddings is true or absent, else "separate", which
   * needs lm_head.weight in the checkpoint; "none" without a decoder). MAC's amortizer uses "none".
   */
  lmHead?: T5LmHead;
}

/** A T5Model from a Hugging Face folder (config.json + model.safetensors or a sharded index), in evaluation mode. */
export function loadT5(dir: string, opts: LoadT5Options = {}): T5Model {
  const { json, source } = readHfConfig(dir, "t5");
  const config = t5ConfigFromJson(json, source);
  return loadSafetensorsFolder(
    dir,
    () => new T5Model(config, { decoder: opts.decoder, lmHead: opts.lmHead }),
    loadT5Weights,
    opts,
  );
}
