/**
 * Scaled dot-product attention in the "BTHD" layout (what a linear layer produces; no permutes):
 *   attention(q, k, v, opts): q (B, T, NH, HS), k and v (B, S, NKV, HS) -> out (B, T, NH, HS)
 *     out[b,t,h] = Σ_j softmax_j(scale · q[b,t,h] · key[b,j,g]) · value[b,j,g],  g = floor(h / (NH / NKV))
 *   opts.pastK / pastV (B, P, NKV, HS): prefix or cached keys/values placed before k/v (Stot = P + S keys).
 *   opts.causal: query t (0-based within q) may attend key j (0-based within the Stot keys) iff j <= t + (Stot − T).
 *   opts.keyMask (B, Stot): nonzero = attend, 0 = masked (padding); float32, float64, uint8 or int32.
 *   opts.scale: default 1/sqrt(HS).
 *   opts.bias (NH, T, Stot) or (B, NH, T, Stot): added to the scaled scores before the mask and the softmax
 *     (T5's relative position bias; the 3-D form is shared by the batch, and its gradient sums over the batch).
 *     out[b,t,h] = Σ_j softmax_j(scale · q·key_j + bias[b,h,t,j]) · value_j. Differentiable.
 *   opts.dropout {p, seed}: dropout on the probabilities (Hugging Face's attn_pdrop / attention_dropout, training
 *     only): probability (b, h, t, j) is kept iff keep(seed, ((b·NH + h)·T + t)·Stot + j), the counter-based mask of
 *     the dropout op (native/kernels/dropout_mask.h), and kept ones are scaled by 1/(1 − p). The mask is recomputed
 *     in backward, not stored. p = 0 (or no option) runs exactly the path without dropout. Callers take a fresh
 *     seed per call (Dropout's counter: nn/layers.ts nextDropoutSeed).
 * A query row with no allowed key gives 0 output and zero gradient.
 *
 * Backward (native attentionBackward) recomputes the probabilities from the saved row log-sum-exp (B, NH, T),
 * so memory stays O(B·NH·T) instead of O(B·NH·T·Stot); only the gradients an input needs are computed (a frozen
 * LM back-propagating into MAC prefixes asks for dPastK/dPastV and dq only).
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { needsRecord, record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { isFloat } from "../dtype.js";
import { native } from "../native.js";
import { Tensor } from "../tensor.js";

/** Dims of one attention call (see the module comment). */
export interface AttentionArgs {
  B: number;
  T: number;
  S: number;
  P: number;
  NH: number;
  NKV: number;
  HS: number;
  causal: boolean;
  scale: number;
  /** Dropout probability on the attention probabilities (absent or 0: none) and its mask seed. */
  dropP?: number;
  seed?: number;
}

/** Gradient outputs of attentionBackward; null: not needed. */
export interface AttentionGrads {
  dq: Tensor | null;
  dk: Tensor | null;
  dv: Tensor | null;
  dPastK: Tensor | null;
  dPastV: Tensor | null;
  /** Laid out like the bias; needs the bias. */
  dBias?: Tensor | null;
}

declare module "../backend.js" {
  interface Kernels {
    /** out = attention; lse (B, NH, T), when given, receives each row's log-sum-exp for backward. */
    attentionForward(
      out: Tensor,
      lse: Tensor | null,
      q: Tensor,
      k: Tensor,
      v: Tensor,
      pastK: Tensor | null,
      pastV: Tensor | null,
      keyMask: Tensor | null,
      args: AttentionArgs,
      bias?: Tensor | null,
    ): void;
    /** Fills the non-null gradients of `grads` from dout and the forward's inputs and lse. */
    attentionBackward(
      grads: AttentionGrads,
      dout: Tensor,
      q: Tensor,
      k: Tensor,
      v: Tensor,
      pastK: Tensor | null,
      pastV: Tensor | null,
      lse: Tensor,
      keyMask: Tensor | null,
      args: AttentionArgs,
      bias?: Tensor | null,
    ): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    attentionForward(
      out: unknown,
      lse: unknown,
      q: unknown,
      k: unknown,
      v: unknown,
      pastK: unknown,
      pastV: unknown,
      mask: unknown,
      B: number,
      T: number,
      S: number,
      P: number,
      NH: number,
      NKV: number,
      HS: number,
      causal: boolean,
      scale: number,
      bias?: unknown,
      biasBatched?: boolean,
      dropP?: number,
      seed?: number,
    ): void;
    attentionBackward(
      dq: unknown,
      dk: unknown,
      dv: unknown,
      dPastK: unknown,
      dPastV: unknown,
      dout: unknown,
      q: unknown,
      k: unknown,
      v: unknown,
      pastK: unknown,
      pastV: unknown,
      lse: unknown,
      mask: unknown,
      B: number,
      T: number,
      S: number,
      P: number,
      NH: number,
      NKV: number,
      HS: number,
      causal: boolean,
      scale: number,
      bias?: unknown,
      dBias?: unknown,
      biasBatched?: boolean,
      dropP?: number,
      seed?: number,
    ): void;
  }
}

