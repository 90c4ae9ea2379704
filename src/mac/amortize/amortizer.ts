/**
 * Amortization networks g_θ: a document (or a question) → T latent tokens of the base LM's width, in one forward
 * pass (mac-reference.md 1.3–1.4). One interface, several architectures:
 *
 *   "t5"               the paper's: T5 encoder over the text, T5 decoder run on T learned query embeddings that
 *                      cross-attend to it (no encoder mask, as the release), then per-slot MLP heads.
 *   "decoder-only"     the paper's ablation: a causal LM reads the text and T appended learned memory tokens;
 *                      their final hidden states, through per-slot heads, are the latents.
 *   "encoder-queries"  our CPU default: a pretrained encoder (MiniLM/BERT) over the text, then a small decoder of T
 *                      learned queries cross-attending to it (masked), then per-slot heads. The encoder may stay
 *                      frozen, so its outputs can be cached across epochs.
 *
 * Output (B, T, d) with d the base LM's hidden size: a memory entry per document, or the question's query tokens.
 */
import { Dropout, LayerNorm, Linear } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import type { CausalLM, Encoder } from "../../models/types.js";
import type { T5Model } from "../../models/t5/model.js";
import { Tensor, add, attention, concat, expand, gelu, noGrad, reshape, slice, untrack } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import type { Tokenizer } from "../../tokenizers/index.js";
import { SlotHeads } from "../heads.js";
import { type TextBatch, encodeTexts } from "./text-batch.js";

export interface Amortizer extends Module {
  readonly kind: string;
  readonly numSlots: number; // T
  readonly outDim: number; // d
  readonly tokenizer: Tokenizer;
  /** Longest text the network reads, in its own tokens. */
  readonly maxLength: number;
  /** (B, L) tokens → (B, T, d) latents. */
  forward(batch: TextBatch): Tensor;
  /** Texts → (B, T, d) latents; amortizers that cache work per text implement it (equal to forward(encode(texts))). */
  forwardTexts?(texts: readonly string[]): Tensor;
}

/** One pre-LN block of the query decoder: queries attend to the (masked) encoder states, then an FFN. */
export class QueryDecoderLayer extends Module {
  norm_q: LayerNorm;
  norm_ctx: LayerNorm;
  to_q: Linear;
  to_k: Linear;
  to_v: Linear;
  to_out: Linear;
  norm_ffn: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  drop: Dropout;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    rng: Rng,
    dropout = 0.1,
  ) {
    super();
    const std = 0.02;
    this.norm_q = new LayerNorm(dim);
    this.norm_ctx = new LayerNorm(dim);
    this.to_q = new Linear(dim, dim, { rng, std, bias: false });
    this.to_k = new Linear(dim, dim, { rng, std, bias: false });
    this.to_v = new Linear(dim, dim, { rng, std, bias: false });
    this.to_out = new Linear(dim, dim, { rng, std });
    this.norm_ffn = new LayerNorm(dim);
    this.fc1 = new Linear(dim, 4 * dim, { rng, std });
    this.fc2 = new Linear(4 * dim, dim, { rng, std });
    this.drop = new Dropout(dropout);
  }

  // x: (B, T, C) queries; ctx: (B, L, C) encoder states; mask: (B, L). Without `residual` the layer's attention
  // output replaces the queries (attention pooling: the slots then hold only what they read of the text).
  forward(x: Tensor, ctx: Tensor, mask: Tensor, residual = true): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const L = ctx.dim(1);
    const NH = this.numHeads;
    const HS = C / NH;
    const c = this.norm_ctx.forward(ctx);
    const q = reshape(this.to_q.forward(this.norm_q.forward(x)), [B, T, NH, HS]);
    const k = reshape(this.to_k.forward(c), [B, L, NH, HS]);
    const v = reshape(this.to_v.forward(c), [B, L, NH, HS]);
    const a = reshape(attention(q, k, v, { keyMask: mask }), [B, T, C]);
    const o = this.drop.forward(this.to_out.forward(a));
    const h = residual ? add(x, o) : o; // (B, T, C)
    const f = this.fc2.forward(gelu(this.fc1.forward(this.norm_ffn.forward(h)), "none"));
    return add(h, this.drop.forward(f)); // (B, T, C)
  }
}

export interface EncoderQueriesOptions {
  numSlots: number;
  outDim: number;
  maxLength: number;
  decoderLayers?: number;
  decoderHeads?: number;
  dropout?: number;
  /** Fine-tune the pretrained encoder too (default false: it stays frozen and its outputs can be cached). */
  trainEncoder?: boolean;
  /**
   * The first decoder layer pools the text without the queries' residual (default false): a slot then starts as
   * what it read, not as a learned constant with a small text-dependent part that training must first amplify.
   */
  poolFirst?: boolean;
  seed?: number;
}

