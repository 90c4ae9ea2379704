/**
 * BERT's configuration, with Hugging Face's field names (BertConfig in transformers/models/bert). Defaults are
 * those of transformers' BertConfig (bert-base-uncased); sentence-transformers/all-MiniLM-L6-v2 is a BertModel
 * with 6 layers, hidden 384, 12 heads, intermediate 1536, layer_norm_eps 1e-12.
 */
import { MacLmError } from "../../errors.js";
import { ConfigReader, type Json } from "../config-fields.js";

export interface BertConfig {
  vocab_size: number; // V
  hidden_size: number; // C
  num_hidden_layers: number; // L
  num_attention_heads: number; // NH (= NKV)
  intermediate_size: number; // feed-forward hidden size
  hidden_act: "gelu" | "gelu_new"; // gelu = exact erf form (BERT's); gelu_new = tanh approximation
  max_position_embeddings: number; // learned absolute positions (prefix included: positions start at P)
  type_vocab_size: number; // token type (segment) ids
  layer_norm_eps: number;
  hidden_dropout_prob: number; // dropout after the embeddings and on each sublayer's output
  attention_probs_dropout_prob: number; // dropout on attention probabilities (training mode)
  initializer_range: number; // std of the normal initialisation
  pad_token_id: number | null;
}

export const BERT_DEFAULTS: BertConfig = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: "gelu",
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  initializer_range: 0.02,
  pad_token_id: 0,
};

const ACTIVATIONS: Record<string, BertConfig["hidden_act"]> = {
  gelu: "gelu",
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  gelu_fast: "gelu_new",
};

/** Reads a BERT config.json (already parsed); `source` names the file in errors. */
export function bertConfigFromJson(json: Json, source = "config.json"): BertConfig {
  const r = new ConfigReader(json, source);
  const d = BERT_DEFAULTS;
  const hidden_size = r.dim("hidden_size", d.hidden_size);
  const num_attention_heads = r.dim("num_attention_heads", d.num_attention_heads);
  if (hidden_size % num_attention_heads !== 0)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: hidden_size ${hidden_size} is not a multiple of num_attention_heads ${num_attention_heads}`,
    );
  const act = r.string("hidden_act", d.hidden_act);
  const hidden_act = ACTIVATIONS[act];
  if (hidden_act === undefined)
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${source}: hidden_act "${act}" is not supported (gelu, gelu_new)`);
  const posType = r.string("position_embedding_type", "absolute");
  if (posType !== "absolute")
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: position_embedding_type "${posType}" is not supported (only "absolute")`,
    );
  if (r.bool("is_decoder", false) || r.bool("add_cross_attention", false))
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: BERT as a decoder (is_decoder / add_cross_attention) is not supported`,
    );
  return {
    vocab_size: r.dim("vocab_size", d.vocab_size),
    hidden_size,
    num_hidden_layers: r.dim("num_hidden_layers", d.num_hidden_layers),
    num_attention_heads,
    intermediate_size: r.dim("intermediate_size", d.intermediate_size),
    hidden_act,
    max_position_embeddings: r.dim("max_position_embeddings", d.max_position_embeddings),
    type_vocab_size: r.dim("type_vocab_size", d.type_vocab_size),
    layer_norm_eps: r.number("layer_norm_eps", d.layer_norm_eps),
    hidden_dropout_prob: r.prob("hidden_dropout_prob", d.hidden_dropout_prob),
    attention_probs_dropout_prob: r.prob("attention_probs_dropout_prob", d.attention_probs_dropout_prob),
    initializer_range: r.number("initializer_range", d.initializer_range),
    pad_token_id: r.has("pad_token_id") ? r.tokenId("pad_token_id") : d.pad_token_id,
  };
}
