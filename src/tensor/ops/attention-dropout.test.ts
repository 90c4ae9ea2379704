/**
 * Dropout on the attention probabilities (attention(..., {dropout: {p, seed}})): against the float64 reference with
 * the same counter-based mask (forward and backward, float32 and float64), finite differences in float64 at a fixed
 * seed, the kept fraction, p = 0 exactly the path without dropout, and the argument errors.
 */
import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { MacLmError } from "../../errors.js";
import { type DType, Tensor, attention, grad, scope } from "../index.js";
import { randn } from "../random.js";
import { type RefAttentionArgs, refAttention, refAttentionBackward } from "../reference/attention.js";

interface Case {
  name: string;
  B: number;
  T: number;
  S: number;
  P: number;
  NH: number;
  NKV: number;
  HS: number;
  causal: boolean;
  mask?: (b: number, j: number) => number;
  /** 3: a (NH, T, Stot) bias shared by the batch (T5); 4: (B, NH, T, Stot). */
  biasDims?: 3 | 4;
}

const cases: Case[] = [
  { name: "non-causal", B: 2, T: 5, S: 7, P: 0, NH: 3, NKV: 3, HS: 4, causal: false },
  {
    name: "causal with past, GQA and a key mask with a fully masked row",
    B: 2,
    T: 4,
    S: 4,
    P: 2,
    NH: 4,
    NKV: 2,
    HS: 5,
    causal: true,
    mask: (b, j) => (b === 1 && (j === 0 || j === 1 || j === 2) ? 0 : 1),
  },
  { name: "decode step (T = 1) with past", B: 2, T: 1, S: 1, P: 6, NH: 2, NKV: 1, HS: 8, causal: true },
  { name: "shared bias (T5), non-causal", B: 2, T: 3, S: 4, P: 0, NH: 2, NKV: 2, HS: 4, causal: false, biasDims: 3 },
  // Odd sizes: head size 13 (vector tails), T = 70 > the 64-row query block, threaded over heads.
  { name: "odd sizes, several query blocks", B: 2, T: 70, S: 70, P: 5, NH: 2, NKV: 1, HS: 13, causal: true },
];

function inputs(c: Case, dtype: DType, seed: number) {
  const Stot = c.P + c.S;
  const q = randn([c.B, c.T, c.NH, c.HS], { seed, dtype });
  const k = randn([c.B, c.S, c.NKV, c.HS], { seed: seed + 1, dtype });
  const v = randn([c.B, c.S, c.NKV, c.HS], { seed: seed + 2, dtype });
  const pastK = c.P > 0 ? randn([c.B, c.P, c.NKV, c.HS], { seed: seed + 3, dtype }) : null;
  const pastV = c.P > 0 ? randn([c.B, c.P, c.NKV, c.HS], { seed: seed + 4, dtype }) : null;
  const bias = c.biasDims
    ? randn(c.biasDims === 3 ? [c.NH, c.T, Stot] : [c.B, c.NH, c.T, Stot], { seed: seed + 5, dtype })
    : null;
  let keyMask: Tensor | null = null;
  if (c.mask) {
    keyMask = Tensor.zeros([c.B, Stot], "float32");
    for (let b = 0; b < c.B; b++) for (let j = 0; j < Stot; j++) keyMask.data[b * Stot + j] = c.mask(b, j);
  }
  return { q, k, v, pastK, pastV, bias, keyMask };
}
type Inputs = ReturnType<typeof inputs>;

const refArgs = (c: Case, x: Inputs, dropout?: { p: number; seed: number }): RefAttentionArgs => ({
  q: x.q.data,
  k: x.k.data,
  v: x.v.data,
  pastK: x.pastK?.data,
  pastV: x.pastV?.data,
  keyMask: x.keyMask?.data,
  bias: x.bias?.data,
  biasBatched: c.biasDims === 4,
  B: c.B,
  T: c.T,
  S: c.S,
  P: c.P,
  NH: c.NH,
  NKV: c.NKV,
  HS: c.HS,
  causal: c.causal,
  scale: 1 / Math.sqrt(c.HS),
  ...(dropout ? { dropout } : {}),
});

