/**
 * The selecting aggregator of the extractive memory (amortize/window-entry.ts): a question picks one memory entry —
 * one window of one document — whose tokens the LM then reads (modulation/tokens.ts).
 *
 *   entry  (Tm, C) = [ token embeddings of the window (Tm − 1) ; k = the LM's mean final state over it ]
 *   query  (Tm, C) = [ token embeddings of the question (Tm − 1, zero-padded) ; f = its mean final state ]
 *
 *   s(q, e) = (W_q LN(f)) · (W_k LN(k)) / √r                 dense: what the LM understood of both
 *           + β Σ_i w_i · [question token i occurs in e]     lexical: w_i = 2σ(u · LN(x_i) + c), learned per token
 *   z       = entry argmax_e s(q, e)                          (Tm, C): the chosen entry itself
 *
 * Why an entry and not a mixture: a 135M LM reads the tokens of a document, not a compressed summary of them
 * (results/training/content: learned latents were muted or ignored in every run, while the 32-token window that
 * best matches the question keeps 1.5 of the paragraph's 2.3 nats). The output is an entry, so hierarchical
 * aggregation (groups of M, then the groups' winners) chooses exactly what full aggregation chooses.
 *
 * Token occurrence is read from the embeddings themselves (the bank stores them, not ids): rows are compared by a
 * signature of their float16-rounded values, so an entry stored in float16 matches the question's float32 rows.
 * The scores are differentiable in the parameters (training: train/select.ts, to the frozen LM's own preference
 * among windows); the choice itself is not.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { LayerNorm, Linear } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import { Tensor, add, matmul, mul, reshape, sigmoid, slice, transpose } from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import { f32ToF16Bits } from "../memory/f16.js";
import type { AttentionSink } from "./aggregator.js";

export interface SelectAggregatorOptions {
  /** r: width of the dense score's projections (default 64). */
  rank?: number;
  /** Initial β, the weight of the lexical evidence (default 1: an untrained scorer picks by shared words). */
  lexicalGain?: number;
  rng?: Rng;
}

/** Components of a row its signature reads (spread over the width; any 8 distinct embeddings differ on them). */
const SIGNATURE_COMPONENTS = 8;

/** A row's signature: its float16-rounded values at a few fixed components; null for an all-zero (padding) row. */
export function rowSignature(data: Float32Array, offset: number, C: number): string | null {
  let key = "";
  let zero = true;
  for (let j = 0; j < SIGNATURE_COMPONENTS; j++) {
    const x = data[offset + Math.floor((j * C) / SIGNATURE_COMPONENTS)]!;
    if (x !== 0) zero = false;
    key += String.fromCharCode(f32ToF16Bits(x));
  }
  return zero ? null : key;
}

export class SelectAggregator extends Module {
  readonly rank: number;
  norm_q: LayerNorm;
  norm_k: LayerNorm;
  norm_w: LayerNorm;
  q_proj: Linear; // (r, C)
  k_proj: Linear; // (r, C)
  word_weight: Linear; // (1, C)
  lexical_gain: Tensor; // (1)

  constructor(
    readonly dim: number,
    opts: SelectAggregatorOptions = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.rank = opts.rank ?? 64;
    this.norm_q = new LayerNorm(dim);
    this.norm_k = new LayerNorm(dim);
    this.norm_w = new LayerNorm(dim);
    // Small projections: the untrained dense score is near zero, so the first choices are the lexical ones.
    this.q_proj = new Linear(dim, this.rank, { rng, std: 0.02 / Math.sqrt(dim), bias: false });
    this.k_proj = new Linear(dim, this.rank, { rng, std: 0.02 / Math.sqrt(dim), bias: false });
    this.word_weight = new Linear(dim, 1, { rng, std: 0 });
    this.lexical_gain = this.param(Tensor.full([1], opts.lexicalGain ?? 1));
  }

