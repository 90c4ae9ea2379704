import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { ShapeError } from "../../errors.js";
import { type DType, Tensor, attention, grad, noGrad, scope } from "../index.js";
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
  /** Builds the (B, P + S) key mask; null: none. */
  mask?: (b: number, j: number) => number;
  scale?: number;
}

const cases: Case[] = [
  { name: "non-causal", B: 2, T: 5, S: 7, P: 0, NH: 3, NKV: 3, HS: 4, causal: false },
  { name: "causal T = S", B: 2, T: 6, S: 6, P: 0, NH: 2, NKV: 2, HS: 8, causal: true },
  { name: "causal with past", B: 2, T: 3, S: 3, P: 4, NH: 2, NKV: 2, HS: 5, causal: true },
  {
    name: "non-causal with past and custom scale",
    B: 1,
    T: 4,
    S: 2,
    P: 3,
    NH: 2,
    NKV: 1,
    HS: 6,
    causal: false,
    scale: 0.7,
  },
  { name: "decode step (T = 1) with past", B: 2, T: 1, S: 1, P: 6, NH: 4, NKV: 2, HS: 8, causal: true },
  {
    name: "key mask with a fully masked row (causal, batch 1 masks key 0)",
    B: 2,
    T: 4,
    S: 4,
    P: 0,
    NH: 2,
    NKV: 2,
    HS: 4,
    causal: true,
    mask: (b, j) => (b === 1 && (j === 0 || j === 2) ? 0 : 1),
  },
  {
    name: "key mask over past and new keys, one batch fully masked",
    B: 3,
    T: 3,
    S: 2,
    P: 3,
    NH: 2,
    NKV: 2,
    HS: 3,
    causal: false,
    mask: (b, j) => (b === 2 ? 0 : b === 1 && j < 2 ? 0 : 1),
  },
  { name: "GQA NH=4, NKV=2, causal", B: 2, T: 5, S: 5, P: 0, NH: 4, NKV: 2, HS: 4, causal: true },
  { name: "GQA NH=4, NKV=1 (multi-query) with past", B: 1, T: 3, S: 3, P: 2, NH: 4, NKV: 1, HS: 4, causal: true },
  { name: "causal with more queries than keys", B: 1, T: 5, S: 3, P: 0, NH: 2, NKV: 2, HS: 4, causal: true },
  // Odd sizes: head size 13 (vector tails), T = 70 > the 64-row query block, Stot = 75, threaded over heads.
  { name: "odd sizes, several query blocks", B: 2, T: 70, S: 70, P: 5, NH: 2, NKV: 1, HS: 13, causal: true },
  {
    name: "odd sizes, non-causal with mask",
    B: 2,
    T: 67,
    S: 9,
    P: 0,
    NH: 3,
    NKV: 3,
    HS: 17,
    causal: false,
    mask: (b, j) => ((b + j) % 3 === 0 ? 0 : 1),
  },
];

function makeInputs(c: Case, dtype: DType, seed = 1) {
  const q = randn([c.B, c.T, c.NH, c.HS], { seed, dtype });
  const k = randn([c.B, c.S, c.NKV, c.HS], { seed: seed + 1, dtype });
  const v = randn([c.B, c.S, c.NKV, c.HS], { seed: seed + 2, dtype });
  const pastK = c.P > 0 ? randn([c.B, c.P, c.NKV, c.HS], { seed: seed + 3, dtype }) : null;
  const pastV = c.P > 0 ? randn([c.B, c.P, c.NKV, c.HS], { seed: seed + 4, dtype }) : null;
  let keyMask: Tensor | null = null;
  if (c.mask) {
    const Stot = c.P + c.S;
    keyMask = Tensor.zeros([c.B, Stot], "float32");
    for (let b = 0; b < c.B; b++) for (let j = 0; j < Stot; j++) keyMask.data[b * Stot + j] = c.mask(b, j);
  }
  return { q, k, v, pastK, pastV, keyMask };
}