/** Pretrained encoder + T learned queries + a small cross-attention decoder + per-slot heads. */
export class EncoderQueriesAmortizer extends Module implements Amortizer {
  readonly kind = "encoder-queries";
  readonly numSlots: number;
  readonly outDim: number;
  readonly maxLength: number;
  readonly trainEncoder: boolean;
  readonly poolFirst: boolean;
  encoder: Encoder & Module;
  queries: Tensor; // (1, T, dE)
  layers: QueryDecoderLayer[];
  norm: LayerNorm;
  heads: SlotHeads;
  readonly #tokenizer: Tokenizer;
  /** Frozen-encoder states (L, dE) by text, when caching is on (training revisits the same documents). */
  #cache: Map<string, Tensor> | null = null;

  constructor(encoder: Encoder & Module, tokenizer: Tokenizer, opts: EncoderQueriesOptions) {
    super();
    const rng = new Rng(opts.seed ?? 0);
    const dE = encoder.hiddenSize;
    this.numSlots = opts.numSlots;
    this.outDim = opts.outDim;
    this.maxLength = opts.maxLength;
    this.trainEncoder = opts.trainEncoder ?? false;
    this.poolFirst = opts.poolFirst ?? false;
    this.encoder = encoder;
    if (!this.trainEncoder) encoder.freeze();
    this.#tokenizer = tokenizer;
    this.queries = this.param(randn([1, opts.numSlots, dE], { rng, std: 0.02 }));
    const heads = opts.decoderHeads ?? Math.max(1, Math.round(dE / 64));
    this.layers = Array.from(
      { length: opts.decoderLayers ?? 2 },
      () => new QueryDecoderLayer(dE, heads, rng, opts.dropout ?? 0.1),
    );
    this.norm = new LayerNorm(dE);
    this.heads = new SlotHeads(opts.numSlots, dE, opts.outDim, { rng, std: 0.02 });
  }

  get tokenizer(): Tokenizer {
    return this.#tokenizer;
  }

  /** The encoder's hidden states (B, L, dE); without gradients when the encoder is frozen. */
  encodeText(batch: TextBatch): Tensor {
    const run = (): Tensor => this.encoder.encode(batch.ids, batch.mask);
    return this.trainEncoder ? run() : noGrad(run);
  }

  /** Latents from precomputed encoder states (B, L, dE) and their mask (B, L). */
  decode(hidden: Tensor, mask: Tensor): Tensor {
    const B = hidden.dim(0);
    let x = expand(this.queries, [B, this.numSlots, this.queries.dim(2)]); // (B, T, dE)
    this.layers.forEach((layer, i) => (x = layer.forward(x, hidden, mask, i > 0 || !this.poolFirst)));
    return this.heads.forward(this.norm.forward(x)); // (B, T, d)
  }

  forward(batch: TextBatch): Tensor {
    return this.decode(this.encodeText(batch), batch.mask);
  }