const run = (c: Case, x: Inputs, dropout?: { p: number; seed: number } | null): Tensor =>
  attention(x.q, x.k, x.v, {
    causal: c.causal,
    pastK: x.pastK,
    pastV: x.pastV,
    keyMask: x.keyMask,
    bias: x.bias,
    dropout,
  });

/** The differentiable inputs of a case, in the order of the reference's gradients. */
const diffInputs = (x: Inputs): Tensor[] => [
  x.q,
  x.k,
  x.v,
  ...(x.pastK ? [x.pastK, x.pastV!] : []),
  ...(x.bias ? [x.bias] : []),
];

describe("attention dropout: forward", () => {
  for (const c of cases)
    it(`${c.name}: float32 and float64 match the float64 reference with the same mask`, () =>
      scope(() => {
        for (const [p, seed] of [
          [0.1, 3],
          [0.5, -7],
        ] as const)
          for (const dtype of ["float32", "float64"] as const) {
            const x = inputs(c, dtype, 1);
            const out = run(c, x, { p, seed });
            const want = refAttention(refArgs(c, x, { p, seed }));
            const tol = dtype === "float32" ? { rtol: 1e-4, atol: 1e-5 } : { rtol: 1e-11, atol: 1e-12 };
            expectClose(out.data, want, tol, `${c.name} p=${p} ${dtype}`);
            // Dropout changed the result (the mask is not trivially all-kept).
            const plain = refAttention(refArgs(c, x));
            expect(want.some((w, i) => Math.abs(w - plain[i]!) > 1e-6)).toBe(true);
          }
      }));

  it("the same seed gives the same output; another seed another one; p = 0 is exactly the path without dropout", () =>
    scope(() => {
      const c = cases[1]!;
      const x = inputs(c, "float32", 2);
      const a = run(c, x, { p: 0.3, seed: 11 }).data;
      expect(Array.from(run(c, x, { p: 0.3, seed: 11 }).data)).toEqual(Array.from(a));
      expect(Array.from(run(c, x, { p: 0.3, seed: 12 }).data)).not.toEqual(Array.from(a));
      const plain = Array.from(run(c, x).data);
      expect(Array.from(run(c, x, { p: 0, seed: 5 }).data)).toEqual(plain);
      expect(Array.from(run(c, x, null).data)).toEqual(plain);
    }));

  it("keeps a fraction 1 − p of the probabilities, scaled by 1/(1 − p), so the expected output is unchanged", () =>
    scope(() => {
      // One-hot values (HS = Stot, value j = e_j): out[b, t, h, :] is the dropped probability row.
      const B = 2;
      const T = 64;
      const S = 64;
      const NH = 4;
      const vals = Tensor.zeros([B, S, 1, S]);
      for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) vals.data[(b * S + j) * S + j] = 1;
      const q = randn([B, T, NH, S], { seed: 3 });
      const k = randn([B, S, 1, S], { seed: 4 });
      const plain = attention(q, k, vals).data;
      const n = plain.length;
      for (const p of [0.1, 0.5]) {
        const out = attention(q, k, vals, { dropout: { p, seed: 99 } }).data;
        let dropped = 0;
        let sum = 0;
        let plainSum = 0;
        for (let i = 0; i < n; i++) {
          if (out[i] === 0) dropped++;
          else expect(out[i]! / plain[i]!).toBeCloseTo(1 / (1 - p), 5);
          sum += out[i]!;
          plainSum += plain[i]!;
        }
        const sd = Math.sqrt((p * (1 - p)) / n);
        expect(Math.abs(dropped / n - p), `dropped fraction for p=${p}`).toBeLessThan(5 * sd);
        // Σ of each row is 1 without dropout; with it, the mean over B·T·NH rows stays 1 up to sampling noise.
        expect(plainSum / (B * T * NH)).toBeCloseTo(1, 5);
        expect(Math.abs(sum / (B * T * NH) - 1)).toBeLessThan(0.05);
      }
    }));
});