function refArgs(c: Case, x: ReturnType<typeof makeInputs>): RefAttentionArgs {
  return {
    q: x.q.data,
    k: x.k.data,
    v: x.v.data,
    pastK: x.pastK?.data,
    pastV: x.pastV?.data,
    keyMask: x.keyMask?.data,
    B: c.B,
    T: c.T,
    S: c.S,
    P: c.P,
    NH: c.NH,
    NKV: c.NKV,
    HS: c.HS,
    causal: c.causal,
    scale: c.scale ?? 1 / Math.sqrt(c.HS),
  };
}

const run = (c: Case, x: ReturnType<typeof makeInputs>): Tensor =>
  attention(x.q, x.k, x.v, { causal: c.causal, pastK: x.pastK, pastV: x.pastV, keyMask: x.keyMask, scale: c.scale });

/** Query rows (b, t) whose every key is masked. */
function emptyRows(c: Case): [number, number][] {
  const rows: [number, number][] = [];
  const Stot = c.P + c.S;
  for (let b = 0; b < c.B; b++)
    for (let t = 0; t < c.T; t++) {
      let any = false;
      for (let j = 0; j < Stot; j++)
        if ((!c.causal || j <= t + Stot - c.T) && (!c.mask || c.mask(b, j) !== 0)) any = true;
      if (!any) rows.push([b, t]);
    }
  return rows;
}

describe("attention forward", () => {
  for (const c of cases)
    it(`${c.name}: matches the float64 reference, float32 and float64`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const) {
          const x = makeInputs(c, dtype);
          const out = run(c, x);
          expect(out.shape).toEqual([c.B, c.T, c.NH, c.HS]);
          const ref = refAttention(refArgs(c, x));
          expectClose(
            out.data,
            ref,
            dtype === "float32" ? { rtol: 1e-4, atol: 2e-5 } : { rtol: 1e-11, atol: 1e-12 },
            `${c.name} ${dtype}`,
          );
        }
      }));

  it("rows with every key masked give exactly 0 and no NaN; such rows exist in the test cases", () =>
    scope(() => {
      let seen = 0;
      for (const c of cases) {
        const rows = emptyRows(c);
        seen += rows.length;
        const out = run(c, makeInputs(c, "float32"));
        for (const [b, t] of rows)
          for (let i = 0; i < c.NH * c.HS; i++) expect(out.data[(b * c.T + t) * c.NH * c.HS + i]).toBe(0);
        expect(out.toArray().every(Number.isFinite)).toBe(true);
      }
      expect(seen).toBeGreaterThan(3);
    }));

  it("keyMask may be uint8 and gives the same result as float32; the default scale is 1/sqrt(HS)", () =>
    scope(() => {
      const c = cases[5]!;
      const x = makeInputs(c, "float32");
      const a = run(c, x);
      const m8 = Tensor.from(Uint8Array.from(x.keyMask!.data), x.keyMask!.shape);
      const b = attention(x.q, x.k, x.v, { causal: true, keyMask: m8 });
      expect(b.toArray()).toEqual(a.toArray());
      const s = attention(x.q, x.k, x.v, { causal: true, keyMask: m8, scale: 1 / Math.sqrt(c.HS) });
      expect(s.toArray()).toEqual(a.toArray());
    }));

  it("a decode step with past keys equals the last row of the full causal computation", () =>
    scope(() => {
      const [B, T, NH, HS] = [2, 9, 4, 8];
      const q = randn([B, T, NH, HS], { seed: 11 });
      const k = randn([B, T, 2, HS], { seed: 12 });
      const v = randn([B, T, 2, HS], { seed: 13 });
      const full = attention(q, k, v, { causal: true });
      const lastOf = (t: Tensor, n: number) =>
        Tensor.from(
          Array.from({ length: B }, (_, b) =>
            Array.from(t.data.subarray((b * t.dim(1) + n) * t.dim(2) * HS, (b * t.dim(1) + n + 1) * t.dim(2) * HS)),
          ).flat(),
          [B, 1, t.dim(2), HS],
        );
      const firstOf = (t: Tensor, n: number) =>
        Tensor.from(
          Array.from({ length: B }, (_, b) =>
            Array.from(t.data.subarray(b * t.dim(1) * t.dim(2) * HS, (b * t.dim(1) + n) * t.dim(2) * HS)),
          ).flat(),
          [B, n, t.dim(2), HS],
        );
      const step = attention(lastOf(q, T - 1), lastOf(k, T - 1), lastOf(v, T - 1), {
        causal: true,
        pastK: firstOf(k, T - 1),
        pastV: firstOf(v, T - 1),
      });
      expectClose(step.data, lastOf(full, T - 1).data, { rtol: 1e-5, atol: 1e-6 });
    }));

  it("records no graph under noGrad() or when no input requires grad", () =>
    scope(() => {
      const c = cases[2]!;
      const x = makeInputs(c, "float64");
      x.q.requireGrad();
      expect(run(c, x).node).not.toBeNull();
      expect(noGrad(() => run(c, x)).node).toBeNull();
      x.q.requireGrad(false);
      expect(run(c, x).node).toBeNull();
    }));
});

