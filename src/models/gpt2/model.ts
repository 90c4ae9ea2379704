/**
 * GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"), as Hugging Face's
 * GPT2LMHeadModel computes it, with its parameter names (transformer.wte, transformer.h.N.attn.c_attn, ...):
 *
 *   h⁰ = drop(wte[ids] + wpe[pos])                         pos = past, …, past + T − 1 (past = P or cache length),
 *                                                          or from the attention mask (kv-cache.ts: left padding)
 *   a  = resid_drop(c_proj(attention(ln_1(h), prefix/cache)))   h ← h + a
 *   m  = resid_drop(c_proj(gelu(c_fc(ln_2(h)))))                h ← h + m
 *   logits = ln_f(h) · wteᵀ                                (lm_head tied to wte)
 *
 * Modulation: prefix keys/values enter each layer's attention before the tokens' own (P-tuning v2, as MAC does);
 * LoRA updates q/k/v (thirds of the fused c_attn output) and o (attn.c_proj).
 * Dropout (embd_pdrop, resid_pdrop, and attn_pdrop on the attention probabilities inside the fused attention
 * kernel) is active in training mode only.
 * Linear weights are (out, in) here; Hugging Face's Conv1D stores (in, out): weights.ts transposes at load.
 */
import { ShapeError } from "../../errors.js";
import { Dropout, Embedding, LayerNorm, Linear, attentionDropout } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import {
  type Tensor,
  Tensor as T,
  add,
  attention,
  concat,
  embedding,
  gelu,
  linear,
  reshape,
  split,
} from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import { NoInitRng } from "../checkpoint.js";
import { DecoderKVCache, decoderPast, newDecoderCache, runDecoderLayer } from "../kv-cache.js";
import { loraLayers, withLora } from "../lora.js";
import type { CausalLM, CausalLMInput, KVCache, LayerKV, LayerLora, Modulation } from "../types.js";
import { GPT2_DEFAULTS, type GPT2Config } from "./config.js";

/** What one layer's forward needs besides its input. */
interface LayerContext {
  past: LayerKV | null; // (B, S0, NH, HS) prefix or cached keys/values, before this step's
  keyMask: Tensor | null; // (B, S0 + T)
  lora: LayerLora;
  fresh: LayerKV[]; // this step's keys/values, pushed per layer (for the cache)
}

export class GPT2Attention extends Module {
  c_attn: Linear; // (3C, C): q, k, v stacked
  c_proj: Linear; // (C, C)
  resid_dropout: Dropout;
  private readonly scale: number;

  constructor(
    readonly config: GPT2Config,
    layerIdx: number,
    rng: Rng,
  ) {
    super();
    const C = config.n_embd;
    const std = 0.02;
    this.c_attn = new Linear(C, 3 * C, { rng, std });
    this.c_proj = new Linear(C, C, { rng, std: std / Math.sqrt(2 * config.n_layer) });
    this.resid_dropout = new Dropout(config.resid_pdrop);
    const HS = C / config.n_head;
    this.scale =
      (config.scale_attn_weights ? 1 / Math.sqrt(HS) : 1) / (config.scale_attn_by_inverse_layer_idx ? layerIdx + 1 : 1);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [B, Tn, C] = x.shape as [number, number, number];
    const NH = this.config.n_head;
    const HS = C / NH;
    const [q0, k0, v0] = split(this.c_attn.forward(x), C, 2) as [Tensor, Tensor, Tensor]; // 3 × (B, T, C)
    const q = reshape(withLora("gpt2.attn.q", q0, x, ctx.lora.q), [B, Tn, NH, HS]); // (B, T, NH, HS)
    const k = reshape(withLora("gpt2.attn.k", k0, x, ctx.lora.k), [B, Tn, NH, HS]); // (B, T, NH, HS)
    const v = reshape(withLora("gpt2.attn.v", v0, x, ctx.lora.v), [B, Tn, NH, HS]); // (B, T, NH, HS)
    ctx.fresh.push({ k, v });
    const y = attention(q, k, v, {
      causal: true,
      keyMask: ctx.keyMask,
      pastK: ctx.past?.k ?? null,
      pastV: ctx.past?.v ?? null,
      scale: this.scale,
      dropout: attentionDropout(this, this.config.attn_pdrop),
    }); // (B, T, NH, HS)
    const y2 = reshape(y, [B, Tn, C]); // (B, T, C)
    return this.resid_dropout.forward(withLora("gpt2.attn.o", this.c_proj.forward(y2), y2, ctx.lora.o)); // (B, T, C)
  }
}

export class GPT2MLP extends Module {
  c_fc: Linear; // (n_inner, C)
  c_proj: Linear; // (C, n_inner)
  dropout: Dropout;

  constructor(
    readonly config: GPT2Config,
    rng: Rng,
  ) {
    super();
    this.c_fc = new Linear(config.n_embd, config.n_inner, { rng, std: 0.02 });
    this.c_proj = new Linear(config.n_inner, config.n_embd, { rng, std: 0.02 / Math.sqrt(2 * config.n_layer) });
    this.dropout = new Dropout(config.resid_pdrop);
  }

