/**
 * MAC's aggregation network h_ψ (reference models/module/aggregate.py + cross_attention.py): a stack of pre-LN
 * cross-attention blocks (Perceiver style) whose queries are the question's T tokens and whose keys/values are all
 * tokens of all memory entries, flattened.
 *
 *   block:     x ← x + CrossAttn(LN1(x), LNctx(ctx));   x ← x + FFN(LN2(x))
 *   CrossAttn: to_q, to_k, to_v: Linear(d, NH·HS, no bias); softmax(q·kᵀ / sqrt(HS)) over all N·T memory tokens
 *              jointly; to_out: Linear(NH·HS, d) with bias; Dropout(p).
 *   FFN:       Linear(d, h) → GELU (erf) → Dropout(p) → Linear(h, d) → Dropout(p);  h = NH·HS if d > NH·HS else d.
 *   Defaults:  4 blocks, 8 heads × 96 (inner 768), p = 0.
 * No mask and no positional encoding: the output is invariant to any permutation of the N·T memory tokens.
 *
 * Shapes: queries q0 (Bq, T, d) -> (Bq, T, d), the shape of a memory entry per question. Memory:
 *   (N, Tm, d)       shared by every question (the bank). Keys are computed once, (1, N·Tm, NH, HS), and the Bq·T
 *                    queries attend to them as one batch-1 attention call with Bq·T query rows (the attention op
 *                    does not broadcast a k/v batch of 1, and needs not: without mask or causality, queries of
 *                    different questions over the same keys are just more query rows). No per-question copy.
 *   (Bq, N, Tm, d)   one memory per question (hierarchical aggregation above its first level).
 *   AggregatorMemory the per-block keys/values of a memory, from encodeMemory(): they do not depend on the
 *                    question, so a bank's keys/values can be computed once and reused for every question.
 *
 * Parameter names follow the reference (cross_attention_list.{i}.norm1/norm_context/attn.to_q/to_k/to_v/norm2),
 * except attn.to_out (reference: attn.to_out.0) and mlp.fc1/fc2 (reference: mlp.net.0 / mlp.net.3).
 */
import { ShapeError, fmtShape } from "../../errors.js";
import { Dropout, LayerNorm, Linear } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import {
  type FloatDType,
  type Tensor,
  add,
  attention,
  gelu,
  matmul,
  mean,
  permute,
  reshape,
  scale,
  softmax,
} from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import { castParameters } from "../heads.js";

export interface AggregatorOptions {
  /** Cross-attention blocks (reference: 4). */
  numBlocks?: number;
  /** Attention heads (reference: 8). */
  numHeads?: number;
  /** Size of each head (reference: 96). */
  headDim?: number;
  /** FFN hidden size; default NH·HS if d > NH·HS else d (the reference rule). */
  ffnHidden?: number;
  /** Dropout after to_out and inside the FFN (reference: 0). */
  dropout?: number;
  /**
   * Add the question tokens to the first block's readout (reference: true). false makes the output a function of
   * the memory read with the question's attention: the question then cannot drown the memory's content, which is
   * what a modulation that only supplements the question (soft-prompt) needs.
   */
  queryResidual?: boolean;
  /** LayerNorm epsilon (torch default 1e-5). */
  eps?: number;
  rng?: Rng;
  /** Parameter dtype (float64 for gradient checks). Default float32. */
  dtype?: FloatDType;
}

/** Keys and values of one block over a memory: (Bk, S, NH, HS), Bk = 1 (shared) or Bq (per question). */
export interface BlockKV {
  k: Tensor;
  v: Tensor;
}

/** A memory's keys/values for every block (see encodeMemory); `slots` = S = N·Tm memory tokens. */
export interface AggregatorMemory {
  readonly kind: "aggregator-memory";
  /** 1: shared by all questions; otherwise one memory per question. */
  readonly batch: number;
  readonly slots: number;
  readonly blocks: readonly BlockKV[];
}

export type MemoryInput = Tensor | AggregatorMemory;

/**
 * Receives each block's attention probabilities, averaged over heads: (B, L, S) with L query rows attending to the
 * S memory tokens (rows sum to 1). B and L are those of the attention call: for a memory shared by Bq questions,
 * B = 1 and L = Bq·T (question b's rows are b·T … b·T+T−1); for one memory per question, B = Bq and L = T. The
 * tensor belongs to the caller's scope. Only for inference: the probabilities are computed besides the fused
 * attention kernel (which never materialises them), so the output is the same with or without a sink.
 */
