/**
 * Plain float64 references for MAC's heads, aggregator and prefix FFNs, written token by token from the
 * reference's formulas (no batching, no stacking, no shared keys). Slow and obvious on purpose: the tests
 * compare the batched modules against them. Parameters are read by name from a module's state dict.
 */
import type { Tensor } from "../../tensor/index.js";
import { refGelu } from "../../tensor/reference/activation.js";

export type Vec = number[];
export type Params = ReadonlyMap<string, Tensor>;

function get(p: Params, name: string): ArrayLike<number> {
  const t = p.get(name);
  if (!t) throw new Error(`reference: no parameter ${name}`);
  return t.data;
}
const has = (p: Params, name: string): boolean => p.has(name);

/** LayerNorm of one vector with weight/bias taken at element offset `off` (stacked parameters). */
export function refLayerNormVec(x: Vec, w: ArrayLike<number>, b: ArrayLike<number> | null, eps = 1e-5, off = 0): Vec {
  const n = x.length;
  const mean = x.reduce((s, v) => s + v, 0) / n;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  const r = 1 / Math.sqrt(variance + eps);
  return x.map((v, j) => (v - mean) * r * w[off + j]! + (b ? b[off + j]! : 0));
}

/** W (out, in) at element offset wOff, bias at bOff: y = W·x + b. */
export function refLinearVec(
  x: Vec,
  W: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  out: number,
  wOff = 0,
  bOff = 0,
): Vec {
  const n = x.length;
  const y: Vec = [];
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[bOff + o]! : 0;
    for (let i = 0; i < n; i++) s += W[wOff + o * n + i]! * x[i]!;
    y.push(s);
  }
  return y;
}

const addVec = (a: Vec, b: Vec): Vec => a.map((v, i) => v + b[i]!);

/** One stacked Linear copy g: names `${prefix}.weight` (G, out, in) and `${prefix}.bias` (G, out). */
function stackedLinear(p: Params, prefix: string, g: number, x: Vec, out: number): Vec {
  const bias = has(p, `${prefix}.bias`) ? get(p, `${prefix}.bias`) : null;
  return refLinearVec(x, get(p, `${prefix}.weight`), bias, out, g * out * x.length, g * out);
}

/** SlotHeads: x (B, T, dIn) flat -> (B, T, d) flat. */
export function refSlotHeads(p: Params, x: ArrayLike<number>, B: number, T: number, dIn: number, d: number): Vec {
  const y: Vec = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++) {
      const xi = Array.from(x).slice((b * T + i) * dIn, (b * T + i + 1) * dIn);
      const n = refLayerNormVec(xi, get(p, "norm.weight"), get(p, "norm.bias"), 1e-5, i * dIn);
      const h = stackedLinear(p, "fc1", i, n, d).map(Math.tanh);
      const f = stackedLinear(p, "fc2", i, h, d);
      const s = has(p, "skip.weight") ? stackedLinear(p, "skip", i, xi, d) : xi;
      y.push(...addVec(s, f));
    }
  return y;
}

function linearByName(p: Params, name: string, x: Vec, out: number): Vec {
  return refLinearVec(x, get(p, `${name}.weight`), has(p, `${name}.bias`) ? get(p, `${name}.bias`) : null, out);
}

/**
 * The aggregator for one question: q (T, d) token vectors, memory tokens (S, d) (all entries flattened) ->
 * (T, d). `numBlocks` blocks named cross_attention_list.{i}.
 */
export function refAggregate(
  p: Params,
  q: Vec[],
  mem: Vec[],
  numBlocks: number,
  NH: number,
  HS: number,
  ffnHidden: number,
): Vec[] {
  const d = q[0]!.length;
  const inner = NH * HS;
  let x = q.map((v) => [...v]);
  for (let blk = 0; blk < numBlocks; blk++) {
    const pre = `cross_attention_list.${blk}`;
    const ln = (name: string, v: Vec): Vec =>
      refLayerNormVec(v, get(p, `${pre}.${name}.weight`), get(p, `${pre}.${name}.bias`));
    const ctx = mem.map((m) => ln("norm_context", m));
    const keys = ctx.map((c) => linearByName(p, `${pre}.attn.to_k`, c, inner));
    const vals = ctx.map((c) => linearByName(p, `${pre}.attn.to_v`, c, inner));
    x = x.map((xt) => {
      const qt = linearByName(p, `${pre}.attn.to_q`, ln("norm1", xt), inner);
      const o: Vec = new Array<number>(inner).fill(0);
      for (let h = 0; h < NH; h++) {
        const s = keys.map((k) => {
          let dot = 0;
          for (let e = 0; e < HS; e++) dot += qt[h * HS + e]! * k[h * HS + e]!;
          return dot / Math.sqrt(HS);
        });
        const mx = Math.max(...s);
        const w = s.map((v) => Math.exp(v - mx));
        const z = w.reduce((a, b) => a + b, 0);
        vals.forEach((v, j) => {
          for (let e = 0; e < HS; e++) o[h * HS + e]! += (w[j]! / z) * v[h * HS + e]!;
        });
      }
      const h1 = addVec(xt, linearByName(p, `${pre}.attn.to_out`, o, d));
      const f = linearByName(p, `${pre}.mlp.fc1`, ln("norm2", h1), ffnHidden).map((v) => refGelu(v, "none"));
      return addVec(h1, linearByName(p, `${pre}.mlp.fc2`, f, d));
    });
  }
  return x;
}

/** The per-position prefix FFN of position a on x (d): skip(x) + fc2_a(GELU(fc1_a(LN_a(x)))). */
export function refPrefixPosition(p: Params, a: number, x: Vec, hidden: number, kvDim: number): Vec {
  const d = x.length;
  const n = refLayerNormVec(x, get(p, "norm.weight"), get(p, "norm.bias"), 1e-5, a * d);
  const h = stackedLinear(p, "fc1", a, n, hidden).map((v) => refGelu(v, "none"));
  const f = stackedLinear(p, "fc2", a, h, kvDim);
  return addVec(has(p, "skip.weight") ? stackedLinear(p, "skip", a, x, kvDim) : x, f);
}
