/**
 * Llama (Touvron et al. 2023, "Llama 2: Open Foundation and Fine-Tuned Chat Models"; also SmolLM2), as Hugging
 * Face's LlamaForCausalLM computes it, with its parameter names (model.layers.N.self_attn.q_proj, ...):
 *
 *   h⁰ = embed_tokens[ids]
 *   q = rope(q_proj(x)), k = rope(k_proj(x)), v = v_proj(x)    x = input_layernorm(h); positions past, …
 *   h ← h + o_proj(attention(q, [prefix/cache; k], [prefix/cache; v]))    grouped-query: NKV ≤ NH heads
 *   h ← h + down_proj(silu(gate_proj(y)) ⊙ up_proj(y))                   y = post_attention_layernorm(h)
 *   logits = norm(h) · lm_headᵀ                                          (lm_head = embed_tokens when tied)
 *
 * Modulation: prefix keys/values go in as each layer's pastK/pastV and are NOT rotated (MAC injects them as
 * already-cached keys, mac-reference.md 1.8); the tokens' positions start at P (with an attention mask, they come
 * from it: kv-cache.ts, left padding). LoRA updates q/k/v/o_proj.
 * The cache stores keys after rotation, as Hugging Face's does.
 * attention_dropout (on attention probabilities, 0 in released checkpoints) is applied in training mode only, in
 * the fused attention kernel. Llama has no other dropout.
 */
import { RMSNorm, Embedding, Linear, attentionDropout } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import { ShapeError } from "../../errors.js";
import { type Tensor, add, attention, concat, linear, reshape, rope, swiglu } from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import { NoInitRng } from "../checkpoint.js";
import { DecoderKVCache, decoderPast, newDecoderCache, runDecoderLayer } from "../kv-cache.js";
import { loraLayers, loraLinear } from "../lora.js";
import type { CausalLM, CausalLMInput, KVCache, LayerKV, LayerLora, Modulation } from "../types.js";
import type { LlamaConfig } from "./config.js";

/** What one layer's forward needs besides its input. */
interface LayerContext {
  past: LayerKV | null; // (B, S0, NKV, HS) prefix or cached (rotated) keys/values, before this step's
  positionOffset: number; // position of the first token (S0)
  positions: Tensor | null; // (B, T) int32 positions from the attention mask (left padding), else offset + t
  keyMask: Tensor | null; // (B, S0 + T)
  lora: LayerLora;
  fresh: LayerKV[]; // this step's keys/values, pushed per layer (for the cache)
}

export class LlamaAttention extends Module {
  q_proj: Linear; // (NH·HS, C)
  k_proj: Linear; // (NKV·HS, C)
  v_proj: Linear; // (NKV·HS, C)
  o_proj: Linear; // (C, NH·HS)

  constructor(
    readonly config: LlamaConfig,
    rng: Rng,
  ) {
    super();
    const { hidden_size: C, num_attention_heads: NH, num_key_value_heads: NKV, head_dim: HS } = config;
    const o = { rng, std: 0.02, bias: config.attention_bias };
    this.q_proj = new Linear(C, NH * HS, o);
    this.k_proj = new Linear(C, NKV * HS, o);
    this.v_proj = new Linear(C, NKV * HS, o);
    this.o_proj = new Linear(NH * HS, C, o);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [B, Tn] = x.shape as [number, number, number];
    const { num_attention_heads: NH, num_key_value_heads: NKV, head_dim: HS, rope_theta: theta } = this.config;
    const at = ctx.positions ? { positions: ctx.positions, theta } : { positionOffset: ctx.positionOffset, theta };
    const q = rope(reshape(loraLinear("llama.q_proj", this.q_proj, x, ctx.lora.q), [B, Tn, NH, HS]), at); // (B, T, NH, HS)
    const k = rope(reshape(loraLinear("llama.k_proj", this.k_proj, x, ctx.lora.k), [B, Tn, NKV, HS]), at); // (B, T, NKV, HS)
    const v = reshape(loraLinear("llama.v_proj", this.v_proj, x, ctx.lora.v), [B, Tn, NKV, HS]); // (B, T, NKV, HS)
    ctx.fresh.push({ k, v });
    const y = attention(q, k, v, {
      causal: true,
      keyMask: ctx.keyMask,
      pastK: ctx.past?.k ?? null,
      pastV: ctx.past?.v ?? null,
      dropout: attentionDropout(this, this.config.attention_dropout),
    }); // (B, T, NH, HS)
    return loraLinear("llama.o_proj", this.o_proj, reshape(y, [B, Tn, NH * HS]), ctx.lora.o); // (B, T, C)
  }
}