export type AttentionSink = (block: number, probs: Tensor) => void;

const isEncoded = (m: MemoryInput): m is AggregatorMemory => (m as AggregatorMemory).kind === "aggregator-memory";

export class CrossAttention extends Module {
  to_q: Linear;
  to_k: Linear;
  to_v: Linear;
  to_out: Linear;
  dropout: Dropout;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    readonly headDim: number,
    p: number,
    rng: Rng,
  ) {
    super();
    const inner = numHeads * headDim;
    this.to_q = new Linear(dim, inner, { rng, bias: false });
    this.to_k = new Linear(dim, inner, { rng, bias: false });
    this.to_v = new Linear(dim, inner, { rng, bias: false });
    this.to_out = new Linear(inner, dim, { rng });
    this.dropout = new Dropout(p);
  }

  /** ctx (Bk, S, d), already normalised -> keys/values (Bk, S, NH, HS). */
  keysValues(ctx: Tensor): BlockKV {
    const [Bk, S] = [ctx.dim(0), ctx.dim(1)];
    const shape = [Bk, S, this.numHeads, this.headDim];
    return { k: reshape(this.to_k.forward(ctx), shape), v: reshape(this.to_v.forward(ctx), shape) };
  }

  /** x (Bq, T, d), already normalised; kv batch 1 (shared) or Bq -> (Bq, T, d). */
  forward(x: Tensor, kv: BlockKV, sink?: (probs: Tensor) => void): Tensor {
    const [Bq, T] = [x.dim(0), x.dim(1)];
    const [NH, HS] = [this.numHeads, this.headDim];
    const q = this.to_q.forward(x); // (Bq, T, NH·HS)
    const shared = kv.k.dim(0) === 1 && Bq > 1;
    const q4 = reshape(q, shared ? [1, Bq * T, NH, HS] : [Bq, T, NH, HS]);
    const o = attention(q4, kv.k, kv.v); // scale 1/sqrt(HS), no mask
    if (sink) {
      // The same scores as the kernel's, materialised: (B, NH, L, S) → softmax → mean over heads (B, L, S).
      const scores = matmul(permute(q4, [0, 2, 1, 3]), permute(kv.k, [0, 2, 1, 3]), { transB: true });
      sink(mean(softmax(scale(scores, 1 / Math.sqrt(HS))), { axis: 1 }));
    }
    return this.dropout.forward(this.to_out.forward(reshape(o, [Bq, T, NH * HS]))); // (Bq, T, d)
  }
}

export class FeedForward extends Module {
  fc1: Linear;
  fc2: Linear;
  dropout: Dropout;

  constructor(dim: number, hidden: number, p: number, rng: Rng) {
    super();
    this.fc1 = new Linear(dim, hidden, { rng });
    this.fc2 = new Linear(hidden, dim, { rng });
    this.dropout = new Dropout(p);
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.fc2.forward(this.dropout.forward(gelu(this.fc1.forward(x)))));
  }
}

export class CrossAttentionBlock extends Module {
  norm1: LayerNorm;
  norm_context: LayerNorm;
  attn: CrossAttention;
  norm2: LayerNorm;
  mlp: FeedForward;

  constructor(dim: number, numHeads: number, headDim: number, ffnHidden: number, p: number, eps: number, rng: Rng) {
    super();
    this.norm1 = new LayerNorm(dim, eps);
    this.norm_context = new LayerNorm(dim, eps);
    this.attn = new CrossAttention(dim, numHeads, headDim, p, rng);
    this.norm2 = new LayerNorm(dim, eps);
    this.mlp = new FeedForward(dim, ffnHidden, p, rng);
  }

  /** ctx (Bk, S, d) -> this block's keys/values over it. */
  keysValues(ctx: Tensor): BlockKV {
    return this.attn.keysValues(this.norm_context.forward(ctx));
  }