describe("attention backward", () => {
  const gradCases = cases.filter((c) => c.T * (c.P + c.S) * c.NH * c.B <= 400);
  for (const c of gradCases)
    it(`${c.name}: gradients of q, k, v${c.P > 0 ? ", pastK, pastV" : ""} match finite differences`, () =>
      scope(() => {
        const x = makeInputs(c, "float64", 21);
        const ins = [x.q, x.k, x.v, ...(x.pastK ? [x.pastK, x.pastV!] : [])];
        for (const t of ins) t.requireGrad();
        gradCheck(
          (q, k, v, pk, pv) =>
            attention(q!, k!, v!, { causal: c.causal, pastK: pk, pastV: pv, keyMask: x.keyMask, scale: c.scale }),
          ins,
        );
      }));

  it("odd sizes with several query blocks: finite differences on sampled elements", () =>
    scope(() => {
      const c = cases.find((x) => x.name.startsWith("odd sizes, several"))!;
      const x = makeInputs(c, "float64", 31);
      const ins = [x.q, x.k, x.v, x.pastK!, x.pastV!];
      for (const t of ins) t.requireGrad();
      gradCheck((q, k, v, pk, pv) => attention(q!, k!, v!, { causal: true, pastK: pk, pastV: pv }), ins, {
        maxElements: 12,
      });
    }));

  for (const c of cases)
    it(`${c.name}: float32 and float64 gradients match the float64 reference backward`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const) {
          const x = makeInputs(c, dtype, 41);
          const ins = [x.q, x.k, x.v, ...(x.pastK ? [x.pastK, x.pastV!] : [])];
          for (const t of ins) t.requireGrad();
          const out = run(c, x);
          const dout = randn(out.shape, { seed: 42, dtype });
          const got = grad(out, ins, { gradOutput: dout });
          const ref = refAttentionBackward(refArgs(c, x), dout.data);
          const want = [ref.dq, ref.dk, ref.dv, ...(x.pastK ? [ref.dpastK, ref.dpastV] : [])];
          const tol = dtype === "float32" ? { rtol: 2e-4, atol: 5e-5 } : { rtol: 1e-10, atol: 1e-11 };
          got.forEach((g, i) => expectClose(g.data, want[i]!, tol, `${c.name} ${dtype} gradient ${i}`));
          // Fully masked query rows get a zero gradient.
          for (const [b, t] of emptyRows(c))
            for (let i = 0; i < c.NH * c.HS; i++) expect(got[0]!.data[(b * c.T + t) * c.NH * c.HS + i]).toBe(0);
        }
      }));

  it("computes only the needed gradients: frozen k/v (MAC prefix through a frozen LM) give the same dq, dPastK, dPastV", () =>
    scope(() => {
      const c = cases[8]!; // GQA with past
      const a = makeInputs(c, "float64", 51);
      const all = [a.q, a.k, a.v, a.pastK!, a.pastV!];
      for (const t of all) t.requireGrad();
      const dout = randn([c.B, c.T, c.NH, c.HS], { seed: 52, dtype: "float64" });
      const full = grad(run(c, a), all, { gradOutput: dout });
      a.k.requireGrad(false);
      a.v.requireGrad(false);
      const part = grad(run(c, a), [a.q, a.pastK!, a.pastV!], { gradOutput: dout });
      expectClose(part[0]!.data, full[0]!.data, { rtol: 1e-12, atol: 1e-14 });
      expectClose(part[1]!.data, full[3]!.data, { rtol: 1e-12, atol: 1e-14 });
      expectClose(part[2]!.data, full[4]!.data, { rtol: 1e-12, atol: 1e-14 });
      // Only dV: P alone suffices.
      a.q.requireGrad(false);
      a.pastK!.requireGrad(false);
      const onlyV = grad(run(c, a), [a.pastV!], { gradOutput: dout });
      expectClose(onlyV[0]!.data, full[4]!.data, { rtol: 1e-12, atol: 1e-14 });
    }));

  // The kernel runs one task per (b, kv head) when B·NKV >= 2·threads, else per query head with scratch dK/dV:
  // B·NKV = 1 always takes the scratch path, B·NKV = 16 the direct one on machines with up to 8 threads.
  it("GQA: the per-kv-head and the per-query-head scratch paths agree with the reference", () =>
    scope(() => {
      for (const [B, NKV, NH] of [
        [1, 1, 4],
        [2, 1, 4],
        [1, 2, 4],
        [4, 4, 8],
      ] as const) {
        const c: Case = { name: "gqa", B, T: 6, S: 4, P: 3, NH, NKV, HS: 5, causal: true };
        const x = makeInputs(c, "float64", 61);
        const ins = [x.q, x.k, x.v, x.pastK!, x.pastV!];
        for (const t of ins) t.requireGrad();
        const dout = randn([B, c.T, c.NH, c.HS], { seed: 62, dtype: "float64" });
        const got = grad(run(c, x), ins, { gradOutput: dout });
        const ref = refAttentionBackward(refArgs(c, x), dout.data);
        [ref.dq, ref.dk, ref.dv, ref.dpastK, ref.dpastV].forEach((r, i) =>
          expectClose(got[i]!.data, r, { rtol: 1e-10, atol: 1e-11 }, `B=${B} NKV=${NKV} NH=${NH} gradient ${i}`),
        );
      }
    }));
});