  /** Queries and entries must have the same Tm rows (Tm − 1 token rows, then the LM state) and width C. */
  private check(op: string, q0: Tensor, memory: Tensor): void {
    const C = this.dim;
    if (q0.ndim !== 3 || q0.dim(2) !== C)
      throw new ShapeError(op, `queries ${fmtShape(q0.shape)} must be (Bq, Tm, ${C})`);
    const Tm = q0.dim(1);
    const ok =
      (memory.ndim === 3 && memory.dim(1) === Tm && memory.dim(2) === C) ||
      (memory.ndim === 4 && memory.dim(0) === q0.dim(0) && memory.dim(2) === Tm && memory.dim(3) === C);
    if (!ok)
      throw new ShapeError(
        op,
        `memory ${fmtShape(memory.shape)} must be (N, ${Tm}, ${C}) or (${q0.dim(0)}, N, ${Tm}, ${C}) for queries ${fmtShape(q0.shape)}`,
      );
    if ((memory.ndim === 3 ? memory.dim(0) : memory.dim(1)) === 0)
      throw new ShapeError(op, `memory ${fmtShape(memory.shape)} is empty`);
  }

  /**
   * s(q, e) for every question and entry: q0 (Bq, Tm, C), memory (N, Tm, C) shared or (Bq, N, Tm, C) per question
   * → (Bq, N). Differentiable in the parameters.
   */
  scores(q0: Tensor, memory: Tensor): Tensor {
    this.check("SelectAggregator", q0, memory);
    const [Bq, Tm, C] = q0.shape as [number, number, number];
    const shared = memory.ndim === 3;
    const N = shared ? memory.dim(0) : memory.dim(1);
    const r = this.rank;
    // Dense: (Bq, r) · (N, r)ᵀ, or per question (Bq, 1, r) · (Bq, N, r)ᵀ.
    const f = reshape(slice(q0, 1, Tm - 1, Tm), [Bq, C]);
    const qv = this.q_proj.forward(this.norm_q.forward(f)); // (Bq, r)
    const k = shared
      ? reshape(slice(memory, 1, Tm - 1, Tm), [N, C])
      : reshape(slice(memory, 2, Tm - 1, Tm), [Bq, N, C]);
    const kv = this.k_proj.forward(this.norm_k.forward(k)); // (N, r) | (Bq, N, r)
    const dense = shared
      ? matmul(qv, transpose(kv, 0, 1))
      : reshape(matmul(reshape(qv, [Bq, 1, r]), transpose(kv, 1, 2)), [Bq, N]);
    // Lexical: per-token weights (Bq, 1, Tm−1) times occurrence (Bq, Tm−1, N).
    const x = slice(q0, 1, 0, Tm - 1); // (Bq, Tm−1, C)
    const w = mul(sigmoid(this.word_weight.forward(this.norm_w.forward(x))), Tensor.scalar(2)); // (Bq, Tm−1, 1)
    const occ = this.occurrence(q0, memory); // (Bq, Tm−1, N), 0 on padding rows
    const lex = reshape(matmul(transpose(mul(w, occ.mask), 1, 2), occ.hits), [Bq, N]);
    return add(mul(dense, Tensor.scalar(1 / Math.sqrt(r))), mul(lex, this.lexical_gain));
  }