describe("attention dropout: backward", () => {
  for (const c of cases)
    it(`${c.name}: float32 and float64 gradients match the float64 reference backward`, () =>
      scope(() => {
        const drop = { p: 0.25, seed: 17 };
        for (const dtype of ["float32", "float64"] as const) {
          const x = inputs(c, dtype, 21);
          const ins = diffInputs(x);
          for (const t of ins) t.requireGrad();
          const out = run(c, x, drop);
          const dout = randn(out.shape, { seed: 22, dtype });
          const got = grad(out, ins, { gradOutput: dout });
          const ref = refAttentionBackward(refArgs(c, x, drop), dout.data);
          const want = [
            ref.dq,
            ref.dk,
            ref.dv,
            ...(x.pastK ? [ref.dpastK, ref.dpastV] : []),
            ...(x.bias ? [ref.dbias] : []),
          ];
          const tol = dtype === "float32" ? { rtol: 2e-4, atol: 5e-5 } : { rtol: 1e-10, atol: 1e-11 };
          got.forEach((g, i) => expectClose(g.data, want[i]!, tol, `${c.name} ${dtype} gradient ${i}`));
        }
      }));

  for (const c of cases.filter((x) => x.T * (x.P + x.S) * x.NH * x.B <= 400))
    it(`${c.name}: gradients match finite differences in float64 at a fixed seed`, () =>
      scope(() => {
        const x = inputs(c, "float64", 31);
        const ins = diffInputs(x);
        for (const t of ins) t.requireGrad();
        const drop = { p: 0.3, seed: 1234 };
        gradCheck((...xs) => {
          const [q, k, v] = xs as [Tensor, Tensor, Tensor];
          const pk = x.pastK ? xs[3]! : null;
          const pv = x.pastK ? xs[4]! : null;
          const bias = x.bias ? xs[xs.length - 1]! : null;
          return attention(q, k, v, {
            causal: c.causal,
            pastK: pk,
            pastV: pv,
            keyMask: x.keyMask,
            bias,
            dropout: drop,
          });
        }, ins);
      }));

  it("odd sizes with several query blocks: finite differences on sampled elements", () =>
    scope(() => {
      const c = cases.find((x) => x.name.startsWith("odd sizes"))!;
      const x = inputs(c, "float64", 41);
      const ins = diffInputs(x);
      for (const t of ins) t.requireGrad();
      gradCheck(
        (q, k, v, pk, pv) =>
          attention(q!, k!, v!, { causal: true, pastK: pk, pastV: pv, dropout: { p: 0.2, seed: 8 } }),
        ins,
        { maxElements: 10 },
      );
    }));

  it("p = 0 gives exactly the gradients without dropout; only the needed gradients are computed", () =>
    scope(() => {
      const c = cases[1]!;
      const x = inputs(c, "float32", 51);
      const ins = diffInputs(x);
      for (const t of ins) t.requireGrad();
      const dout = randn([c.B, c.T, c.NH, c.HS], { seed: 52 });
      const plain = grad(run(c, x), ins, { gradOutput: dout });
      const zero = grad(run(c, x, { p: 0, seed: 3 }), ins, { gradOutput: dout });
      zero.forEach((g, i) => expect(Array.from(g.data)).toEqual(Array.from(plain[i]!.data)));
      // Frozen q, k, v (a prefix through a frozen LM): the prefix gradients equal the full computation's.
      const drop = { p: 0.4, seed: 6 };
      const full = grad(run(c, x, drop), ins, { gradOutput: dout });
      for (const t of [x.q, x.k, x.v]) t.requireGrad(false);
      const part = grad(run(c, x, drop), [x.pastK!, x.pastV!], { gradOutput: dout });
      expectClose(part[0]!.data, full[3]!.data, { rtol: 1e-6, atol: 1e-7 }, "dPastK");
      expectClose(part[1]!.data, full[4]!.data, { rtol: 1e-6, atol: 1e-7 }, "dPastV");
    }));
});

describe("attention dropout: argument errors", () => {
  const q = () => Tensor.zeros([1, 2, 2, 4]);
  for (const [name, drop, re] of [
    ["p = 1", { p: 1, seed: 0 }, /attention: dropout p must be in \[0, 1\), got 1/],
    ["p < 0", { p: -0.1, seed: 0 }, /attention: dropout p must be in \[0, 1\), got -0.1/],
    ["a fractional seed", { p: 0.1, seed: 1.5 }, /attention: dropout seed must be a safe integer, got 1.5/],
  ] as const)
    it(`${name} throws`, () =>
      scope(() => {
        expect(() => attention(q(), q(), q(), { dropout: drop })).toThrow(MacLmError);
        expect(() => attention(q(), q(), q(), { dropout: drop })).toThrow(re);
      }));
});