describe("attention argument errors", () => {
  const q = () => Tensor.zeros([2, 3, 4, 8]);
  const kv = (S = 5, NKV = 2, HS = 8, B = 2) => Tensor.zeros([B, S, NKV, HS]);
  const cases: [string, () => unknown, RegExp][] = [
    [
      "q not 4-D",
      () => attention(Tensor.zeros([2, 3, 32]), kv(), kv()),
      /attention: q must be \(B, T, NH, HS\).*q \[2, 3, 32\]/,
    ],
    ["k and v differ", () => attention(q(), kv(5), kv(6)), /k and v shapes differ.*k \[2, 5, 2, 8\], v \[2, 6, 2, 8\]/],
    [
      "batch differs",
      () => attention(q(), kv(5, 2, 8, 3), kv(5, 2, 8, 3)),
      /batch sizes differ.*q \[2, 3, 4, 8\], k \[3, 5, 2, 8\]/,
    ],
    ["head size differs", () => attention(q(), kv(5, 2, 4), kv(5, 2, 4)), /head sizes differ.*k \[2, 5, 2, 4\]/],
    [
      "NH not a multiple of NKV",
      () => attention(q(), kv(5, 3), kv(5, 3)),
      /query heads \(4\) must be a multiple of key\/value heads \(3\)/,
    ],
    [
      "pastK without pastV",
      () => attention(q(), kv(), kv(), { pastK: kv(2) }),
      /pastK and pastV must be given together.*pastK \[2, 2, 2, 8\]/,
    ],
    [
      "past wrong heads",
      () => attention(q(), kv(), kv(), { pastK: kv(2, 1), pastV: kv(2, 1) }),
      /pastK\/pastV must be \(B, P, NKV, HS\) = \(2, P, 2, 8\).*pastK \[2, 2, 1, 8\]/,
    ],
    [
      "keyMask wrong length",
      () => attention(q(), kv(), kv(), { pastK: kv(2), pastV: kv(2), keyMask: Tensor.zeros([2, 5]) }),
      /keyMask \[2, 5\] must be \(B, P \+ S\) = \(2, 7\)/,
    ],
    [
      "dtype mismatch",
      () => attention(q(), kv().to("float64"), kv().to("float64")),
      /dtype mismatch: q is float32, k is float64/,
    ],
  ];
  for (const [name, f, re] of cases)
    it(`${name} throws a ShapeError naming the shapes`, () =>
      scope(() => {
        let err: unknown;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(ShapeError);
        expect((err as Error).message).toMatch(re);
      }));
});

