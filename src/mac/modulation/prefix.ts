/**
 * Latent z (B, T, d) → P-tuning v2 prefix keys/values for every layer of a frozen LM (reference
 * amortized_encdec.py prompt_latent_to_prompt + models/module/self_attention.py TokenSelfAttend, §1.7).
 *
 * Given the LM's geometry (L layers, NKV key/value heads of size HS; kvDim = NKV·HS) and P prefix tokens per
 * layer, A = P·2L positions:
 *   1. repeat the T latent tokens to A positions (repeat.ts: first rem tokens r+1 times, consecutively);
 *   2. per position a, a residual FFN:  y_a = skip(x_a) + Dropout(fc2_a(Dropout(GELU(fc1_a(LN_a(x_a))))))
 *      with fc1: d → h (default 768, the reference's hard-coded size), fc2: h → kvDim;
 *   3. position a = p·2L + j is layer l = floor(j / 2)'s key (j = 2l) or value (j = 2l + 1) at prefix position p,
 *      and channel c of y_a is head floor(c / HS), channel c % HS:  prefix[l].k[b, p] = y[b, p·2L + 2l],
 *      prefix[l].v[b, p] = y[b, p·2L + 2l + 1], each (B, P, NKV, HS).
 *
 * Grouped-query attention: the reference assumes kvDim = d (GPT-2, Llama-2-7B). When kvDim ≠ d the FFN's output
 * layer maps h → kvDim and the residual goes through a learned Linear(d, kvDim) skip (one per position, like the
 * FFN); with kvDim = d the skip is the identity, which is the reference exactly.
 *
 * Two variants:
 *   PrefixModulation ("prefix", the reference): A separate FFNs, held stacked ((A, h, d) weights) and applied with
 *     one batched matmul. About A·(2·d·h) parameters (the release's cost: 805 M for Llama-2-7B).
 *   SharedPrefixModulation ("prefix-shared"): one FFN for all positions plus a learned position embedding
 *     pos (A, d), N(0, 0.02²), added to the repeated latent first: x_a = z_tok(a) + pos_a. About 2·d·h + A·d.
 *
 * Parameter names and the reference's (token_SA.mlp_layers.{a}.net.*): norm[a] = net.0, fc1[a] = net.1,
 * fc2[a] = net.4 (stacked along the first dim).
 */
import { ShapeError, fmtShape } from "../../errors.js";
import { Dropout, LayerNorm, Linear } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import {
  type FloatDType,
  type Tensor,
  add,
  gelu,
  indexSelect,
  permute,
  reshape,
  split,
  untrack,
} from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import type { LayerKV, ModelGeometry, Modulation } from "../../models/types.js";
import { StackedLayerNorm, StackedLinear, castParameters } from "../heads.js";
import { repeatIndexTensor } from "./repeat.js";

export interface PrefixOptions {
  /** Prefix tokens per layer, P (reference: 2). */
  numPrefixTokens?: number;
  /** FFN hidden size h (reference: 768). */
  hidden?: number;
  /** Dropout inside the FFN (reference: 0). */
  dropout?: number;
  /** LayerNorm epsilon (torch default 1e-5). */
  eps?: number;
  rng?: Rng;
  /** Parameter dtype (float64 for gradient checks). Default float32. */
  dtype?: FloatDType;
}

/** A module that turns an aggregated latent (B, T, d) into a modulation of a frozen LM. */
export interface ModulationGenerator extends Module {
  readonly latentDim: number;
  forward(z: Tensor): Modulation;
}

/** The prefix geometry of an LM: A = P·2L positions of kvDim = NKV·HS channels. */
export interface PrefixGeometry {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  numPrefixTokens: number;
  numPositions: number;
  kvDim: number;
}

export function prefixGeometry(g: ModelGeometry, numPrefixTokens: number): PrefixGeometry {
  if (!Number.isInteger(numPrefixTokens) || numPrefixTokens < 1)
    throw new ShapeError("prefix", `the number of prefix tokens must be a positive integer, got ${numPrefixTokens}`);
  return {
    numLayers: g.numLayers,
    numKvHeads: g.numKvHeads,
    headDim: g.headDim,
    numPrefixTokens,
    numPositions: numPrefixTokens * 2 * g.numLayers,
    kvDim: g.numKvHeads * g.headDim,
  };
}

/** y (A, B, kvDim), position a = p·2L + j → per layer {k, v} (B, P, NKV, HS). */
export function positionsToLayerKV(y: Tensor, pg: PrefixGeometry): LayerKV[] {
  const { numLayers: L, numPrefixTokens: P, numKvHeads: NKV, headDim: HS, kvDim } = pg;
  const B = y.dim(1);
  const byJ = permute(reshape(y, [P, 2 * L, B, kvDim]), [1, 2, 0, 3]); // (2L, B, P, kvDim)
  const parts = split(byJ, 1, 0).map((t) => reshape(t, [B, P, NKV, HS])); // 2L × (B, P, NKV, HS)
  return Array.from({ length: L }, (_, l) => ({ k: parts[2 * l]!, v: parts[2 * l + 1]! }));
}

