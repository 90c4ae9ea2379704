/**
 * Latent z (B, T, d) → per-example LoRA updates of a frozen LM's attention projections (the paper's LoRA
 * ablation; the release has no code for it, so this mapping is ours).
 *
 * For the LM's geometry (L layers, C hidden, NH/NKV heads of size HS) each target role has
 *   q: in C, out NH·HS     k, v: in C, out NKV·HS     o: in NH·HS, out C
 * and each layer gets, per target, A (B, r, in) and B (B, out, r), applied by the model as
 *   y = x·Wᵀ + b + (alpha / r)·(x·Aᵀ)·Bᵀ        (models/lora.ts; PEFT's scaling).
 *
 * Mapping. Every rank-1 component is one position: K = |targets|·L·r positions, position
 * k = (t·L + l)·r + i for target t (in the order given), layer l, component i. Then, as for the prefix:
 *   1. the T latent tokens are spread over the K positions by the reference's repeat rule (repeat.ts), and a
 *      learned position embedding pos (K, d), N(0, 0.02²), is added: x_k = z_tok(k) + pos_k;
 *   2. one shared trunk h_k = Dropout(GELU(fc(LN(x_k)))), fc: d → hidden (default 768);
 *   3. per target role, two linear read-outs of h_k: row i of layer l's A is to_a[t](h_k) (in values), column i
 *      of its B is to_b[t](h_k) (out values).
 * to_b's weight and bias start at zero, so B = 0 and every delta is exactly zero at the start (PEFT's B = 0):
 * the modulated LM starts as the base LM, to_b gets gradients at once, the rest once B moves away from 0.
 * Parameters: d·hidden + K·d + Σ_targets hidden·(in + out) (+ biases), e.g. 3.0 M for distilgpt2 (d = 768), r = 8, q and v.
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
  slice,
  split,
  untrack,
} from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import type { LayerLora, LoraTarget, ModelGeometry, Modulation } from "../../models/types.js";
import { castParameters } from "../heads.js";
import type { ModulationGenerator } from "./prefix.js";
import { repeatIndexTensor } from "./repeat.js";

export interface LoraModulationOptions {
  /** Rank r (default 8, PEFT's default). */
  rank?: number;
  /** Scaling numerator: scaling = alpha / r (default 8, PEFT's default). */
  alpha?: number;
  /** Projections to update (default q and v, as PEFT's defaults for attention). */
  targets?: readonly LoraTarget[];
  /** Trunk hidden size (default 768). */
  hidden?: number;
  dropout?: number;
  eps?: number;
  posStd?: number;
  rng?: Rng;
  dtype?: FloatDType;
}

/** (in, out) features of a projection role in an LM of geometry g. */
export function loraFeatures(g: ModelGeometry, role: LoraTarget): { in: number; out: number } {
  const q = g.numHeads * g.headDim;
  const kv = g.numKvHeads * g.headDim;
  switch (role) {
    case "q":
      return { in: g.hiddenSize, out: q };
    case "k":
    case "v":
      return { in: g.hiddenSize, out: kv };
    case "o":
      return { in: q, out: g.hiddenSize };
  }
}

export class LoraModulation extends Module implements ModulationGenerator {
  pos: Tensor; // (K, d)
  norm: LayerNorm;
  fc: Linear;
  to_a: Linear[]; // per target: hidden -> in
  to_b: Linear[]; // per target: hidden -> out (zero-initialised)
  dropout: Dropout;
  readonly rank: number;
  readonly scaling: number;
  readonly targets: readonly LoraTarget[];
  readonly numLayers: number;
  readonly numPositions: number;
  #indices = new Map<number, Tensor>();

  constructor(
    readonly geometry: ModelGeometry,
    readonly latentDim: number,
    opts: LoraModulationOptions = {},
  ) {
    super();
    this.rank = opts.rank ?? 8;
    this.targets = [...(opts.targets ?? ["q", "v"])];
    if (!Number.isInteger(this.rank) || this.rank < 1)
      throw new ShapeError("LoraModulation", `rank must be a positive integer, got ${this.rank}`);
    if (this.targets.length === 0 || new Set(this.targets).size !== this.targets.length)
      throw new ShapeError(
        "LoraModulation",
        `targets must be distinct and non-empty, got [${this.targets.join(", ")}]`,
      );
    this.scaling = (opts.alpha ?? 8) / this.rank;
    this.numLayers = geometry.numLayers;
    this.numPositions = this.targets.length * this.numLayers * this.rank;
    const hidden = opts.hidden ?? 768;
    const rng = opts.rng ?? new Rng(0);
    this.pos = this.param(randn([this.numPositions, latentDim], { rng, std: opts.posStd ?? 0.02 }));
    this.norm = new LayerNorm(latentDim, opts.eps ?? 1e-5);
    this.fc = new Linear(latentDim, hidden, { rng });
    this.to_a = this.targets.map((t) => new Linear(hidden, loraFeatures(geometry, t).in, { rng }));
    this.to_b = this.targets.map((t) => {
      const lin = new Linear(hidden, loraFeatures(geometry, t).out, { rng });
      lin.weight.data.fill(0);
      lin.bias!.data.fill(0);
      return lin;
    });
    this.dropout = new Dropout(opts.dropout ?? 0);
    if (opts.dtype && opts.dtype !== "float32") castParameters(this, opts.dtype);
  }

  private indices(numTokens: number): Tensor {
    let t = this.#indices.get(numTokens);
    if (!t) {
      t = untrack(repeatIndexTensor(numTokens, this.numPositions));
      this.#indices.set(numTokens, t);
    }
    return t;
  }

  /** z (B, T, d) -> per layer, per target: A (B, r, in), B (B, out, r), scaling alpha/r. */
  forward(z: Tensor): Modulation {
    if (z.ndim !== 3 || z.dim(2) !== this.latentDim || z.dim(1) < 1)
      throw new ShapeError(
        "LoraModulation",
        `latent ${fmtShape(z.shape)} must be (B, T, ${this.latentDim}) with T ≥ 1`,
      );
    const [B, L, r, K] = [z.dim(0), this.numLayers, this.rank, this.numPositions];
    const rep = indexSelect(permute(z, [1, 0, 2]), this.indices(z.dim(1))); // (K, B, d)
    const x = add(rep, reshape(this.pos, [K, 1, this.latentDim])); // (K, B, d)
    const h = this.dropout.forward(gelu(this.fc.forward(this.norm.forward(x)))); // (K, B, hidden)
    const layers: LayerLora[] = Array.from({ length: L }, () => ({}));
    this.targets.forEach((role, t) => {
      const ht = slice(h, 0, t * L * r, (t + 1) * L * r); // (L·r, B, hidden)
      const { in: nIn, out: nOut } = loraFeatures(this.geometry, role);
      const a = permute(reshape(this.to_a[t]!.forward(ht), [L, r, B, nIn]), [0, 2, 1, 3]); // (L, B, r, in)
      const b = permute(reshape(this.to_b[t]!.forward(ht), [L, r, B, nOut]), [0, 2, 3, 1]); // (L, B, out, r)
      const as = split(a, 1, 0);
      const bs = split(b, 1, 0);
      for (let l = 0; l < L; l++)
        layers[l]![role] = {
          a: reshape(as[l]!, [B, r, nIn]),
          b: reshape(bs[l]!, [B, nOut, r]),
          scaling: this.scaling,
        };
    });
    return { lora: layers };
  }

  override dispose(): void {
    for (const t of this.#indices.values()) t.dispose();
    this.#indices.clear();
    super.dispose();
  }
}