// ---- additive score bias (T5's relative position bias) ------------------------------------------------------

interface BiasCase extends Case {
  /** 3: (NH, T, Stot) shared by the batch; 4: (B, NH, T, Stot). */
  biasDims: 3 | 4;
}

const biasCases: BiasCase[] = [
  {
    name: "non-causal, shared bias",
    B: 2,
    T: 5,
    S: 7,
    P: 0,
    NH: 3,
    NKV: 3,
    HS: 4,
    causal: false,
    biasDims: 3,
    scale: 1,
  },
  { name: "non-causal, per-batch bias", B: 2, T: 4, S: 6, P: 0, NH: 2, NKV: 2, HS: 4, causal: false, biasDims: 4 },
  {
    name: "causal T = S, shared bias, key mask with a fully masked row",
    B: 2,
    T: 4,
    S: 4,
    P: 0,
    NH: 2,
    NKV: 2,
    HS: 4,
    causal: true,
    biasDims: 3,
    scale: 1,
    mask: (b, j) => (b === 1 && (j === 0 || j === 2) ? 0 : 1),
  },
  {
    name: "causal with past, per-batch bias, key mask",
    B: 2,
    T: 3,
    S: 3,
    P: 2,
    NH: 2,
    NKV: 2,
    HS: 3,
    causal: true,
    biasDims: 4,
    mask: (b, j) => (b === 0 && j === 1 ? 0 : 1),
  },
  {
    name: "GQA NH=4, NKV=2 with past, shared bias",
    B: 2,
    T: 3,
    S: 3,
    P: 2,
    NH: 4,
    NKV: 2,
    HS: 4,
    causal: true,
    biasDims: 3,
  },
  {
    name: "GQA NH=4, NKV=1, per-batch bias (scratch dK/dV path)",
    B: 2,
    T: 3,
    S: 4,
    P: 0,
    NH: 4,
    NKV: 1,
    HS: 4,
    causal: false,
    biasDims: 4,
  },
  { name: "batch of one, shared bias", B: 1, T: 3, S: 5, P: 0, NH: 2, NKV: 2, HS: 4, causal: false, biasDims: 3 },
  // Odd sizes: T = 70 > the 64-row query block, head size 13, threaded over heads.
  {
    name: "odd sizes, several query blocks, shared bias",
    B: 2,
    T: 70,
    S: 70,
    P: 5,
    NH: 2,
    NKV: 1,
    HS: 13,
    causal: true,
    biasDims: 3,
    scale: 1,
  },
  {
    name: "odd sizes, non-causal with mask, per-batch bias",
    B: 2,
    T: 67,
    S: 9,
    P: 0,
    NH: 3,
    NKV: 3,
    HS: 17,
    causal: false,
    biasDims: 4,
    mask: (b, j) => ((b + j) % 3 === 0 ? 0 : 1),
  },
];

function makeBias(c: BiasCase, dtype: DType, seed: number): Tensor {
  const shape = [c.NH, c.T, c.P + c.S];
  return randn(c.biasDims === 4 ? [c.B, ...shape] : shape, { seed, dtype, std: 2 });
}

const runBias = (c: Case, x: ReturnType<typeof makeInputs>, bias: Tensor | null): Tensor =>
  attention(x.q, x.k, x.v, {
    causal: c.causal,
    pastK: x.pastK,
    pastV: x.pastV,
    keyMask: x.keyMask,
    scale: c.scale,
    bias,
  });

const refBiasArgs = (c: BiasCase, x: ReturnType<typeof makeInputs>, bias: Tensor): RefAttentionArgs => ({
  ...refArgs(c, x),
  bias: bias.data,
  biasBatched: c.biasDims === 4,
});