  /** hits[b, i, n] = 1 if question b's token row i occurs among entry n's token rows; mask: 1 on real rows. */
  private occurrence(q0: Tensor, memory: Tensor): { hits: Tensor; mask: Tensor } {
    const [Bq, Tm, C] = q0.shape as [number, number, number];
    const shared = memory.ndim === 3;
    const N = shared ? memory.dim(0) : memory.dim(1);
    const m = memory.f32;
    const entryRows = (b: number, n: number): Set<string> => {
      const base = ((shared ? 0 : b * N) + n) * Tm * C;
      const s = new Set<string>();
      for (let t = 0; t < Tm - 1; t++) {
        const sig = rowSignature(m, base + t * C, C);
        if (sig !== null) s.add(sig);
      }
      return s;
    };
    const sharedSets = shared ? Array.from({ length: N }, (_, n) => entryRows(0, n)) : null;
    const hits = Tensor.zeros([Bq, Tm - 1, N]);
    const mask = Tensor.zeros([Bq, Tm - 1, 1]);
    const q = q0.f32;
    for (let b = 0; b < Bq; b++) {
      const sets = sharedSets ?? Array.from({ length: N }, (_, n) => entryRows(b, n));
      for (let i = 0; i < Tm - 1; i++) {
        const sig = rowSignature(q, (b * Tm + i) * C, C);
        if (sig === null) continue;
        mask.data[b * (Tm - 1) + i] = 1;
        for (let n = 0; n < N; n++) if (sets[n]!.has(sig)) hits.data[(b * (Tm - 1) + i) * N + n] = 1;
      }
    }
    return { hits, mask };
  }

  /** The chosen entry of each question (Bq indices) and the softmax of its scores (Bq arrays of N). */
  choose(q0: Tensor, memory: Tensor): { index: number[]; shares: Float64Array[] } {
    const s = this.scores(q0, memory);
    const [Bq, N] = s.shape as [number, number];
    const index: number[] = [];
    const shares: Float64Array[] = [];
    for (let b = 0; b < Bq; b++) {
      const row = s.f32.subarray(b * N, (b + 1) * N);
      let best = 0;
      for (let n = 1; n < N; n++) if (row[n]! > row[best]!) best = n;
      const p = Float64Array.from(row, (v) => Math.exp(v - row[best]!));
      const z = p.reduce((a, v) => a + v, 0);
      index.push(best);
      shares.push(p.map((v) => v / z));
    }
    return { index, shares };
  }

  /**
   * q0 (Bq, L, C) with L = nq·Tm (hierarchical aggregation folds nq questions into the token axis, each Tm rows a
   * question of its own), memory (N, Tm, C) or (Bq, N, Tm, C) → (Bq, L, C): each question's chosen entry. With
   * opts.attention, the choice's softmax is reported as one block's attention over the N·Tm memory tokens.
   */
  forward(q0: Tensor, memory: Tensor, opts: { attention?: AttentionSink } = {}): Tensor {
    if (!(memory instanceof Tensor))
      throw new MacLmError("MACLM_BAD_ARGUMENT", "SelectAggregator: memory must be a tensor of entries");
    const Tm = memory.dim(memory.ndim - 2);
    const [Bq, L, C] = q0.shape as [number, number, number];
    if (q0.ndim !== 3 || L % Tm !== 0)
      throw new ShapeError("SelectAggregator", `queries ${fmtShape(q0.shape)} must be (Bq, nq·${Tm}, ${C})`);
    const nq = L / Tm;
    const shared = memory.ndim === 3;
    const N = shared ? memory.dim(0) : memory.dim(1);
    const out = Tensor.zeros([Bq, L, C]);
    const probs = opts.attention ? Tensor.zeros([Bq, L, N * Tm]) : null;
    const m = memory.f32;
    for (let c = 0; c < nq; c++) {
      const q = nq === 1 ? q0 : slice(q0, 1, c * Tm, (c + 1) * Tm);
      const { index, shares } = this.choose(q, memory);
      for (let b = 0; b < Bq; b++) {
        const src = ((shared ? 0 : b * N) + index[b]!) * Tm * C;
        out.data.set(m.subarray(src, src + Tm * C), (b * L + c * Tm) * C);
        if (probs)
          for (let t = 0; t < Tm; t++)
            for (let n = 0, row = (b * L + c * Tm + t) * N * Tm; n < N; n++)
              probs.data.fill(shares[b]![n]! / Tm, row + n * Tm, row + (n + 1) * Tm);
      }
    }
    if (probs) opts.attention!(0, probs);
    return out;
  }

  /** How many attention reports forward() makes (provenance averages over them). */
  get attentionBlocks(): number {
    return 1;
  }
}