/** Cache of repeat-index tensors by T (they are constants; not parameters). */
class RepeatIndexCache {
  #byT = new Map<number, Tensor>();
  constructor(readonly numPositions: number) {}
  get(T: number): Tensor {
    let t = this.#byT.get(T);
    if (!t) {
      t = untrack(repeatIndexTensor(T, this.numPositions));
      this.#byT.set(T, t);
    }
    return t;
  }
  dispose(): void {
    for (const t of this.#byT.values()) t.dispose();
    this.#byT.clear();
  }
}

function checkLatent(op: string, z: Tensor, d: number): void {
  if (z.ndim !== 3 || z.dim(2) !== d || z.dim(1) < 1)
    throw new ShapeError(op, `latent ${fmtShape(z.shape)} must be (B, T, ${d}) with T ≥ 1`);
}

/** "prefix": the reference's per-position FFNs (see the module comment). */
export class PrefixModulation extends Module implements ModulationGenerator {
  norm: StackedLayerNorm;
  fc1: StackedLinear;
  fc2: StackedLinear;
  skip: StackedLinear | null;
  dropout: Dropout;
  readonly geometry: PrefixGeometry;
  #indices: RepeatIndexCache;

  constructor(
    g: ModelGeometry,
    readonly latentDim: number,
    opts: PrefixOptions = {},
  ) {
    super();
    const pg = (this.geometry = prefixGeometry(g, opts.numPrefixTokens ?? 2));
    const A = pg.numPositions;
    const h = opts.hidden ?? 768;
    const init = { rng: opts.rng ?? new Rng(0), dtype: opts.dtype };
    this.norm = new StackedLayerNorm(A, latentDim, opts.eps ?? 1e-5, { dtype: opts.dtype });
    this.fc1 = new StackedLinear(A, latentDim, h, init);
    this.fc2 = new StackedLinear(A, h, pg.kvDim, init);
    this.skip = pg.kvDim === latentDim ? null : new StackedLinear(A, latentDim, pg.kvDim, init);
    this.dropout = new Dropout(opts.dropout ?? 0);
    this.#indices = new RepeatIndexCache(A);
  }

  /** z (B, T, d) -> prefix keys/values for every layer. */
  forward(z: Tensor): Modulation {
    checkLatent("PrefixModulation", z, this.latentDim);
    const x = indexSelect(permute(z, [1, 0, 2]), this.#indices.get(z.dim(1))); // (A, B, d)
    const f = this.dropout.forward(
      this.fc2.forward(this.dropout.forward(gelu(this.fc1.forward(this.norm.forward(x))))),
    );
    const y = add(this.skip ? this.skip.forward(x) : x, f); // (A, B, kvDim)
    return { prefix: positionsToLayerKV(y, this.geometry) };
  }

  override dispose(): void {
    this.#indices.dispose();
    super.dispose();
  }
}

/** "prefix-shared": one FFN for every position plus a learned position embedding (see the module comment). */
export class SharedPrefixModulation extends Module implements ModulationGenerator {
  pos: Tensor; // (A, d)
  norm: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  skip: Linear | null;
  dropout: Dropout;
  readonly geometry: PrefixGeometry;
  #indices: RepeatIndexCache;

  constructor(
    g: ModelGeometry,
    readonly latentDim: number,
    opts: PrefixOptions & { posStd?: number } = {},
  ) {
    super();
    const pg = (this.geometry = prefixGeometry(g, opts.numPrefixTokens ?? 2));
    const A = pg.numPositions;
    const h = opts.hidden ?? 768;
    const rng = opts.rng ?? new Rng(0);
    this.pos = this.param(randn([A, latentDim], { rng, std: opts.posStd ?? 0.02 }));
    this.norm = new LayerNorm(latentDim, opts.eps ?? 1e-5);
    this.fc1 = new Linear(latentDim, h, { rng });
    this.fc2 = new Linear(h, pg.kvDim, { rng });
    this.skip = pg.kvDim === latentDim ? null : new Linear(latentDim, pg.kvDim, { rng });
    this.dropout = new Dropout(opts.dropout ?? 0);
    this.#indices = new RepeatIndexCache(A);
    if (opts.dtype && opts.dtype !== "float32") castParameters(this, opts.dtype);
  }

  /** z (B, T, d) -> prefix keys/values for every layer. */
  forward(z: Tensor): Modulation {
    checkLatent("SharedPrefixModulation", z, this.latentDim);
    const A = this.geometry.numPositions;
    const rep = indexSelect(permute(z, [1, 0, 2]), this.#indices.get(z.dim(1))); // (A, B, d)
    const x = add(rep, reshape(this.pos, [A, 1, this.latentDim])); // (A, B, d)
    const f = this.dropout.forward(
      this.fc2.forward(this.dropout.forward(gelu(this.fc1.forward(this.norm.forward(x))))),
    );
    const y = add(this.skip ? this.skip.forward(x) : x, f); // (A, B, kvDim)
    return { prefix: positionsToLayerKV(y, this.geometry) };
  }

  override dispose(): void {
    this.#indices.dispose();
    super.dispose();
  }
}