describe("attention with an additive bias", () => {
  for (const c of biasCases)
    it(`${c.name}: forward matches the float64 reference, float32 and float64`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const) {
          const x = makeInputs(c, dtype, 71);
          const bias = makeBias(c, dtype, 72);
          const out = runBias(c, x, bias);
          expect(out.shape).toEqual([c.B, c.T, c.NH, c.HS]);
          const ref = refAttention(refBiasArgs(c, x, bias));
          expectClose(
            out.data,
            ref,
            dtype === "float32" ? { rtol: 1e-4, atol: 2e-5 } : { rtol: 1e-11, atol: 1e-12 },
            `${c.name} ${dtype}`,
          );
          for (const [b, t] of emptyRows(c))
            for (let i = 0; i < c.NH * c.HS; i++) expect(out.data[(b * c.T + t) * c.NH * c.HS + i]).toBe(0);
        }
      }));

  it("the bias changes the result, and a zero bias gives exactly the unbiased result", () =>
    scope(() => {
      const c = biasCases[3]!;
      const x = makeInputs(c, "float32", 73);
      const plain = runBias(c, x, null).toArray();
      const zero = Tensor.zeros([c.B, c.NH, c.T, c.P + c.S]);
      expect(runBias(c, x, zero).toArray()).toEqual(plain);
      const biased = runBias(c, x, makeBias(c, "float32", 74)).toArray();
      expect(Math.max(...biased.map((v, i) => Math.abs(v - plain[i]!)))).toBeGreaterThan(1e-2);
    }));

  it("a shared (NH, T, Stot) bias equals the same bias repeated per batch item; its gradient is the batch sum", () =>
    scope(() => {
      const c: BiasCase = { ...biasCases[4]!, biasDims: 3 };
      const x = makeInputs(c, "float64", 75);
      const shared = makeBias(c, "float64", 76).requireGrad();
      const per = Tensor.from(
        Array.from({ length: c.B }, () => shared.toArray()).flat(),
        [c.B, ...shared.shape],
        "float64",
      ).requireGrad();
      const dout = randn([c.B, c.T, c.NH, c.HS], { seed: 77, dtype: "float64" });
      const a = runBias(c, x, shared);
      const b = runBias(c, x, per);
      expectClose(a.data, b.data, { rtol: 1e-13, atol: 1e-14 });
      const [ga] = grad(a, [shared], { gradOutput: dout });
      const [gb] = grad(b, [per], { gradOutput: dout });
      const n = shared.size;
      const summed = Float64Array.from({ length: n }, (_, i) => {
        let s = 0;
        for (let bb = 0; bb < c.B; bb++) s += gb!.data[bb * n + i]!;
        return s;
      });
      expectClose(ga!.data, summed, { rtol: 1e-12, atol: 1e-14 });
    }));
});