export class LlamaMLP extends Module {
  gate_proj: Linear; // (I, C)
  up_proj: Linear; // (I, C)
  down_proj: Linear; // (C, I)

  constructor(config: LlamaConfig, rng: Rng) {
    super();
    const o = { rng, std: 0.02, bias: config.mlp_bias };
    this.gate_proj = new Linear(config.hidden_size, config.intermediate_size, o);
    this.up_proj = new Linear(config.hidden_size, config.intermediate_size, o);
    this.down_proj = new Linear(config.intermediate_size, config.hidden_size, o);
  }

  forward(x: Tensor): Tensor {
    return this.down_proj.forward(swiglu(this.gate_proj.forward(x), this.up_proj.forward(x))); // (B, T, C)
  }
}

export class LlamaDecoderLayer extends Module {
  input_layernorm: RMSNorm;
  self_attn: LlamaAttention;
  post_attention_layernorm: RMSNorm;
  mlp: LlamaMLP;

  constructor(config: LlamaConfig, rng: Rng) {
    super();
    this.input_layernorm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.self_attn = new LlamaAttention(config, rng);
    this.post_attention_layernorm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
    this.mlp = new LlamaMLP(config, rng);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), ctx)); // (B, T, C)
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))); // (B, T, C)
  }
}

export class LlamaModel extends Module {
  embed_tokens: Embedding; // (V, C)
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;

  constructor(config: LlamaConfig, rng: Rng) {
    super();
    this.embed_tokens = new Embedding(config.vocab_size, config.hidden_size, { rng, std: 0.02 });
    this.layers = Array.from({ length: config.num_hidden_layers }, () => new LlamaDecoderLayer(config, rng));
    this.norm = new RMSNorm(config.hidden_size, config.rms_norm_eps);
  }
}

export class LlamaForCausalLM extends Module implements CausalLM {
  readonly modelType = "llama";
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  model: LlamaModel;
  lm_head: Linear | null; // (V, C); null when tied to model.embed_tokens

  /**
   * A randomly initialised model (N(0, 0.02²) weights, unit norms, as Hugging Face initialises Llama); with
   * init: false, zero weights (for loading a checkpoint).
   */
  constructor(
    readonly config: LlamaConfig,
    opts: { seed?: number; init?: boolean } = {},
  ) {
    super();
    this.numLayers = config.num_hidden_layers;
    this.hiddenSize = config.hidden_size;
    this.numHeads = config.num_attention_heads;
    this.numKvHeads = config.num_key_value_heads;
    this.headDim = config.head_dim;
    this.vocabSize = config.vocab_size;
    this.bosTokenId = config.bos_token_id;
    this.eosTokenId = config.eos_token_id;
    const rng = opts.init === false ? new NoInitRng() : new Rng(opts.seed ?? 0);
    this.model = new LlamaModel(config, rng);
    this.lm_head = config.tie_word_embeddings
      ? null
      : new Linear(config.hidden_size, config.vocab_size, { rng, std: 0.02, bias: false });
  }

  /** logits (B, T, V) for ids (B, T); see CausalLMInput for the mask, modulation and cache. */
  forward(input: CausalLMInput): Tensor {
    const h = this.hidden(input); // (B, T, C)
    return this.lm_head ? this.lm_head.forward(h) : linear(h, this.model.embed_tokens.weight); // (B, T, V)
  }

  /** Final hidden states (B, T (+E), C) after the last RMSNorm. */
  hidden(input: CausalLMInput): Tensor {
    const past = decoderPast("llama.forward", this, input);
    const lora = loraLayers("llama.forward", this, input.modulation);
    const { embed_tokens, layers, norm } = this.model;

    const tok = embed_tokens.forward(input.ids); // (B, T, C)
    let x = input.appendEmbeds ? concat([tok, input.appendEmbeds], 1) : tok; // (B, T + E, C)
    const fresh: LayerKV[] = [];
    layers.forEach((layer, l) => {
      const ctx = {
        past: past.layers[l] ?? null,
        positionOffset: past.length,
        positions: past.positions,
        keyMask: input.attentionMask ?? null,
        lora: lora[l]!,
        fresh,
      };
      x = runDecoderLayer(fresh, () => layer.forward(x, ctx));
    });
    past.cache?.append(fresh);
    return norm.forward(x); // (B, T, C)
  }

  newCache(batch: number, modulation?: Modulation): KVCache {
    return newDecoderCache(this, batch, modulation);
  }

  reorderCache(cache: KVCache, indices: Tensor): void {
    if (!(cache instanceof DecoderKVCache))
      throw new ShapeError("llama.reorderCache", "the cache must come from newCache()");
    cache.reorder(indices);
  }
}
