/**
 * BERT (Devlin et al. 2019) as Hugging Face's BertModel computes it, with its parameter names
 * (embeddings.word_embeddings, encoder.layer.N.attention.self.query, ...): post-LayerNorm layers,
 *
 *   h⁰ = drop(LN(word[ids] + token_type[types] + position[pos]))        pos = P, …, P + T − 1
 *        (word_embeddings has HF's padding_idx: no gradient reaches the pad_token_id row)
 *   a  = LN(h + drop(output.dense(attention(query(h), key(h), value(h), key mask))))
 *   h  ← LN(a + drop(output.dense(gelu(intermediate.dense(a)))))
 *   pooler (optional) = tanh(dense(h[:, 0]))
 *
 * encode() returns the last hidden state (B, T, C); meanPool() and l2Normalize() turn it into sentence
 * embeddings as sentence-transformers does for all-MiniLM-L6-v2 (mean over unmasked tokens, then unit length).
 *
 * Modulation, for interface uniformity with the causal LMs: modulation.prefix[l] = {k, v} (B|1, P, NH, HS) is
 * placed before layer l's keys/values (P-tuning v2 through HF's past_key_values: token positions start at P, the
 * mask grows by P); LoRA updates q/k/v (attention.self.query/key/value) and o (attention.output.dense).
 * Dropout (hidden_dropout_prob, and attention_probs_dropout_prob on the attention probabilities inside the fused
 * attention kernel) is active in training mode only.
 */
import { ShapeError, fmtShape } from "../../errors.js";
import { Dropout, Embedding, LayerNorm, Linear, attentionDropout } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import {
  type Tensor,
  Tensor as T,
  add,
  attention,
  concat,
  detach,
  div,
  embedding,
  gelu,
  mul,
  reshape,
  rmsNorm,
  sub,
  sum,
  tanh,
} from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import { checkPrefix, expandBatch } from "../kv-cache.js";
import { loraLayers, withLora } from "../lora.js";
import type { Encoder, LayerKV, LayerLora, ModelGeometry, Modulation } from "../types.js";
import { BERT_DEFAULTS, type BertConfig } from "./config.js";

const OP = "bert.forward";

export interface BertInput {
  ids: Tensor; // int32 (B, T)
  /** (B, T) or (B, P + T) with a prefix: 1 = attend, 0 = padding. Default: all ones. Any dtype. */
  attentionMask?: Tensor | null;
  /** int32 (B, T) segment ids; default 0. */
  tokenTypeIds?: Tensor | null;
  modulation?: Modulation;
}

/** What one layer's forward needs besides its input. */
interface LayerContext {
  past: LayerKV | null;
  keyMask: Tensor | null; // (B, P + T)
  lora: LayerLora;
}

export class BertEmbeddings extends Module {
  word_embeddings: Embedding; // (V, C)
  position_embeddings: Embedding; // (max_position_embeddings, C)
  token_type_embeddings: Embedding; // (type_vocab_size, C)
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(
    readonly config: BertConfig,
    rng: Rng,
  ) {
    super();
    const C = config.hidden_size;
    const std = config.initializer_range;
    this.word_embeddings = new Embedding(config.vocab_size, C, { rng, std });
    this.position_embeddings = new Embedding(config.max_position_embeddings, C, { rng, std });
    this.token_type_embeddings = new Embedding(config.type_vocab_size, C, { rng, std });
    this.LayerNorm = new LayerNorm(C, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }

  /** ids, types (B, T) int32, positions start at `offset` -> (B, T, C). */
  forward(ids: Tensor, types: Tensor | null, offset: number): Tensor {
    const Tn = ids.dim(1);
    const pos = T.from(
      Int32Array.from({ length: Tn }, (_, t) => offset + t),
      [Tn],
    );
    // In HF's order: (word + token type) + position.
    const typeEmb = this.token_type_embeddings.forward(types ?? T.zeros([1, Tn], "int32")); // (B|1, T, C)
    const x = add(add(this.wordEmbedding(ids), typeEmb), embedding(pos, this.position_embeddings.weight));
    return this.dropout.forward(this.LayerNorm.forward(x)); // (B, T, C)
  }

  /**
   * word_embeddings[ids], with HF's padding_idx: positions holding pad_token_id pass no gradient to the table
   * (y = e + m ⊙ (detach(e) − e) has y = e and dy/de = 1 − m).
   */
  private wordEmbedding(ids: Tensor): Tensor {
    const W = this.word_embeddings.weight;
    const e = embedding(ids, W); // (B, T, C)
    const pad = this.config.pad_token_id;
    if (pad === null || !W.requiresGrad || !e.requiresGrad) return e;
    const [B, Tn] = ids.shape as [number, number];
    const m = T.zeros([B, Tn, 1], e.dtype);
    let any = false;
    const idd = ids.data;
    for (let i = 0; i < idd.length; i++)
      if (idd[i] === pad) {
        m.data[i] = 1;
        any = true;
      }
    return any ? add(e, mul(m, sub(detach(e), e))) : e;
  }
}

export class BertSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;

