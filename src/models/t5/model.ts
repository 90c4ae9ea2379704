/**
 * T5 (Raffel et al. 2020) as Hugging Face's T5Model / T5ForConditionalGeneration computes it, with its parameter
 * names (shared, encoder.block.N.layer.0.SelfAttention.q, decoder.block.N.layer.1.EncDecAttention.k, ...).
 * Pre-norm blocks with T5LayerNorm (RMS norm, no bias), no bias anywhere, and no 1/√HS score scaling:
 *
 *   encoder: h = drop(shared[ids]);  per block  h += drop(o(attn(q, k, v; + bias_enc, key mask)))  on LN(h)
 *                                               h += drop(FF(LN(h)))
 *            out = drop(LN_final(h))
 *   decoder: h = drop(shared[ids] or inputs_embeds);  per block  causal self-attention (+ bias_dec),
 *            cross-attention to the encoder output (optional encoder mask, no position bias), FF; out = drop(LN(h))
 *   FF: wo(drop(act(wi(x)))) (v1.0, ReLU) or wo(drop(act(wi_0(x)) · wi_1(x))) (gated, v1.1: gelu_new)
 *   logits = lm_head(out · d_model^-0.5) with lm_head = shared when tied (see config.ts for when it rescales)
 *
 * Relative position bias: block 0's self-attention owns relative_attention_bias (num_buckets, NH); the bias
 * (NH, Tq, Tk) = table[bucket(key − query)] is computed once per stack and added to every layer's scores (so its
 * gradient sums over the layers). Buckets: bidirectional in the encoder (half the buckets for keys after the
 * query), causal in the decoder; exact below max_exact = buckets/2 (of the side), logarithmic up to max_distance,
 * computed in float32 exactly as transformers does (see relativePositionBucket).
 *
 * MAC's amortization network (mac-reference.md 1.3) is encode(document) then decode({inputsEmbeds: learned
 * queries, encoderHidden}) with no encoder mask, and no lm_head (pass lmHead: "none").
 * Dropout (dropout_rate, also on the attention probabilities inside the fused attention kernel, as HF's
 * T5Attention) is active in training mode only. No incremental decoding (KV cache) and no modulation: MAC does not need them.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { Dropout, Embedding, Linear, RMSNorm, attentionDropout } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import {
  type Tensor,
  Tensor as T,
  add,
  attention,
  embedding,
  gelu,
  linear,
  mul,
  permute,
  record,
  reshape,
  scale,
  silu,
  swiglu,
} from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import type { Encoder, Modulation } from "../types.js";
import { T5_DEFAULTS, type T5Activation, type T5Config } from "./config.js";

// ---- relative position buckets ------------------------------------------------------------------------------

const f32 = Math.fround;

/**
 * transformers' T5Attention._relative_position_bucket for one relative position (key − query), reproducing its
 * float32 arithmetic: max_exact + trunc(f32(f32(log(f32(n / max_exact))) · f32(1 / f32(log(max_distance /
 * max_exact)))) · (buckets − max_exact)), capped at buckets − 1 (PyTorch divides a float32 tensor by a Python
 * scalar as a multiplication by its float32 reciprocal).
 */