registerKernels("cpu", {
  attentionForward(out, lse, q, k, v, pastK, pastV, keyMask, a, bias) {
    native.attentionForward(
      out.data,
      lse?.data ?? null,
      q.data,
      k.data,
      v.data,
      pastK?.data ?? null,
      pastV?.data ?? null,
      keyMask?.data ?? null,
      a.B,
      a.T,
      a.S,
      a.P,
      a.NH,
      a.NKV,
      a.HS,
      a.causal,
      a.scale,
      bias?.data ?? null,
      bias?.ndim === 4,
      a.dropP ?? 0,
      a.seed ?? 0,
    );
  },
  attentionBackward(g, dout, q, k, v, pastK, pastV, lse, keyMask, a, bias) {
    native.attentionBackward(
      g.dq?.data ?? null,
      g.dk?.data ?? null,
      g.dv?.data ?? null,
      g.dPastK?.data ?? null,
      g.dPastV?.data ?? null,
      dout.data,
      q.data,
      k.data,
      v.data,
      pastK?.data ?? null,
      pastV?.data ?? null,
      lse.data,
      keyMask?.data ?? null,
      a.B,
      a.T,
      a.S,
      a.P,
      a.NH,
      a.NKV,
      a.HS,
      a.causal,
      a.scale,
      bias?.data ?? null,
      g.dBias?.data ?? null,
      bias?.ndim === 4,
      a.dropP ?? 0,
      a.seed ?? 0,
    );
  },
});

export interface AttentionOptions {
  /** Each query sees only keys up to its own position (queries are the last T of the Stot positions). */
  causal?: boolean;
  /** (B, P + S): 1 = attend, 0 = masked. */
  keyMask?: Tensor | null;
  /** (B, P, NKV, HS) keys placed before k (prefix / cache); needs pastV too. */
  pastK?: Tensor | null;
  /** (B, P, NKV, HS) values placed before v. */
  pastV?: Tensor | null;
  /** Score scale; default 1/sqrt(HS). */
  scale?: number;
  /** (NH, T, P + S) shared by the batch, or (B, NH, T, P + S): added to the scaled scores (T5 position bias). */
  bias?: Tensor | null;
  /** Dropout on the attention probabilities: p in [0, 1), seed any safe integer (same seed, same mask). */
  dropout?: { p: number; seed: number } | null;
}

const OP = "attention";