describe("attention with an additive bias: backward", () => {
  const small = biasCases.filter((c) => c.T * (c.P + c.S) * c.NH * c.B <= 400);
  for (const c of small)
    it(`${c.name}: gradients of q, k, v${c.P > 0 ? ", pastK, pastV" : ""} and bias match finite differences`, () =>
      scope(() => {
        const x = makeInputs(c, "float64", 81);
        const bias = makeBias(c, "float64", 82);
        const ins = [x.q, x.k, x.v, ...(x.pastK ? [x.pastK, x.pastV!] : []), bias];
        for (const t of ins) t.requireGrad();
        gradCheck((...xs) => {
          const hasPast = xs.length === 6;
          return attention(xs[0]!, xs[1]!, xs[2]!, {
            causal: c.causal,
            pastK: hasPast ? xs[3] : null,
            pastV: hasPast ? xs[4] : null,
            keyMask: x.keyMask,
            scale: c.scale,
            bias: xs[xs.length - 1],
          });
        }, ins);
      }));

  it("odd sizes with several query blocks and a shared bias: finite differences on sampled elements", () =>
    scope(() => {
      const c = biasCases.find((x) => x.name.startsWith("odd sizes, several"))!;
      const x = makeInputs(c, "float64", 83);
      const bias = makeBias(c, "float64", 84);
      const ins = [x.q, x.k, x.pastK!, bias];
      for (const t of ins) t.requireGrad();
      gradCheck(
        (q, k, pk, bb) => attention(q!, k!, x.v, { causal: true, pastK: pk, pastV: x.pastV, scale: 1, bias: bb }),
        ins,
        { maxElements: 12 },
      );
    }));

  for (const c of biasCases)
    it(`${c.name}: float32 and float64 gradients (bias included) match the float64 reference backward`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const) {
          const x = makeInputs(c, dtype, 85);
          const bias = makeBias(c, dtype, 86);
          const ins = [x.q, x.k, x.v, ...(x.pastK ? [x.pastK, x.pastV!] : []), bias];
          for (const t of ins) t.requireGrad();
          const out = runBias(c, x, bias);
          const dout = randn(out.shape, { seed: 87, dtype });
          const got = grad(out, ins, { gradOutput: dout });
          const ref = refAttentionBackward(refBiasArgs(c, x, bias), dout.data);
          const want = [ref.dq, ref.dk, ref.dv, ...(x.pastK ? [ref.dpastK, ref.dpastV] : []), ref.dbias];
          const tol = dtype === "float32" ? { rtol: 2e-4, atol: 5e-5 } : { rtol: 1e-10, atol: 1e-11 };
          got.forEach((g, i) => expectClose(g.data, want[i]!, tol, `${c.name} ${dtype} gradient ${i}`));
          const dBias = got[got.length - 1]!;
          expect(dBias.shape).toEqual(bias.shape);
          // Masked (causal or key-masked) positions get no bias gradient.
          const Stot = c.P + c.S;
          const masked = (b: number, t: number, j: number) =>
            (c.causal && j > t + Stot - c.T) || (c.mask !== undefined && c.mask(b, j) === 0);
          if (c.biasDims === 4)
            for (let b = 0; b < c.B; b++)
              for (let h = 0; h < c.NH; h++)
                for (let t = 0; t < c.T; t++)
                  for (let j = 0; j < Stot; j++)
                    if (masked(b, t, j)) expect(Math.abs(dBias.data[((b * c.NH + h) * c.T + t) * Stot + j]!)).toBe(0);
        }
      }));

  it("computes only the needed gradients: with q, k, v frozen, only the bias gradient, equal to the full one", () =>
    scope(() => {
      for (const c of [biasCases[0]!, biasCases[4]!, biasCases[5]!]) {
        const x = makeInputs(c, "float64", 91);
        const bias = makeBias(c, "float64", 92);
        const all = [x.q, x.k, x.v, ...(x.pastK ? [x.pastK, x.pastV!] : []), bias];
        for (const t of all) t.requireGrad();
        const dout = randn([c.B, c.T, c.NH, c.HS], { seed: 93, dtype: "float64" });
        const full = grad(runBias(c, x, bias), all, { gradOutput: dout });
        for (const t of all.slice(0, -1)) t.requireGrad(false);
        const out = runBias(c, x, bias);
        expect(out.node).not.toBeNull();
        const [only] = grad(out, [bias], { gradOutput: dout });
        expectClose(only!.data, full[full.length - 1]!.data, { rtol: 1e-12, atol: 1e-14 }, c.name);
        // And the other way round: a frozen bias costs nothing and leaves dq unchanged.
        x.q.requireGrad();
        bias.requireGrad(false);
        const [dq] = grad(runBias(c, x, bias), [x.q], { gradOutput: dout });
        expectClose(dq!.data, full[0]!.data, { rtol: 1e-12, atol: 1e-14 }, `${c.name} dq`);
      }
    }));

  it("a wrongly shaped bias throws a ShapeError naming the shapes", () =>
    scope(() => {
      const q = Tensor.zeros([2, 3, 4, 8]);
      const kv = Tensor.zeros([2, 5, 4, 8]);
      for (const [shape, dtype] of [
        [[4, 3, 6], "float32"],
        [[3, 3, 5], "float32"],
        [[1, 4, 3, 5], "float32"],
        [[4, 3], "float32"],
        [[4, 3, 5], "float64"],
      ] as const) {
        let err: unknown;
        try {
          attention(q, kv, kv, { bias: Tensor.zeros(shape, dtype) });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(ShapeError);
        expect((err as Error).message).toMatch(
          dtype === "float64"
            ? /dtype mismatch: q is float32, bias is float64/
            : /bias must be \(NH, T, P \+ S\) = \(4, 3, 5\) or \(B, NH, T, P \+ S\) = \(2, 4, 3, 5\).*bias \[/,
        );
      }
    }));
});
