/**
 * Plain double-precision reference implementations of attention and rotary embedding: per-head loops with an
 * explicit mask, slow and obvious on purpose. Layouts as the ops: q/out (B, T, NH, HS), k/v (B, S, NKV, HS),
 * pastK/pastV (B, P, NKV, HS) placed before k/v, keyMask (B, P + S), bias (NH, T, P + S) shared by the batch or
 * (B, NH, T, P + S) (biasBatched), added to the scaled scores. Optional dropout on the probabilities: probability
 * (b, h, t, j) is kept iff refDropoutKeep(seed, p)(((b·NH + h)·T + t)·(P + S) + j), kept ones scaled by 1/(1 − p).
 */
import { refDropoutKeep } from "./dropout.js";

export type Arr = ArrayLike<number>;

export interface RefAttentionArgs {
  q: Arr;
  k: Arr;
  v: Arr;
  pastK?: Arr;
  pastV?: Arr;
  keyMask?: Arr;
  /** Additive score bias: (NH, T, P + S), or (B, NH, T, P + S) when biasBatched. */
  bias?: Arr;
  biasBatched?: boolean;
  B: number;
  T: number;
  S: number;
  P: number;
  NH: number;
  NKV: number;
  HS: number;
  causal: boolean;
  scale: number;
  /** Dropout on the attention probabilities (p in [0, 1)). */
  dropout?: { p: number; seed: number };
}

/** Element of the concatenated keys (or values) [past; new] at (b, j, g, e). */
function kvAt(
  a: RefAttentionArgs,
  past: Arr | undefined,
  cur: Arr,
  b: number,
  j: number,
  g: number,
  e: number,
): number {
  const { S, P, NKV, HS } = a;
  return j < P ? past![((b * P + j) * NKV + g) * HS + e]! : cur[((b * S + (j - P)) * NKV + g) * HS + e]!;
}

/** allowed[b][t][j]: may query t of batch b attend key j? */
export function refAttentionMask(a: RefAttentionArgs): boolean[][][] {
  const { B, T, S, P, causal, keyMask } = a;
  const Stot = P + S;
  const m: boolean[][][] = [];
  for (let b = 0; b < B; b++) {
    const mb: boolean[][] = [];
    for (let t = 0; t < T; t++) {
      const row: boolean[] = [];
      for (let j = 0; j < Stot; j++) {
        let ok = true;
        if (causal && j > t + (Stot - T)) ok = false;
        if (keyMask && keyMask[b * Stot + j] === 0) ok = false;
        row.push(ok);
      }
      mb.push(row);
    }
    m.push(mb);
  }
  return m;
}

/** Index of bias[b, h, t, j] (b ignored for a bias shared by the batch). */
export function refBiasIndex(a: RefAttentionArgs, b: number, h: number, t: number, j: number): number {
  const Stot = a.P + a.S;
  return (((a.biasBatched ? b * a.NH : 0) + h) * a.T + t) * Stot + j;
}

/** Softmax probabilities probs[b][h][t][j] (all zero for a row with no allowed key). */
export function refAttentionProbs(a: RefAttentionArgs): number[][][][] {
  const { B, T, S, P, NH, NKV, HS, scale, q } = a;
  const Stot = P + S;
  const group = NH / NKV;
  const mask = refAttentionMask(a);
  const probs: number[][][][] = [];
  for (let b = 0; b < B; b++) {
    const pb: number[][][] = [];
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / group);
      const ph: number[][] = [];
      for (let t = 0; t < T; t++) {
        const s: number[] = [];
        let max = -Infinity;
        for (let j = 0; j < Stot; j++) {
          let dotv = 0;
          for (let e = 0; e < HS; e++) dotv += q[((b * T + t) * NH + h) * HS + e]! * kvAt(a, a.pastK, a.k, b, j, g, e);
          const sc = dotv * scale + (a.bias ? a.bias[refBiasIndex(a, b, h, t, j)]! : 0);
          s.push(sc);
          if (mask[b]![t]![j]) max = Math.max(max, sc);
        }
        let sum = 0;
        const p = s.map((x, j) => (mask[b]![t]![j] ? Math.exp(x - max) : 0));
        for (const x of p) sum += x;
        ph.push(p.map((x) => (sum > 0 ? x / sum : 0)));
      }
      pb.push(ph);
    }
    probs.push(pb);
  }
  return probs;
}

/** factor[b][h][t][j]: what dropout multiplies probability (b, h, t, j) by (keep/(1 − p); all 1 without). */
export function refDropoutFactors(a: RefAttentionArgs): number[][][][] {
  const keep = a.dropout ? refDropoutKeep(a.dropout.seed, a.dropout.p) : () => true;
  const scale = a.dropout ? 1 / (1 - a.dropout.p) : 1;
  const Stot = a.P + a.S;
  const f: number[][][][] = [];
  for (let b = 0; b < a.B; b++) {
    const fb: number[][][] = [];
    for (let h = 0; h < a.NH; h++) {
      const fh: number[][] = [];
      for (let t = 0; t < a.T; t++) {
        const row: number[] = [];
        for (let j = 0; j < Stot; j++) row.push(keep(((b * a.NH + h) * a.T + t) * Stot + j) ? scale : 0);
        fh.push(row);
      }
      fb.push(fh);
    }
    f.push(fb);
  }
  return f;
}

