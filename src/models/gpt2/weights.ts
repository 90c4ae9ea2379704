/**
 * Loading GPT-2 weights from a Hugging Face checkpoint: a key copy (our parameter names are HF's), plus a
 * transpose of the Conv1D weights, which HF stores (in, out) while our Linear is (out, in) as torch.nn.Linear.
 */
import { permute } from "../../tensor/index.js";
import { type WeightSource, fillParameters } from "../checkpoint.js";
import type { GPT2LMHeadModel } from "./model.js";

/** HF Conv1D weights (per block), stored (in, out): transposed once at load. */
export const TRANSPOSED = ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"] as const;

const isTransposed = (param: string): boolean => TRANSPOSED.some((s) => param.endsWith(`.${s}`));

/**
 * Entries that are not parameters: older checkpoints store the causal-mask buffers attn.bias / attn.masked_bias,
 * and some store lm_head.weight, which is tied to wte here.
 */
const IGNORED = /(^|\.)attn\.(masked_)?bias$|^lm_head\.weight$/;

/**
 * Copies a checkpoint into `model`. Accepts both layouts found on the Hub: GPT2LMHeadModel keys
 * ("transformer.h.0...") and GPT2Model keys without the "transformer." prefix (the original "gpt2" repository).
 */
export function loadGPT2Weights(model: GPT2LMHeadModel, src: WeightSource): void {
  const bare = !src.names.includes("transformer.wte.weight") && src.names.includes("wte.weight");
  fillParameters(model, src, {
    keyOf: (p) => (bare ? p.replace(/^transformer\./, "") : p),
    transform: (p, t) => (isTransposed(p) ? permute(t, [1, 0]) : t), // (in, out) -> (out, in)
    ignore: (n) => IGNORED.test(n),
  });
}