export function relativePositionBucket(
  rel: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): number {
  let buckets = numBuckets;
  let out = 0;
  let n: number;
  if (bidirectional) {
    buckets = Math.floor(buckets / 2);
    if (rel > 0) out += buckets;
    n = Math.abs(rel);
  } else n = Math.max(-rel, 0);
  const maxExact = Math.floor(buckets / 2);
  if (n < maxExact) return out + n;
  const logRatio = f32(Math.log(f32(n / maxExact)));
  const inv = f32(1 / f32(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f32(f32(logRatio * inv) * (buckets - maxExact)));
  return out + Math.min(large, buckets - 1);
}

/** Bucket ids (Tq, Tk) int32 for queries at offset + 0..Tq−1 and keys 0..Tk−1. */
export function relativePositionBuckets(
  Tq: number,
  Tk: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
  offset = 0,
): Tensor {
  // One bucket per relative position rel = j − (offset + i) ∈ [−(offset + Tq − 1), Tk − 1].
  const lo = -(offset + Tq - 1);
  const byRel = Int32Array.from({ length: Math.max(Tk - lo, 0) }, (_, r) =>
    relativePositionBucket(r + lo, bidirectional, numBuckets, maxDistance),
  );
  const out = T.empty([Tq, Tk], "int32");
  const d = out.data;
  for (let i = 0; i < Tq; i++) {
    const base = -(offset + i) - lo; // index of rel = −(offset + i), i.e. j = 0
    for (let j = 0; j < Tk; j++) d[i * Tk + j] = byRel[base + j]!;
  }
  return out;
}

// ---- activations ----------------------------------------------------------------------------------------------

/**
 * max(x, 0) (NaN passes through), differentiable (gradient g where x > 0). A plain loop over CPU memory:
 * TODO(activation owner): a native relu in src/tensor/ops/activation.ts would replace this.
 */
function relu(x: Tensor): Tensor {
  const out = T.empty(x.shape, x.dtype, x.device);
  const xd = x.data;
  const od = out.data;
  for (let i = 0; i < xd.length; i++) {
    const v = xd[i]!;
    od[i] = v < 0 ? 0 : v;
  }
  return record(out, "relu", [x], (g) => {
    const dx = T.empty(x.shape, x.dtype, x.device);
    const gd = g.data;
    const dd = dx.data;
    for (let i = 0; i < xd.length; i++) dd[i] = xd[i]! > 0 ? gd[i]! : 0;
    return [dx];
  });
}

function activate(x: Tensor, act: T5Activation): Tensor {
  switch (act) {
    case "relu":
      return relu(x);
    case "gelu_new":
      return gelu(x, "tanh");
    case "gelu":
      return gelu(x, "none");
    case "silu":
      return silu(x);
  }
}

// ---- modules ---------------------------------------------------------------------------------------------------

interface AttentionContext {
  bias: Tensor | null; // (NH, Tq, Tk) relative position bias, shared by the batch
  keyMask: Tensor | null; // (B, Tk)
  causal: boolean;
}

export class T5Attention extends Module {
  q: Linear; // (NH·HS, C)
  k: Linear;
  v: Linear;
  o: Linear; // (C, NH·HS)
  relative_attention_bias: Embedding | null; // (num_buckets, NH), block 0's self-attention only

  constructor(
    readonly config: T5Config,
    hasRelativeBias: boolean,
    /** Bidirectional buckets (encoder) or causal ones (decoder). */
    readonly bidirectional: boolean,
    rng: Rng,
  ) {
    super();
    const { d_model: C, d_kv: HS, num_heads: NH, initializer_factor: f } = config;
    const inner = NH * HS;
    // transformers' T5 initialisation.
    this.q = new Linear(C, inner, { rng, std: f * (C * HS) ** -0.5, bias: false });
    this.k = new Linear(C, inner, { rng, std: f * C ** -0.5, bias: false });
    this.v = new Linear(C, inner, { rng, std: f * C ** -0.5, bias: false });
    this.o = new Linear(inner, C, { rng, std: f * inner ** -0.5, bias: false });
    this.relative_attention_bias = hasRelativeBias
      ? new Embedding(config.relative_attention_num_buckets, NH, { rng, std: f * C ** -0.5 })
      : null;
  }

  /** The relative position bias (NH, Tq, Tk) for queries at offset.. and keys 0..Tk−1. */
  computeBias(Tq: number, Tk: number, offset = 0): Tensor {
    const table = this.relative_attention_bias;
    if (!table)
      throw new MacLmError("MACLM_BAD_ARGUMENT", "T5Attention.computeBias: this layer has no relative_attention_bias");
    const c = this.config;
    const buckets = relativePositionBuckets(
      Tq,
      Tk,
      this.bidirectional,
      c.relative_attention_num_buckets,
      c.relative_attention_max_distance,
      offset,
    );
    return permute(embedding(buckets, table.weight), [2, 0, 1]); // (Tq, Tk, NH) -> (NH, Tq, Tk)
  }

  /** x (B, Tq, C) attends to kv (B, Tk, C) (x itself for self-attention) -> (B, Tq, C). */
  forward(x: Tensor, kv: Tensor, ctx: AttentionContext): Tensor {
    const [B, Tq] = x.shape as [number, number, number];
    const Tk = kv.dim(1);
    const NH = this.config.num_heads;
    const HS = this.config.d_kv;
    const q = reshape(this.q.forward(x), [B, Tq, NH, HS]);
    const k = reshape(this.k.forward(kv), [B, Tk, NH, HS]);
    const v = reshape(this.v.forward(kv), [B, Tk, NH, HS]);
    const dropout = attentionDropout(this, this.config.dropout_rate);
    const y = attention(q, k, v, { causal: ctx.causal, keyMask: ctx.keyMask, bias: ctx.bias, scale: 1, dropout }); // (B, Tq, NH, HS)
    return this.o.forward(reshape(y, [B, Tq, NH * HS])); // (B, Tq, C)
  }
}

export class T5LayerSelfAttention extends Module {
  SelfAttention: T5Attention;
  layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(config: T5Config, hasRelativeBias: boolean, isDecoder: boolean, rng: Rng) {
    super();
    this.SelfAttention = new T5Attention(config, hasRelativeBias, !isDecoder, rng);
    this.layer_norm = new RMSNorm(config.d_model, config.layer_norm_epsilon);
    this.dropout = new Dropout(config.dropout_rate);
  }

  forward(h: Tensor, ctx: AttentionContext): Tensor {
    const x = this.layer_norm.forward(h);
    return add(h, this.dropout.forward(this.SelfAttention.forward(x, x, ctx)));
  }
}

export class T5LayerCrossAttention extends Module {
  EncDecAttention: T5Attention;
  layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(config: T5Config, rng: Rng) {
    super();
    this.EncDecAttention = new T5Attention(config, false, true, rng);
    this.layer_norm = new RMSNorm(config.d_model, config.layer_norm_epsilon);
    this.dropout = new Dropout(config.dropout_rate);
  }

  forward(h: Tensor, encoderHidden: Tensor, encoderMask: Tensor | null): Tensor {
    const x = this.layer_norm.forward(h);
    const a = this.EncDecAttention.forward(x, encoderHidden, { bias: null, keyMask: encoderMask, causal: false });
    return add(h, this.dropout.forward(a));
  }
}

/** wo(drop(act(wi(x)))): T5 v1.0's ReLU feed-forward. */
export class T5DenseActDense extends Module {
  wi: Linear; // (d_ff, C)
  wo: Linear; // (C, d_ff)
  dropout: Dropout;

  constructor(
    readonly config: T5Config,
    rng: Rng,
  ) {
    super();
    const f = config.initializer_factor;
    this.wi = new Linear(config.d_model, config.d_ff, { rng, std: f * config.d_model ** -0.5, bias: false });
    this.wo = new Linear(config.d_ff, config.d_model, { rng, std: f * config.d_ff ** -0.5, bias: false });
    this.dropout = new Dropout(config.dropout_rate);
  }

  forward(x: Tensor): Tensor {
    return this.wo.forward(this.dropout.forward(activate(this.wi.forward(x), this.config.dense_act_fn)));
  }
}

/** wo(drop(act(wi_0(x)) · wi_1(x))): the gated feed-forward of T5 v1.1 / flan-t5. */
export class T5DenseGatedActDense extends Module {
  wi_0: Linear; // (d_ff, C)
  wi_1: Linear; // (d_ff, C)
  wo: Linear; // (C, d_ff)
  dropout: Dropout;

  constructor(
    readonly config: T5Config,
    rng: Rng,
  ) {
    super();
    const f = config.initializer_factor;
    this.wi_0 = new Linear(config.d_model, config.d_ff, { rng, std: f * config.d_model ** -0.5, bias: false });
    this.wi_1 = new Linear(config.d_model, config.d_ff, { rng, std: f * config.d_model ** -0.5, bias: false });
    this.wo = new Linear(config.d_ff, config.d_model, { rng, std: f * config.d_ff ** -0.5, bias: false });
    this.dropout = new Dropout(config.dropout_rate);
  }

  forward(x: Tensor): Tensor {
    const gate = this.wi_0.forward(x);
    const up = this.wi_1.forward(x);
    const act = this.config.dense_act_fn;
    const h = act === "silu" ? swiglu(gate, up) : mul(activate(gate, act), up);
    return this.wo.forward(this.dropout.forward(h));
  }
}

export class T5LayerFF extends Module {
  DenseReluDense: T5DenseActDense | T5DenseGatedActDense;
  layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(config: T5Config, rng: Rng) {
    super();
    this.DenseReluDense = config.is_gated_act
      ? new T5DenseGatedActDense(config, rng)
      : new T5DenseActDense(config, rng);
    this.layer_norm = new RMSNorm(config.d_model, config.layer_norm_epsilon);
    this.dropout = new Dropout(config.dropout_rate);
  }

  forward(h: Tensor): Tensor {
    return add(h, this.dropout.forward(this.DenseReluDense.forward(this.layer_norm.forward(h))));
  }
}

interface BlockContext {
  self: AttentionContext;
  encoderHidden: Tensor | null;
  encoderMask: Tensor | null;
}

export class T5Block extends Module {
  /** [self-attention, FF] (encoder) or [self-attention, cross-attention, FF] (decoder), HF's layer.N names. */
  layer: (T5LayerSelfAttention | T5LayerCrossAttention | T5LayerFF)[];
  readonly #self: T5LayerSelfAttention;
  readonly #cross: T5LayerCrossAttention | null;
  readonly #ff: T5LayerFF;

  constructor(config: T5Config, hasRelativeBias: boolean, isDecoder: boolean, rng: Rng) {
    super();
    this.#self = new T5LayerSelfAttention(config, hasRelativeBias, isDecoder, rng);
    this.#cross = isDecoder ? new T5LayerCrossAttention(config, rng) : null;
    this.#ff = new T5LayerFF(config, rng);
    this.layer = this.#cross ? [this.#self, this.#cross, this.#ff] : [this.#self, this.#ff];
  }

  get selfAttention(): T5LayerSelfAttention {
    return this.#self;
  }

  forward(h: Tensor, ctx: BlockContext): Tensor {
    let x = this.#self.forward(h, ctx.self);
    if (this.#cross && ctx.encoderHidden) x = this.#cross.forward(x, ctx.encoderHidden, ctx.encoderMask);
    return this.#ff.forward(x);
  }
}

export class T5Stack extends Module {
  block: T5Block[];
  final_layer_norm: RMSNorm;
  dropout: Dropout;

  constructor(
    readonly config: T5Config,
    readonly isDecoder: boolean,
    rng: Rng,
  ) {
    super();
    const n = isDecoder ? config.num_decoder_layers : config.num_layers;
    this.block = Array.from({ length: n }, (_, i) => new T5Block(config, i === 0, isDecoder, rng));
    this.final_layer_norm = new RMSNorm(config.d_model, config.layer_norm_epsilon);
    this.dropout = new Dropout(config.dropout_rate);
  }

  /** embeds (B, T, C) -> final hidden state (B, T, C). */
  forward(embeds: Tensor, mask: Tensor | null, encoderHidden: Tensor | null, encoderMask: Tensor | null): Tensor {
    const Tn = embeds.dim(1);
    const bias = this.block[0]!.selfAttention.SelfAttention.computeBias(Tn, Tn); // (NH, T, T), shared by the layers
    const self: AttentionContext = { bias, keyMask: mask, causal: this.isDecoder };
    let h = this.dropout.forward(embeds);
    for (const b of this.block) h = b.forward(h, { self, encoderHidden, encoderMask });
    return this.dropout.forward(this.final_layer_norm.forward(h));
  }
}

export type T5LmHead = "tied" | "separate" | "none";

export interface T5Options {
  /** Seed of the random initialisation (transformers' T5 init). */
  seed?: number;
  /** Build the decoder (default true; false: encoder only, like T5EncoderModel). */
  decoder?: boolean;
  /**
   * The LM head: "tied" (logits from `shared`), "separate" (its own lm_head.weight), "none" (no logits; MAC deletes
   * the head). Default: "tied" when config.tie_word_embeddings, else "separate"; "none" without a decoder.
   */
  lmHead?: T5LmHead;
}

export interface T5DecodeInput {
  /** int32 (B, Tq) decoder token ids (T5 starts with decoder_start_token_id = pad) ... */
  ids?: Tensor | null;
  /** ... or (B, Tq, C) input embeddings (MAC's learned queries), exactly one of the two. */
  inputsEmbeds?: Tensor | null;
  /** (B, Tq): decoder self-attention key mask (1 = attend), on top of the causal mask. Default: none. */
  attentionMask?: Tensor | null;
  /** (B, Te, C) encoder output. */
  encoderHidden: Tensor;
  /** (B, Te): encoder key mask; default none (all attended, as MAC's amortizer). */
  encoderMask?: Tensor | null;
}

export class T5Model extends Module implements Encoder {
  readonly modelType = "t5";
  readonly hiddenSize: number;
  readonly lmHeadKind: T5LmHead;
  shared: Embedding; // (V, C)
  encoder: T5Stack;
  decoder: T5Stack | null;
  lm_head: Linear | null; // (V, C), only when separate

  constructor(
    readonly config: T5Config = T5_DEFAULTS,
    opts: T5Options = {},
  ) {
    super();
    this.hiddenSize = config.d_model;
    const rng = new Rng(opts.seed ?? 0);
    const withDecoder = opts.decoder ?? true;
    const head = opts.lmHead ?? (!withDecoder ? "none" : config.tie_word_embeddings ? "tied" : "separate");
    if (!withDecoder && head !== "none")
      throw new MacLmError("MACLM_BAD_ARGUMENT", `T5Model: an LM head ("${head}") needs the decoder`);
    this.lmHeadKind = head;
    const f = config.initializer_factor;
    this.shared = new Embedding(config.vocab_size, config.d_model, { rng, std: f });
    this.encoder = new T5Stack(config, false, rng);
    this.decoder = withDecoder ? new T5Stack(config, true, rng) : null;
    this.lm_head =
      head === "separate" ? new Linear(config.d_model, config.vocab_size, { rng, std: f, bias: false }) : null;
  }

  /** Encoder output (B, T, C) for ids (B, T) and an optional (B, T) mask (1 = attend, any dtype). */
  encode(ids: Tensor, attentionMask?: Tensor, modulation?: Modulation): Tensor {
    if (modulation && (modulation.prefix || modulation.lora))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        "t5.encode: modulation (prefix / LoRA) is not supported by the T5 encoder",
      );
    checkIds("t5.encode", ids);
    const mask = checkMask("t5.encode", "attentionMask", attentionMask ?? null, ids.dim(0), ids.dim(1));
    return this.encoder.forward(this.shared.forward(ids), mask, null, null);
  }

  /** Decoder output after the final layer norm (B, Tq, C): what MAC's amortizer uses. */
  decode(input: T5DecodeInput): Tensor {
    const op = "t5.decode";
    if (!this.decoder) throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: this model was built without a decoder`);
    const { ids, inputsEmbeds, encoderHidden } = input;
    if (!ids === !inputsEmbeds)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: give exactly one of ids and inputsEmbeds`);
    const C = this.config.d_model;
    let embeds: Tensor;
    if (ids) {
      checkIds(op, ids);
      embeds = this.shared.forward(ids);
    } else {
      embeds = inputsEmbeds!;
      if (embeds.ndim !== 3 || embeds.dim(2) !== C)
        throw new ShapeError(op, `inputsEmbeds ${fmtShape(embeds.shape)} must be (B, Tq, ${C})`);
    }
    const [B, Tq] = embeds.shape as [number, number];
    if (encoderHidden.ndim !== 3 || encoderHidden.dim(0) !== B || encoderHidden.dim(2) !== C)
      throw new ShapeError(
        op,
        `encoderHidden ${fmtShape(encoderHidden.shape)} must be (${B}, Te, ${C}) for decoder inputs ${fmtShape(embeds.shape)}`,
      );
    const mask = checkMask(op, "attentionMask", input.attentionMask ?? null, B, Tq);
    const encMask = checkMask(op, "encoderMask", input.encoderMask ?? null, B, encoderHidden.dim(1));
    return this.decoder.forward(embeds, mask, encoderHidden, encMask);
  }

  /** LM logits (B, Tq, V) of a decoder output; needs an LM head. */
  logits(decoderHidden: Tensor): Tensor {
    if (this.lmHeadKind === "none") throw new MacLmError("MACLM_BAD_ARGUMENT", "t5.logits: this model has no LM head");
    const h = this.config.scale_decoder_outputs ? scale(decoderHidden, this.config.d_model ** -0.5) : decoderHidden;
    return this.lm_head ? this.lm_head.forward(h) : linear(h, this.shared.weight);
  }
}

function checkIds(op: string, ids: Tensor): void {
  if (ids.ndim !== 2 || ids.dtype !== "int32")
    throw new ShapeError(op, `ids must be int32 (B, T), got ${ids.dtype} ${fmtShape(ids.shape)}`);
}

function checkMask(op: string, name: string, mask: Tensor | null, B: number, Tn: number): Tensor | null {
  if (mask && (mask.ndim !== 2 || mask.dim(0) !== B || mask.dim(1) !== Tn))
    throw new ShapeError(op, `${name} ${fmtShape(mask.shape)} must be (B, T) = (${B}, ${Tn})`);
  return mask;
}