  /**
   * Caches the frozen encoder's states per text (a no-op when the encoder is trained). The states of real tokens
   * do not depend on padding, so cached and fresh results are equal.
   */
  enableCache(on = true): void {
    if (!on || this.trainEncoder) {
      for (const t of this.#cache?.values() ?? []) t.dispose();
      this.#cache = null;
    } else this.#cache ??= new Map();
  }

  forwardTexts(texts: readonly string[]): Tensor {
    const cache = this.#cache;
    if (!cache) return this.forward(encodeTexts(this.#tokenizer, texts, { maxLength: this.maxLength }));
    // Each text is encoded alone (no padding), so its cached states depend on the text only: a run resumed with a
    // cold cache computes exactly what the uninterrupted run had cached.
    for (const t of new Set(texts.filter((x) => !cache.has(x)))) {
      const batch = encodeTexts(this.#tokenizer, [t], { maxLength: this.maxLength });
      const h = this.encodeText(batch); // (1, L, dE)
      cache.set(t, untrack(h.reshapeView([h.dim(1), h.dim(2)])));
      h.dispose();
    }
    const rows = texts.map((t) => cache.get(t)!);
    const L = Math.max(...rows.map((r) => r.dim(0)));
    const dE = rows[0]!.dim(1);
    const hidden = Tensor.zeros([texts.length, L, dE]);
    const mask = Tensor.zeros([texts.length, L]);
    rows.forEach((r, b) => {
      hidden.data.set(r.data, b * L * dE);
      mask.data.fill(1, b * L, b * L + r.dim(0));
    });
    return this.decode(hidden, mask);
  }
}

export interface T5AmortizerOptions {
  numSlots: number;
  outDim: number;
  maxLength: number;
  /** Pass the encoder mask to the decoder's cross-attention (the release does not: pads are attended). */
  maskEncoder?: boolean;
  seed?: number;
}

/** The paper's amortizer: T5 encoder-decoder over T learned query embeddings, then per-slot heads. */
export class T5Amortizer extends Module implements Amortizer {
  readonly kind = "t5";
  readonly numSlots: number;
  readonly outDim: number;
  readonly maxLength: number;
  readonly maskEncoder: boolean;
  t5: T5Model;
  learnable_prompts: Tensor; // (1, T, d_t5)
  heads: SlotHeads;
  readonly #tokenizer: Tokenizer;

  constructor(t5: T5Model, tokenizer: Tokenizer, opts: T5AmortizerOptions) {
    super();
    const rng = new Rng(opts.seed ?? 0);
    const d = t5.hiddenSize;
    this.numSlots = opts.numSlots;
    this.outDim = opts.outDim;
    this.maxLength = opts.maxLength;
    this.maskEncoder = opts.maskEncoder ?? false;
    this.t5 = t5;
    this.#tokenizer = tokenizer;
    this.learnable_prompts = this.param(randn([1, opts.numSlots, d], { rng, std: 0.02 }));
    this.heads = new SlotHeads(opts.numSlots, d, opts.outDim, { rng, std: 0.02 });
  }

  get tokenizer(): Tokenizer {
    return this.#tokenizer;
  }

  forward(batch: TextBatch): Tensor {
    const B = batch.ids.dim(0);
    const enc = this.t5.encode(batch.ids, batch.mask); // (B, L, d_t5)
    const q = expand(this.learnable_prompts, [B, this.numSlots, this.learnable_prompts.dim(2)]);
    const dec = this.t5.decode({
      inputsEmbeds: q,
      encoderHidden: enc,
      encoderMask: this.maskEncoder ? batch.mask : null,
    });
    return this.heads.forward(dec); // (B, T, d)
  }
}

export interface DecoderOnlyOptions {
  numSlots: number;
  outDim: number;
  maxLength: number;
  /** Fine-tune the decoder LM too (default false: frozen, only the memory tokens and heads train). */
  trainLM?: boolean;
  seed?: number;
}

/**
 * The paper's decoder-only ablation: a causal LM reads the document followed by T learned memory-token embeddings;
 * the final hidden states at those T positions, through per-slot heads, are the entry. forwardTexts() reads each text
 * alone, so the memory tokens directly follow it at the same positions whatever it is batched with (with padding,
 * absolute or rotary positions would shift).
 */
export class DecoderOnlyAmortizer extends Module implements Amortizer {
  readonly kind = "decoder-only";
  readonly numSlots: number;
  readonly outDim: number;
  readonly maxLength: number;
  lm: CausalLM;
  memory_tokens: Tensor; // (1, T, C_lm)
  heads: SlotHeads;
  readonly #tokenizer: Tokenizer;

  constructor(lm: CausalLM, tokenizer: Tokenizer, opts: DecoderOnlyOptions) {
    super();
    const rng = new Rng(opts.seed ?? 0);
    this.numSlots = opts.numSlots;
    this.outDim = opts.outDim;
    this.maxLength = opts.maxLength;
    this.lm = lm;
    if (!opts.trainLM) lm.freeze();
    this.#tokenizer = tokenizer;
    this.memory_tokens = this.param(randn([1, opts.numSlots, lm.hiddenSize], { rng, std: 0.02 }));
    this.heads = new SlotHeads(opts.numSlots, lm.hiddenSize, opts.outDim, { rng, std: 0.02 });
  }

  get tokenizer(): Tokenizer {
    return this.#tokenizer;
  }

  forward(batch: TextBatch): Tensor {
    const [B, L] = batch.ids.shape as [number, number];
    const T = this.numSlots;
    const mem = expand(this.memory_tokens, [B, T, this.lm.hiddenSize]); // (B, T, C)
    const mask = Tensor.full([B, L + T], 1);
    for (let b = 0; b < B; b++) mask.data.set(batch.mask.data.subarray(b * L, (b + 1) * L), b * (L + T));
    const h = this.lm.hidden({ ids: batch.ids, attentionMask: mask, appendEmbeds: mem }); // (B, L + T, C)
    return this.heads.forward(slice(h, 1, L, L + T)); // (B, T, d)
  }

  forwardTexts(texts: readonly string[]): Tensor {
    const one = (t: string): Tensor => this.forward(encodeTexts(this.#tokenizer, [t], { maxLength: this.maxLength }));
    return texts.length === 1 ? one(texts[0]!) : concat(texts.map(one), 0); // (B, T, d)
  }
}