  /**
   * x (Bq, T, d) -> (Bq, T, d); `sink` receives the attention probabilities (see AttentionSink). Without
   * `residual` the block's output is its memory readout alone (the queries only choose what is read).
   */
  forward(x: Tensor, kv: BlockKV, sink?: (probs: Tensor) => void, residual = true): Tensor {
    const a = this.attn.forward(this.norm1.forward(x), kv, sink);
    const h = residual ? add(x, a) : a; // (Bq, T, d)
    return add(h, this.mlp.forward(this.norm2.forward(h))); // (Bq, T, d)
  }
}

export class Aggregator extends Module {
  cross_attention_list: CrossAttentionBlock[];
  readonly numHeads: number;
  readonly headDim: number;
  readonly ffnHidden: number;
  readonly queryResidual: boolean;

  constructor(
    readonly dim: number,
    opts: AggregatorOptions = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.numHeads = opts.numHeads ?? 8;
    this.headDim = opts.headDim ?? 96;
    const inner = this.numHeads * this.headDim;
    this.ffnHidden = opts.ffnHidden ?? (dim > inner ? inner : dim);
    const p = opts.dropout ?? 0;
    const eps = opts.eps ?? 1e-5;
    this.queryResidual = opts.queryResidual ?? true;
    this.cross_attention_list = Array.from(
      { length: opts.numBlocks ?? 4 },
      () => new CrossAttentionBlock(dim, this.numHeads, this.headDim, this.ffnHidden, p, eps, rng),
    );
    if (opts.dtype && opts.dtype !== "float32") castParameters(this, opts.dtype);
  }

  /** How many attention reports forward() makes (provenance averages over them). */
  get attentionBlocks(): number {
    return this.cross_attention_list.length;
  }

  /**
   * Per-block keys/values of a memory, (N, Tm, d) shared or (Bq, N, Tm, d) per question. Independent of the
   * question: compute once per bank, pass to forward() for every question (differentiable like forward).
   */
  encodeMemory(memory: Tensor): AggregatorMemory {
    const d = this.dim;
    if ((memory.ndim !== 3 && memory.ndim !== 4) || memory.dim(-1) !== d)
      throw new ShapeError("Aggregator", `memory ${fmtShape(memory.shape)} must be (N, Tm, ${d}) or (Bq, N, Tm, ${d})`);
    const batch = memory.ndim === 3 ? 1 : memory.dim(0);
    const slots = memory.ndim === 3 ? memory.dim(0) * memory.dim(1) : memory.dim(1) * memory.dim(2);
    if (slots === 0) throw new ShapeError("Aggregator", `memory ${fmtShape(memory.shape)} is empty`);
    const ctx = reshape(memory, [batch, slots, d]); // (1|Bq, N·Tm, d): the memory tokens, flattened
    return { kind: "aggregator-memory", batch, slots, blocks: this.cross_attention_list.map((b) => b.keysValues(ctx)) };
  }

  /**
   * q0 (Bq, T, d) question tokens, memory (see the module comment) -> (Bq, T, d). With `opts.attention`, each
   * block's attention probabilities go to that sink (provenance); the output is the same.
   */
  forward(q0: Tensor, memory: MemoryInput, opts: { attention?: AttentionSink } = {}): Tensor {
    const d = this.dim;
    if (q0.ndim !== 3 || q0.dim(2) !== d)
      throw new ShapeError("Aggregator", `queries ${fmtShape(q0.shape)} must be (Bq, T, ${d})`);
    const mem = isEncoded(memory) ? memory : this.encodeMemory(memory);
    const Bq = q0.dim(0);
    if (mem.batch !== 1 && mem.batch !== Bq)
      throw new ShapeError(
        "Aggregator",
        `memory has ${mem.batch} per-question banks for ${Bq} questions (queries ${fmtShape(q0.shape)})` +
          (isEncoded(memory) ? "" : `, memory ${fmtShape(memory.shape)}`),
      );
    if (mem.blocks.length !== this.cross_attention_list.length)
      throw new ShapeError(
        "Aggregator",
        `encoded memory has ${mem.blocks.length} blocks, the aggregator ${this.cross_attention_list.length}`,
      );
    let x = q0;
    const sink = opts.attention;
    this.cross_attention_list.forEach(
      (block, i) =>
        (x = block.forward(x, mem.blocks[i]!, sink && ((p: Tensor) => sink(i, p)), i > 0 || this.queryResidual)),
    );
    return x; // (Bq, T, d)
  }
}
