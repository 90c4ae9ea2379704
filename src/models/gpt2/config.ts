/**
 * GPT-2's configuration, with Hugging Face's field names (GPT2Config in transformers/models/gpt2).
 * Defaults are those of the 124M "gpt2" checkpoint, as in transformers.
 */
import { MacLmError } from "../../errors.js";
import { ConfigReader, type Json } from "../config-fields.js";

export interface GPT2Config {
  vocab_size: number; // V
  n_positions: number; // longest sequence (learned absolute positions), prefix included
  n_embd: number; // C
  n_layer: number; // L
  n_head: number; // NH (= NKV: no grouped-query attention)
  n_inner: number; // MLP hidden size (null in config.json means 4·C)
  activation_function: "gelu_new" | "gelu"; // gelu_new = tanh approximation
  resid_pdrop: number; // dropout on each residual branch's output (attention c_proj, MLP c_proj)
  embd_pdrop: number; // dropout on token + position embeddings
  attn_pdrop: number; // dropout on attention probabilities (training mode)
  layer_norm_epsilon: number;
  scale_attn_weights: boolean; // scores · 1/√HS
  scale_attn_by_inverse_layer_idx: boolean; // scores · 1/(layer + 1) in addition
  bos_token_id: number | null;
  eos_token_id: number | null;
}

export const GPT2_DEFAULTS: GPT2Config = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: 3072,
  activation_function: "gelu_new",
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  layer_norm_epsilon: 1e-5,
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  bos_token_id: 50256,
  eos_token_id: 50256,
};

const ACTIVATIONS: Record<string, GPT2Config["activation_function"]> = {
  gelu_new: "gelu_new",
  gelu_pytorch_tanh: "gelu_new",
  gelu_fast: "gelu_new", // same tanh formula, written differently
  gelu: "gelu",
};

/** Reads a GPT-2 config.json (already parsed); `source` names the file in errors. */
export function gpt2ConfigFromJson(json: Json, source = "config.json"): GPT2Config {
  const r = new ConfigReader(json, source);
  const d = GPT2_DEFAULTS;
  const n_embd = r.dim("n_embd", d.n_embd);
  const n_head = r.dim("n_head", d.n_head);
  if (n_embd % n_head !== 0)
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${source}: n_embd ${n_embd} is not a multiple of n_head ${n_head}`);
  const act = r.string("activation_function", d.activation_function);
  const activation = ACTIVATIONS[act];
  if (activation === undefined)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: activation_function "${act}" is not supported (gelu_new, gelu)`,
    );
  if (!r.bool("tie_word_embeddings", true))
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: tie_word_embeddings false is not supported (GPT-2's lm_head is wte)`,
    );
  if (r.bool("add_cross_attention", false))
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: add_cross_attention (GPT-2 as a decoder of an encoder) is not supported`,
    );
  return {
    vocab_size: r.dim("vocab_size", d.vocab_size),
    n_positions: r.dim("n_positions", d.n_positions),
    n_embd,
    n_layer: r.dim("n_layer", d.n_layer),
    n_head,
    n_inner: r.has("n_inner") ? r.dim("n_inner") : 4 * n_embd,
    activation_function: activation,
    resid_pdrop: r.prob("resid_pdrop", d.resid_pdrop),
    embd_pdrop: r.prob("embd_pdrop", d.embd_pdrop),
    attn_pdrop: r.prob("attn_pdrop", d.attn_pdrop),
    layer_norm_epsilon: r.number("layer_norm_epsilon", d.layer_norm_epsilon),
    scale_attn_weights: r.bool("scale_attn_weights", d.scale_attn_weights),
    scale_attn_by_inverse_layer_idx: r.bool("scale_attn_by_inverse_layer_idx", d.scale_attn_by_inverse_layer_idx),
    bos_token_id: r.has("bos_token_id") ? r.tokenId("bos_token_id") : d.bos_token_id,
    eos_token_id: r.has("eos_token_id") ? r.tokenId("eos_token_id") : d.eos_token_id,
  };
}
