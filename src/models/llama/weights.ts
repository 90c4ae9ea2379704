/**
 * Loading Llama weights: from a Hugging Face checkpoint (a key copy: our parameter names are HF's) or from a GGUF
 * file (llama.cpp's names mapped to HF's, q/k rows un-permuted back from ggml's RoPE order, quantised types
 * dequantised to float32 by the GGUF reader).
 */
import { MacLmError } from "../../errors.js";
import { type GgufFile, unpermuteLlamaQK } from "../../io/gguf.js";
import type { Tensor } from "../../tensor/index.js";
import { type WeightSource, fillParameters } from "../checkpoint.js";
import type { LlamaForCausalLM } from "./model.js";

/** Hugging Face entries that are not parameters: old rotary buffers, and lm_head when tied to the embeddings. */
const ignoredHf =
  (tied: boolean) =>
  (n: string): boolean =>
    /\.rotary_emb\.inv_freq$/.test(n) || (tied && n === "lm_head.weight");

export function loadLlamaWeights(model: LlamaForCausalLM, src: WeightSource): void {
  fillParameters(model, src, { ignore: ignoredHf(model.config.tie_word_embeddings) });
}

/** llama.cpp's per-block tensor names -> Hugging Face's (weights and biases alike). */
const BLOCK: Record<string, string> = {
  attn_norm: "input_layernorm",
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  ffn_norm: "post_attention_layernorm",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};

const TOP: Record<string, string> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};

/** The Hugging Face name of a GGUF tensor, or null for one with no Llama counterpart. */
export function ggufToHfName(name: string): string | null {
  const top = TOP[name];
  if (top !== undefined) return top;
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  const hf = m ? BLOCK[m[2]!] : undefined;
  return m && hf ? `model.layers.${m[1]}.${hf}.${m[3]}` : null;
}

/** Copies a GGUF file's tensors into `model` (its config from llamaConfigFromGguf). */
export function loadLlamaGguf(model: LlamaForCausalLM, g: GgufFile): void {
  const toGguf = new Map<string, string>();
  for (const t of g.tensors) {
    const hf = ggufToHfName(t.name);
    if (hf === null)
      throw new MacLmError("MACLM_BAD_CHECKPOINT", `${g.path}: tensor ${t.name} has no Llama counterpart`);
    toGguf.set(hf, t.name);
  }
  const { num_attention_heads: NH, num_key_value_heads: NKV } = model.config;
  const src: WeightSource = {
    path: g.path,
    names: [...toGguf.keys()],
    load(hf: string): Tensor {
      const t = g.load(toGguf.get(hf)!);
      // llama.cpp interleaves the rotary halves of q/k rows (per head) for ggml's RoPE: undo it.
      const heads = hf.includes(".self_attn.q_proj.") ? NH : hf.includes(".self_attn.k_proj.") ? NKV : 0;
      if (heads === 0) return t;
      const out = unpermuteLlamaQK(t, heads);
      t.dispose();
      return out;
    },
  };
  fillParameters(model, src);
}