function checkArgs(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): AttentionArgs {
  const shapes = (): string =>
    `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}` +
    (opts.pastK ? `, pastK ${fmtShape(opts.pastK.shape)}` : "") +
    (opts.pastV ? `, pastV ${fmtShape(opts.pastV.shape)}` : "") +
    (opts.bias ? `, bias ${fmtShape(opts.bias.shape)}` : "");
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4)
    throw new ShapeError(OP, `q must be (B, T, NH, HS) and k, v (B, S, NKV, HS); got ${shapes()}`);
  const [B, T, NH, HS] = q.shape as [number, number, number, number];
  const [Bk, S, NKV, HSk] = k.shape as [number, number, number, number];
  if (!k.shape.every((d, i) => d === v.shape[i])) throw new ShapeError(OP, `k and v shapes differ: ${shapes()}`);
  if (Bk !== B) throw new ShapeError(OP, `batch sizes differ: ${shapes()}`);
  if (HSk !== HS) throw new ShapeError(OP, `head sizes differ: ${shapes()}`);
  if (NKV === 0 || NH % NKV !== 0)
    throw new ShapeError(OP, `query heads (${NH}) must be a multiple of key/value heads (${NKV}): ${shapes()}`);
  for (const [name, t] of [
    ["k", k],
    ["v", v],
    ["pastK", opts.pastK],
    ["pastV", opts.pastV],
    ["bias", opts.bias],
  ] as const) {
    if (!t) continue;
    if (t.dtype !== q.dtype) throw new ShapeError(OP, `dtype mismatch: q is ${q.dtype}, ${name} is ${t.dtype}`);
    if (t.device !== q.device) throw new ShapeError(OP, `device mismatch: q is on ${q.device}, ${name} on ${t.device}`);
  }
  if (!isFloat(q.dtype)) throw new ShapeError(OP, `expected float32 or float64 tensors, got ${q.dtype}`);
  let P = 0;
  const { pastK, pastV } = opts;
  if (!pastK !== !pastV) throw new ShapeError(OP, `pastK and pastV must be given together: ${shapes()}`);
  if (pastK && pastV) {
    if (pastK.ndim !== 4 || !pastK.shape.every((d, i) => d === pastV.shape[i]))
      throw new ShapeError(OP, `pastK and pastV must both be (B, P, NKV, HS): ${shapes()}`);
    P = pastK.dim(1);
    if (pastK.dim(0) !== B || pastK.dim(2) !== NKV || pastK.dim(3) !== HS)
      throw new ShapeError(OP, `pastK/pastV must be (B, P, NKV, HS) = (${B}, P, ${NKV}, ${HS}): ${shapes()}`);
  }
  const m = opts.keyMask;
  if (m) {
    if (m.ndim !== 2 || m.dim(0) !== B || m.dim(1) !== P + S)
      throw new ShapeError(OP, `keyMask ${fmtShape(m.shape)} must be (B, P + S) = (${B}, ${P + S}) for ${shapes()}`);
    if (m.device !== q.device) throw new ShapeError(OP, `device mismatch: q is on ${q.device}, keyMask on ${m.device}`);
  }
  const bias = opts.bias;
  if (bias) {
    const want = [NH, T, P + S];
    const ok =
      (bias.ndim === 3 && bias.shape.every((d, i) => d === want[i])) ||
      (bias.ndim === 4 && bias.dim(0) === B && bias.shape.slice(1).every((d, i) => d === want[i]));
    if (!ok)
      throw new ShapeError(
        OP,
        `bias must be (NH, T, P + S) = (${want.join(", ")}) or (B, NH, T, P + S) = (${B}, ${want.join(", ")}); got ${shapes()}`,
      );
  }
  const scale = opts.scale ?? 1 / Math.sqrt(HS);
  if (!Number.isFinite(scale))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${OP}: scale must be a finite number, got ${scale}`);
  const args: AttentionArgs = { B, T, S, P, NH, NKV, HS, causal: opts.causal ?? false, scale };
  const drop = opts.dropout;
  if (drop) {
    if (!(drop.p >= 0 && drop.p < 1))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${OP}: dropout p must be in [0, 1), got ${drop.p}`);
    if (!Number.isSafeInteger(drop.seed))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${OP}: dropout seed must be a safe integer, got ${drop.seed}`);
    if (drop.p > 0) {
      args.dropP = drop.p;
      args.seed = drop.seed;
    }
  }
  return args;
}

/** Scaled dot-product attention (see the module comment); differentiable in q, k, v, pastK, pastV and bias. */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const a = checkArgs(q, k, v, opts);
  const pastK = opts.pastK ?? null;
  const pastV = opts.pastV ?? null;
  const keyMask = opts.keyMask ?? null;
  const bias = opts.bias ?? null;
  const inputs = pastK && pastV ? [q, k, v, pastK, pastV] : [q, k, v];
  if (bias) inputs.push(bias);
  const grad = needsRecord(inputs);
  const out = Tensor.uninit(q.shape, q.dtype, q.device);
  const lse = grad ? Tensor.uninit([a.B, a.NH, a.T], q.dtype, q.device) : null;
  kernels(q.device).attentionForward(out, lse, q, k, v, pastK, pastV, keyMask, a, bias);
  if (!lse) return out;
  return record(out, OP, inputs, (g, needs) => {
    const make = (i: number, like: Tensor | null): Tensor | null =>
      needs[i] && like ? Tensor.uninit(like.shape, like.dtype, like.device) : null;
    const biasAt = inputs.length - 1;
    const grads: AttentionGrads = {
      dq: make(0, q),
      dk: make(1, k),
      dv: make(2, v),
      dPastK: pastK ? make(3, pastK) : null,
      dPastV: pastV ? make(4, pastV) : null,
      dBias: bias ? make(biasAt, bias) : null,
    };
    kernels(q.device).attentionBackward(grads, g, q, k, v, pastK, pastV, lse, keyMask, a, bias);
    const all = [grads.dq, grads.dk, grads.dv, ...(pastK ? [grads.dPastK, grads.dPastV] : [])];
    if (bias) all.push(grads.dBias ?? null);
    return all;
  });
}
