/**
 * Llama's configuration, with Hugging Face's field names (LlamaConfig in transformers/models/llama), read from a
 * config.json or from a GGUF file's llama.* metadata (llama.cpp's names, mapped below).
 * Only the default RoPE is supported (Llama 1/2, SmolLM2); scaled variants (llama3, linear, dynamic, yarn) are
 * rejected rather than silently computed wrong.
 */
import { MacLmError } from "../../errors.js";
import type { GgufFile } from "../../io/gguf.js";
import { ConfigReader, type Json } from "../config-fields.js";

export interface LlamaConfig {
  vocab_size: number; // V
  hidden_size: number; // C
  intermediate_size: number; // MLP hidden size
  num_hidden_layers: number; // L
  num_attention_heads: number; // NH
  num_key_value_heads: number; // NKV (grouped-query attention when < NH)
  head_dim: number; // HS
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  attention_bias: boolean; // biases on q/k/v/o projections
  mlp_bias: boolean; // biases on gate/up/down projections
  attention_dropout: number; // on attention probabilities (training mode)
  tie_word_embeddings: boolean; // lm_head = embed_tokens
  bos_token_id: number | null;
  eos_token_id: number | null;
}

function checkGeometry(c: LlamaConfig, source: string): LlamaConfig {
  if (c.num_attention_heads % c.num_key_value_heads !== 0)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`,
    );
  if (c.head_dim % 2 !== 0)
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${source}: head_dim ${c.head_dim} must be even for RoPE`);
  return c;
}

/** Reads a Llama config.json (already parsed); `source` names the file in errors. */
export function llamaConfigFromJson(json: Json, source = "config.json"): LlamaConfig {
  const r = new ConfigReader(json, source);
  const act = r.string("hidden_act", "silu");
  if (act !== "silu")
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${source}: hidden_act "${act}" is not supported (silu)`);
  // transformers 5.x: rope_parameters {rope_theta, rope_type}; 4.x: rope_theta + rope_scaling {rope_type|type}.
  const rp = r.object("rope_parameters");
  const rs = r.object("rope_scaling");
  const ropeType = (rp?.rope_type ?? rs?.rope_type ?? rs?.type ?? "default") as unknown;
  if (ropeType !== "default")
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: RoPE type ${JSON.stringify(ropeType)} is not supported (default only)`,
    );
  const theta = rp
    ? new ConfigReader(rp, `${source} rope_parameters`).number("rope_theta", 10000)
    : r.number("rope_theta", 10000);
  const hidden = r.dim("hidden_size");
  const heads = r.dim("num_attention_heads");
  return checkGeometry(
    {
      vocab_size: r.dim("vocab_size"),
      hidden_size: hidden,
      intermediate_size: r.dim("intermediate_size"),
      num_hidden_layers: r.dim("num_hidden_layers"),
      num_attention_heads: heads,
      num_key_value_heads: r.dim("num_key_value_heads", heads),
      head_dim: r.dim("head_dim", hidden / heads),
      max_position_embeddings: r.dim("max_position_embeddings", 2048),
      rms_norm_eps: r.number("rms_norm_eps", 1e-6),
      rope_theta: theta,
      attention_bias: r.bool("attention_bias", false),
      mlp_bias: r.bool("mlp_bias", false),
      attention_dropout: r.prob("attention_dropout", 0),
      tie_word_embeddings: r.bool("tie_word_embeddings", false),
      bos_token_id: r.tokenId("bos_token_id"),
      eos_token_id: r.tokenId("eos_token_id"),
    },
    source,
  );
}

/**
 * The config from a GGUF file's metadata (llama.cpp names: llama.block_count, llama.embedding_length, ...).
 * Tied embeddings when the file has no output.weight; biases when blk.0 has them.
 */
export function llamaConfigFromGguf(g: GgufFile): LlamaConfig {
  const arch = g.string("general.architecture");
  if (arch !== "llama")
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${g.path}: general.architecture "${arch}" is not supported (llama)`);
  const scaling = g.metadata["llama.rope.scaling.type"];
  if (scaling !== undefined && scaling !== "none")
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${g.path}: llama.rope.scaling.type "${String(scaling)}" is not supported`,
    );
  const hidden = g.number("llama.embedding_length");
  const heads = g.number("llama.attention.head_count");
  const headDim = g.number("llama.attention.key_length", g.number("llama.rope.dimension_count", hidden / heads));
  const embd = g.tensor("token_embd.weight");
  const tokenId = (key: string): number | null => (g.metadata[key] === undefined ? null : g.number(key));
  return checkGeometry(
    {
      vocab_size: g.number("llama.vocab_size", embd.shape[0]),
      hidden_size: hidden,
      intermediate_size: g.number("llama.feed_forward_length"),
      num_hidden_layers: g.number("llama.block_count"),
      num_attention_heads: heads,
      num_key_value_heads: g.number("llama.attention.head_count_kv", heads),
      head_dim: headDim,
      max_position_embeddings: g.number("llama.context_length", 2048),
      rms_norm_eps: g.number("llama.attention.layer_norm_rms_epsilon", 1e-6),
      rope_theta: g.number("llama.rope.freq_base", 10000),
      attention_bias: g.has("blk.0.attn_q.bias"),
      mlp_bias: g.has("blk.0.ffn_up.bias"),
      attention_dropout: 0,
      tie_word_embeddings: !g.has("output.weight"),
      bos_token_id: tokenId("tokenizer.ggml.bos_token_id"),
      eos_token_id: tokenId("tokenizer.ggml.eos_token_id"),
    },
    g.path,
  );
}
