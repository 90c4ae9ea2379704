/**
 * T5's configuration, with Hugging Face's field names (T5Config in transformers/models/t5). Defaults are those of
 * transformers' T5Config (t5-small geometry); t5-base: d_model 768, d_kv 64, d_ff 3072, 12 + 12 layers, 12 heads.
 *
 * feed_forward_proj: "relu" (T5 v1.0: wi -> relu -> wo), "gated-gelu" (v1.1 / flan: gelu_new(wi_0)·wi_1 -> wo,
 * gelu_new being the tanh approximation, as transformers maps it), "gated-relu", "gelu", "gated-silu", ...
 *
 * The LM head (T5ForConditionalGeneration) as transformers 4.x reads the config: tie_word_embeddings (default
 * true) means lm_head = shared with the decoder output scaled by d_model^-0.5 first; false (v1.1) means a separate
 * lm_head.weight and no rescale. transformers 5 writes scale_decoder_outputs explicitly (and always ties); when
 * present it decides the rescale.
 */
import { MacLmError } from "../../errors.js";
import { ConfigReader, type Json } from "../config-fields.js";

export type T5Activation = "relu" | "gelu_new" | "gelu" | "silu";

export interface T5Config {
  vocab_size: number; // V
  d_model: number; // C
  d_kv: number; // HS
  d_ff: number; // feed-forward hidden size
  num_layers: number; // encoder layers
  num_decoder_layers: number; // decoder layers
  num_heads: number; // NH (= NKV)
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  dropout_rate: number; // after the embeddings, on each sublayer's output, inside the FF, after the final norm
  layer_norm_epsilon: number;
  feed_forward_proj: string; // as in config.json
  dense_act_fn: T5Activation; // derived from feed_forward_proj
  is_gated_act: boolean; // derived from feed_forward_proj
  tie_word_embeddings: boolean; // lm_head = shared (when the checkpoint has no separate lm_head.weight)
  scale_decoder_outputs: boolean; // decoder output · d_model^-0.5 before the lm_head
  initializer_factor: number;
  pad_token_id: number | null;
  eos_token_id: number | null;
  decoder_start_token_id: number | null;
}

export const T5_DEFAULTS: T5Config = {
  vocab_size: 32128,
  d_model: 512,
  d_kv: 64,
  d_ff: 2048,
  num_layers: 6,
  num_decoder_layers: 6,
  num_heads: 8,
  relative_attention_num_buckets: 32,
  relative_attention_max_distance: 128,
  dropout_rate: 0.1,
  layer_norm_epsilon: 1e-6,
  feed_forward_proj: "relu",
  dense_act_fn: "relu",
  is_gated_act: false,
  tie_word_embeddings: true,
  scale_decoder_outputs: true,
  initializer_factor: 1,
  pad_token_id: 0,
  eos_token_id: 1,
  decoder_start_token_id: 0,
};

const ACTIVATIONS: Record<string, T5Activation> = {
  relu: "relu",
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  gelu: "gelu",
  silu: "silu",
  swish: "silu",
};

/** Reads a T5 config.json (already parsed); `source` names the file in errors. */
export function t5ConfigFromJson(json: Json, source = "config.json"): T5Config {
  const r = new ConfigReader(json, source);
  const d = T5_DEFAULTS;
  const ff = r.string("feed_forward_proj", d.feed_forward_proj);
  const parts = ff.split("-");
  if ((parts.length > 1 && parts[0] !== "gated") || parts.length > 2)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: feed_forward_proj "${ff}" is not of the form "gated-{act}" or "{act}"`,
    );
  // transformers maps "gated-gelu" to gelu_new (tanh) for backwards compatibility; other names map directly.
  const actName = ff === "gated-gelu" ? "gelu_new" : parts[parts.length - 1]!;
  const act = ACTIVATIONS[actName];
  if (act === undefined)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: activation "${actName}" of feed_forward_proj "${ff}" is not supported`,
    );
  const num_layers = r.dim("num_layers", d.num_layers);
  const tie = r.bool("tie_word_embeddings", d.tie_word_embeddings);
  return {
    vocab_size: r.dim("vocab_size", d.vocab_size),
    d_model: r.dim("d_model", d.d_model),
    d_kv: r.dim("d_kv", d.d_kv),
    d_ff: r.dim("d_ff", d.d_ff),
    num_layers,
    num_decoder_layers: r.has("num_decoder_layers") ? r.dim("num_decoder_layers") : num_layers,
    num_heads: r.dim("num_heads", d.num_heads),
    relative_attention_num_buckets: r.dim("relative_attention_num_buckets", d.relative_attention_num_buckets),
    relative_attention_max_distance: r.dim("relative_attention_max_distance", d.relative_attention_max_distance),
    dropout_rate: r.prob("dropout_rate", d.dropout_rate),
    layer_norm_epsilon: r.number("layer_norm_epsilon", d.layer_norm_epsilon),
    feed_forward_proj: ff,
    dense_act_fn: act,
    is_gated_act: parts[0] === "gated",
    tie_word_embeddings: tie,
    scale_decoder_outputs: r.bool("scale_decoder_outputs", tie),
    initializer_factor: r.number("initializer_factor", d.initializer_factor),
    pad_token_id: r.has("pad_token_id") ? r.tokenId("pad_token_id") : d.pad_token_id,
    eos_token_id: r.has("eos_token_id") ? r.tokenId("eos_token_id") : d.eos_token_id,
    decoder_start_token_id: r.has("decoder_start_token_id")
      ? r.tokenId("decoder_start_token_id")
      : r.has("pad_token_id")
        ? r.tokenId("pad_token_id")
        : d.decoder_start_token_id,
  };
}