  constructor(config: BertConfig, rng: Rng) {
    super();
    const C = config.hidden_size;
    const std = config.initializer_range;
    this.query = new Linear(C, C, { rng, std });
    this.key = new Linear(C, C, { rng, std });
    this.value = new Linear(C, C, { rng, std });
  }
}

export class BertSelfOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(config: BertConfig, rng: Rng) {
    super();
    this.dense = new Linear(config.hidden_size, config.hidden_size, { rng, std: config.initializer_range });
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertSelfOutput;

  constructor(
    readonly config: BertConfig,
    rng: Rng,
  ) {
    super();
    this.self = new BertSelfAttention(config, rng);
    this.output = new BertSelfOutput(config, rng);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [B, Tn, C] = x.shape as [number, number, number];
    const NH = this.config.num_attention_heads;
    const HS = C / NH;
    const { query, key, value } = this.self;
    const q = reshape(withLora("bert.attention.q", query.forward(x), x, ctx.lora.q), [B, Tn, NH, HS]);
    const k = reshape(withLora("bert.attention.k", key.forward(x), x, ctx.lora.k), [B, Tn, NH, HS]);
    const v = reshape(withLora("bert.attention.v", value.forward(x), x, ctx.lora.v), [B, Tn, NH, HS]);
    const pastK = ctx.past ? expandBatch(ctx.past.k, B) : null;
    const pastV = ctx.past ? expandBatch(ctx.past.v, B) : null;
    const probsDrop = attentionDropout(this, this.config.attention_probs_dropout_prob);
    const y = reshape(attention(q, k, v, { keyMask: ctx.keyMask, pastK, pastV, dropout: probsDrop }), [B, Tn, C]); // (B, T, C)
    const { dense, LayerNorm, dropout } = this.output;
    const o = dropout.forward(withLora("bert.attention.o", dense.forward(y), y, ctx.lora.o));
    return LayerNorm.forward(add(o, x)); // (B, T, C)
  }
}

export class BertIntermediate extends Module {
  dense: Linear;

  constructor(
    readonly config: BertConfig,
    rng: Rng,
  ) {
    super();
    this.dense = new Linear(config.hidden_size, config.intermediate_size, { rng, std: config.initializer_range });
  }

  forward(x: Tensor): Tensor {
    return gelu(this.dense.forward(x), this.config.hidden_act === "gelu" ? "none" : "tanh");
  }
}

export class BertOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(config: BertConfig, rng: Rng) {
    super();
    this.dense = new Linear(config.intermediate_size, config.hidden_size, { rng, std: config.initializer_range });
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }

  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(add(this.dropout.forward(this.dense.forward(h)), residual));
  }
}