  forward(x: Tensor): Tensor {
    const approximate = this.config.activation_function === "gelu_new" ? "tanh" : "none";
    const h = gelu(this.c_fc.forward(x), approximate); // (B, T, n_inner)
    return this.dropout.forward(this.c_proj.forward(h)); // (B, T, C)
  }
}

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;

  constructor(config: GPT2Config, layerIdx: number, rng: Rng) {
    super();
    this.ln_1 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.attn = new GPT2Attention(config, layerIdx, rng);
    this.ln_2 = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
    this.mlp = new GPT2MLP(config, rng);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = add(x, this.attn.forward(this.ln_1.forward(x), ctx)); // (B, T, C)
    return add(h, this.mlp.forward(this.ln_2.forward(h))); // (B, T, C)
  }
}

export class GPT2Model extends Module {
  wte: Embedding; // (V, C)
  wpe: Embedding; // (n_positions, C)
  drop: Dropout;
  h: GPT2Block[];
  ln_f: LayerNorm;

  constructor(
    readonly config: GPT2Config,
    rng: Rng,
  ) {
    super();
    this.wte = new Embedding(config.vocab_size, config.n_embd, { rng, std: 0.02 });
    this.wpe = new Embedding(config.n_positions, config.n_embd, { rng, std: 0.01 });
    this.drop = new Dropout(config.embd_pdrop);
    this.h = Array.from({ length: config.n_layer }, (_, l) => new GPT2Block(config, l, rng));
    this.ln_f = new LayerNorm(config.n_embd, config.layer_norm_epsilon);
  }
}

export class GPT2LMHeadModel extends Module implements CausalLM {
  readonly modelType = "gpt2";
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  transformer: GPT2Model;

  /**
   * A randomly initialised model (GPT-2's init: N(0, 0.02²), residual projections scaled by 1/√(2L)); with
   * init: false, zero weights (for loading a checkpoint).
   */
  constructor(
    readonly config: GPT2Config = GPT2_DEFAULTS,
    opts: { seed?: number; init?: boolean } = {},
  ) {
    super();
    this.numLayers = config.n_layer;
    this.hiddenSize = config.n_embd;
    this.numHeads = config.n_head;
    this.numKvHeads = config.n_head;
    this.headDim = config.n_embd / config.n_head;
    this.vocabSize = config.vocab_size;
    this.bosTokenId = config.bos_token_id;
    this.eosTokenId = config.eos_token_id;
    this.transformer = new GPT2Model(config, opts.init === false ? new NoInitRng() : new Rng(opts.seed ?? 0));
  }

  /** logits (B, T, V) for ids (B, T); see CausalLMInput for the mask, modulation and cache. */
  forward(input: CausalLMInput): Tensor {
    return linear(this.hidden(input), this.transformer.wte.weight); // (B, T, V): lm_head = wte
  }

  /** Final hidden states (B, T (+E), C) after ln_f. */
  hidden(input: CausalLMInput): Tensor {
    const past = decoderPast("gpt2.forward", this, input);
    const { ids, appendEmbeds } = input;
    const B = ids.dim(0);
    const Tn = ids.dim(1) + (appendEmbeds?.dim(1) ?? 0);
    if (past.length + Tn > this.config.n_positions)
      throw new ShapeError(
        "gpt2.forward",
        `positions up to ${past.length + Tn - 1} exceed n_positions ${this.config.n_positions} (past ${past.length}, ids [${B}, ${Tn}])`,
      );
    const lora = loraLayers("gpt2.forward", this, input.modulation);
    const { wte, wpe, drop, h, ln_f } = this.transformer;

    // (T): past, …; or (B, T) from the attention mask (left padding: each row's own positions)
    const pos =
      past.positions ??
      T.from(
        Int32Array.from({ length: Tn }, (_, t) => past.length + t),
        [Tn],
      );
    const tok = wte.forward(ids); // (B, T, C)
    const inputs = appendEmbeds ? concat([tok, appendEmbeds], 1) : tok; // (B, T + E, C)
    let x = drop.forward(add(inputs, embedding(pos, wpe.weight))); // (B, T, C) + ((B,) T, C)
    const fresh: LayerKV[] = [];
    h.forEach((block, l) => {
      const ctx = { past: past.layers[l] ?? null, keyMask: input.attentionMask ?? null, lora: lora[l]!, fresh };
      x = runDecoderLayer(fresh, () => block.forward(x, ctx));
    });
    past.cache?.append(fresh);
    return ln_f.forward(x); // (B, T, C)
  }

  newCache(batch: number, modulation?: Modulation): KVCache {
    return newDecoderCache(this, batch, modulation);
  }

  reorderCache(cache: KVCache, indices: Tensor): void {
    if (!(cache instanceof DecoderKVCache))
      throw new ShapeError("gpt2.reorderCache", "the cache must come from newCache()");
    cache.reorder(indices);
  }
}