/** The probabilities after dropout (the ones that multiply the values). */
export function refDroppedProbs(a: RefAttentionArgs, probs: number[][][][]): number[][][][] {
  const f = refDropoutFactors(a);
  return probs.map((pb, b) => pb.map((ph, h) => ph.map((row, t) => row.map((x, j) => x * f[b]![h]![t]![j]!))));
}

/** out (B, T, NH, HS). */
export function refAttention(a: RefAttentionArgs): Float64Array {
  const { B, T, S, P, NH, NKV, HS } = a;
  const Stot = P + S;
  const group = NH / NKV;
  const probs = refDroppedProbs(a, refAttentionProbs(a));
  const out = new Float64Array(B * T * NH * HS);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let t = 0; t < T; t++)
        for (let e = 0; e < HS; e++) {
          let s = 0;
          for (let j = 0; j < Stot; j++)
            s += probs[b]![h]![t]![j]! * kvAt(a, a.pastV, a.v, b, j, Math.floor(h / group), e);
          out[((b * T + t) * NH + h) * HS + e] = s;
        }
  return out;
}

/**
 * Gradients of sum(out ⊙ dout) with respect to q, k, v, pastK, pastV (the last two empty when P = 0) and the bias
 * (empty without one; summed over the batch for a shared bias).
 */
export function refAttentionBackward(
  a: RefAttentionArgs,
  dout: Arr,
): {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  dpastK: Float64Array;
  dpastV: Float64Array;
  dbias: Float64Array;
} {
  const { B, T, S, P, NH, NKV, HS, scale, q } = a;
  const Stot = P + S;
  const group = NH / NKV;
  const probs = refAttentionProbs(a);
  const factors = refDropoutFactors(a);
  const dropped = refDroppedProbs(a, probs);
  const dq = new Float64Array(B * T * NH * HS);
  const dk = new Float64Array(B * S * NKV * HS);
  const dv = new Float64Array(B * S * NKV * HS);
  const dpastK = new Float64Array(B * P * NKV * HS);
  const dpastV = new Float64Array(B * P * NKV * HS);
  const dbias = new Float64Array(a.bias ? (a.biasBatched ? B : 1) * NH * T * Stot : 0);
  const kvIndex = (b: number, j: number, g: number, e: number): [Float64Array, Float64Array, number] =>
    j < P ? [dpastK, dpastV, ((b * P + j) * NKV + g) * HS + e] : [dk, dv, ((b * S + j - P) * NKV + g) * HS + e];
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const p = probs[b]![h]![t]!;
        const pd = dropped[b]![h]![t]!; // p ⊙ factor: what multiplied the values
        const f = factors[b]![h]![t]!;
        const qo = ((b * T + t) * NH + h) * HS;
        // dP[j] = factor_j · (dout · v_j); dS[j] = p_j (dP[j] − Σ_i p_i dP[i])
        const dP = new Float64Array(Stot);
        for (let j = 0; j < Stot; j++) {
          for (let e = 0; e < HS; e++) dP[j] = dP[j]! + dout[qo + e]! * kvAt(a, a.pastV, a.v, b, j, g, e);
          dP[j] = dP[j]! * f[j]!;
        }
        let inner = 0;
        for (let j = 0; j < Stot; j++) inner += p[j]! * dP[j]!;
        for (let j = 0; j < Stot; j++) {
          const dS = p[j]! * (dP[j]! - inner);
          if (a.bias) {
            const bi = refBiasIndex(a, b, h, t, j);
            dbias[bi] = dbias[bi]! + dS;
          }
          for (let e = 0; e < HS; e++) {
            const [gk, gv, at] = kvIndex(b, j, g, e);
            gv[at] = gv[at]! + pd[j]! * dout[qo + e]!;
            gk[at] = gk[at]! + scale * dS * q[qo + e]!;
            dq[qo + e] = dq[qo + e]! + scale * dS * kvAt(a, a.pastK, a.k, b, j, g, e);
          }
        }
      }
    }
  return { dq, dk, dv, dpastK, dpastV, dbias };
}

/**
 * Rotary embedding of x (B, T, NH, HS), HF rotate_half convention on the first `rotaryDim` entries of each head.
 * Angles as Hugging Face computes them in float32: invFreq[i] = f32(1 / f32(theta^f32(2i / rd))), angle =
 * f32(pos · invFreq[i]). `sign` −1 rotates backwards (the gradient).
 */
export function refRope(
  x: Arr,
  B: number,
  T: number,
  NH: number,
  HS: number,
  opts: { positions?: Arr; positionOffset?: number; theta?: number; rotaryDim?: number; sign?: number } = {},
): Float64Array {
  const rd = opts.rotaryDim ?? HS;
  const theta = opts.theta ?? 10000;
  const half = rd / 2;
  const sign = opts.sign ?? 1;
  const out = Float64Array.from(x);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const pos = opts.positions ? opts.positions[b * T + t]! : (opts.positionOffset ?? 0) + t;
      for (let h = 0; h < NH; h++)
        for (let i = 0; i < half; i++) {
          const inv = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / rd))));
          const ang = Math.fround(pos * inv);
          const c = Math.cos(ang);
          const s = sign * Math.sin(ang);
          const o = ((b * T + t) * NH + h) * HS;
          const x1 = x[o + i]!;
          const x2 = x[o + i + half]!;
          out[o + i] = x1 * c - x2 * s;
          out[o + i + half] = x2 * c + x1 * s;
        }
    }
  return out;
}