export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertOutput;

  constructor(config: BertConfig, rng: Rng) {
    super();
    this.attention = new BertAttention(config, rng);
    this.intermediate = new BertIntermediate(config, rng);
    this.output = new BertOutput(config, rng);
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const a = this.attention.forward(x, ctx);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

export class BertEncoder extends Module {
  layer: BertLayer[];

  constructor(config: BertConfig, rng: Rng) {
    super();
    this.layer = Array.from({ length: config.num_hidden_layers }, () => new BertLayer(config, rng));
  }
}

export class BertPooler extends Module {
  dense: Linear;

  constructor(config: BertConfig, rng: Rng) {
    super();
    this.dense = new Linear(config.hidden_size, config.hidden_size, { rng, std: config.initializer_range });
  }

  /** tanh(dense(hidden[:, 0])): (B, T, C) -> (B, C). */
  forward(hidden: Tensor): Tensor {
    const [B, Tn, C] = hidden.shape as [number, number, number];
    const first = T.from(
      Int32Array.from({ length: B }, (_, b) => b * Tn),
      [B],
    );
    const cls = embedding(first, reshape(hidden, [B * Tn, C])); // (B, C): row b·T of the flattened states
    return tanh(this.dense.forward(cls));
  }
}

export interface BertOptions {
  /** Seed of the random initialisation (N(0, initializer_range²), LayerNorm 1/0, biases 0). */
  seed?: number;
  /** Add the pooler (dense + tanh on the first token), as BertModel(add_pooling_layer=True). Default true. */
  pooler?: boolean;
}

export class BertModel extends Module implements Encoder, ModelGeometry {
  readonly modelType = "bert";
  readonly numLayers: number;
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;

  constructor(
    readonly config: BertConfig = BERT_DEFAULTS,
    opts: BertOptions = {},
  ) {
    super();
    this.numLayers = config.num_hidden_layers;
    this.hiddenSize = config.hidden_size;
    this.numHeads = config.num_attention_heads;
    this.numKvHeads = config.num_attention_heads;
    this.headDim = config.hidden_size / config.num_attention_heads;
    this.vocabSize = config.vocab_size;
    const rng = new Rng(opts.seed ?? 0);
    this.embeddings = new BertEmbeddings(config, rng);
    this.encoder = new BertEncoder(config, rng);
    this.pooler = (opts.pooler ?? true) ? new BertPooler(config, rng) : null;
  }

  /** Last hidden state (B, T, C). */
  forward(input: BertInput): Tensor {
    const { ids } = input;
    if (ids.ndim !== 2 || ids.dtype !== "int32")
      throw new ShapeError(OP, `ids must be int32 (B, T), got ${ids.dtype} ${fmtShape(ids.shape)}`);
    const [B, Tn] = ids.shape as [number, number];
    const P = checkPrefix(OP, this, input.modulation, B);
    if (P + Tn > this.config.max_position_embeddings)
      throw new ShapeError(
        OP,
        `positions up to ${P + Tn - 1} exceed max_position_embeddings ${this.config.max_position_embeddings} (prefix ${P}, ids ${fmtShape(ids.shape)})`,
      );
    const types = input.tokenTypeIds ?? null;
    if (types && (types.dtype !== "int32" || types.ndim !== 2 || types.dim(0) !== B || types.dim(1) !== Tn))
      throw new ShapeError(
        OP,
        `tokenTypeIds must be int32 ${fmtShape(ids.shape)} like ids, got ${types.dtype} ${fmtShape(types.shape)}`,
      );
    const keyMask = prefixedMask(OP, input.attentionMask ?? null, B, Tn, P);
    const lora = loraLayers(OP, this, input.modulation);
    let x = this.embeddings.forward(ids, types, P); // (B, T, C)
    this.encoder.layer.forEach((layer, l) => {
      x = layer.forward(x, { past: input.modulation?.prefix?.[l] ?? null, keyMask, lora: lora[l]! });
    });
    return x;
  }

  /** Encoder interface: the last hidden state (B, T, C). */
  encode(ids: Tensor, attentionMask?: Tensor, modulation?: Modulation): Tensor {
    return this.forward({ ids, attentionMask: attentionMask ?? null, modulation });
  }

  /** Pooler output (B, C) of a last hidden state; needs the pooler. */
  pool(hidden: Tensor): Tensor {
    if (!this.pooler) throw new ShapeError("bert.pool", "this model has no pooler (loaded without pooler weights)");
    return this.pooler.forward(hidden);
  }

  /** sentence-transformers' embedding of all-MiniLM-L6-v2: l2Normalize(meanPool(encode(ids, mask), mask)) (B, C). */
  sentenceEmbedding(ids: Tensor, attentionMask?: Tensor): Tensor {
    const mask = attentionMask ?? T.full(ids.shape, 1);
    return l2Normalize(meanPool(this.encode(ids, mask), mask));
  }
}

/**
 * The key mask (B, P + T) for a (B, T) or (B, P + T) attention mask; a (B, T) mask gets P ones in front. Null
 * when there is neither a mask nor a prefix.
 */
function prefixedMask(op: string, mask: Tensor | null, B: number, Tn: number, P: number): Tensor | null {
  if (!mask) return null;
  if (mask.ndim !== 2 || mask.dim(0) !== B || (mask.dim(1) !== Tn && mask.dim(1) !== P + Tn))
    throw new ShapeError(
      op,
      `attentionMask ${fmtShape(mask.shape)} must be (B, T) = (${B}, ${Tn})${P > 0 ? ` or (B, P + T) = (${B}, ${P + Tn})` : ""}`,
    );
  if (mask.dim(1) === P + Tn) return mask;
  return concat([T.full([B, P], 1, mask.dtype), mask], 1);
}

/**
 * Mean of the hidden states over unmasked positions: Σ_t h[b,t]·m[b,t] / max(Σ_t m[b,t], 1e-9)
 * (sentence-transformers' Pooling with pooling_mode_mean_tokens). hidden (B, T, C), mask (B, T) any dtype -> (B, C).
 */
export function meanPool(hidden: Tensor, mask: Tensor): Tensor {
  const [B, Tn] = hidden.shape as [number, number, number];
  if (hidden.ndim !== 3 || mask.ndim !== 2 || mask.dim(0) !== B || mask.dim(1) !== Tn)
    throw new ShapeError(
      "meanPool",
      `hidden ${fmtShape(hidden.shape)} must be (B, T, C) and mask ${fmtShape(mask.shape)} (B, T)`,
    );
  const m = mask.dtype === hidden.dtype ? mask : mask.to(hidden.dtype);
  const count = T.empty([B, 1], hidden.dtype);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let t = 0; t < Tn; t++) s += m.data[b * Tn + t]!;
    count.data[b] = Math.max(s, 1e-9);
  }
  const summed = sum(mul(hidden, reshape(m, [B, Tn, 1])), { axis: 1 }); // (B, C)
  return div(summed, count); // (B, C)
}

/**
 * Rows scaled to unit L2 norm: x / sqrt(Σ x² + 1e-24) over the last dim — torch.nn.functional.normalize
 * (x / max(‖x‖, 1e-12)) for any row whose norm exceeds 1e-12. Differentiable (an RMS norm with weight 1/√C).
 */
export function l2Normalize(x: Tensor): Tensor {
  const C = x.dim(-1);
  const w = T.full([C], 1 / Math.sqrt(C), x.dtype);
  return rmsNorm(x, w, 1e-24 / C);
}
