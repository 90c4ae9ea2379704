import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { ShapeError } from "../../errors.js";
import { setDropoutState } from "../../nn/layers.js";
import { type FloatDType, type Tensor, concat, noGrad, reshape, scope, slice, stack } from "../../tensor/index.js";
import { Tensor as T } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import { Aggregator, type AggregatorOptions } from "./aggregator.js";
import { refAggregate } from "./reference.js";

const D = 8;
const OPTS: AggregatorOptions = { numBlocks: 2, numHeads: 2, headDim: 3 };

/** A small aggregator with random (non-identity) LayerNorm parameters. */
function makeAggregator(dtype: FloatDType = "float64", opts: AggregatorOptions = OPTS, seed = 11): Aggregator {
  const agg = new Aggregator(D, { ...opts, rng: new Rng(seed), dtype });
  const rng = new Rng(seed + 1);
  for (const [name, t] of agg.namedParameters())
    if (/norm/.test(name))
      for (let i = 0; i < t.size; i++) t.data[i] = (name.endsWith("weight") ? 1 : 0) + 0.3 * rng.normal();
  return agg;
}

/** Rows of a flat (…, d) array as vectors. */
const rows = (x: ArrayLike<number>, d: number): number[][] =>
  Array.from({ length: x.length / d }, (_, i) => Array.from(x).slice(i * d, (i + 1) * d));

const toF64 = (t: Tensor): Float64Array => Float64Array.from(t.data);

describe("Aggregator", () => {
  it("has the reference's sizes and parameter names", () => {
    const agg = new Aggregator(768, { numBlocks: 1 });
    expect(new Aggregator(4, { numHeads: 1, headDim: 2 }).cross_attention_list.length).toBe(4);
    expect(agg.ffnHidden).toBe(768);
    const names = [...agg.stateDict().keys()];
    expect(names.slice(0, 9)).toEqual([
      "cross_attention_list.0.norm1.weight",
      "cross_attention_list.0.norm1.bias",
      "cross_attention_list.0.norm_context.weight",
      "cross_attention_list.0.norm_context.bias",
      "cross_attention_list.0.attn.to_q.weight",
      "cross_attention_list.0.attn.to_k.weight",
      "cross_attention_list.0.attn.to_v.weight",
      "cross_attention_list.0.attn.to_out.weight",
      "cross_attention_list.0.attn.to_out.bias",
    ]);
    expect(agg.stateDict().get("cross_attention_list.0.attn.to_q.weight")!.shape).toEqual([768, 768]);
    expect(agg.numHeads * agg.headDim).toBe(768);
    expect(new Aggregator(20, { numBlocks: 1, numHeads: 2, headDim: 8 }).ffnHidden).toBe(16); // h = NH·HS if d > NH·HS
    expect(new Aggregator(12, { numBlocks: 1, numHeads: 2, headDim: 8 }).ffnHidden).toBe(12); // else d
    expect(new Aggregator(12, { numBlocks: 1, ffnHidden: 5 }).ffnHidden).toBe(5);
    agg.dispose();
  });

  for (const dtype of ["float64", "float32"] as const)
    it(`matches the token-by-token reference (${dtype}, shared memory, Bq = 2)`, () =>
      scope(() => {
        const agg = makeAggregator(dtype);
        expect(agg.ffnHidden).toBe(6); // d = 8 > NH·HS = 6
        const [Bq, T_, N] = [2, 3, 4];
        const q0 = randn([Bq, T_, D], { seed: 1, dtype });
        const mem = randn([N, T_, D], { seed: 2, dtype });
        const out = agg.forward(q0, mem);
        expect(out.shape).toEqual([Bq, T_, D]);
        const p = agg.stateDict();
        const memTok = rows(mem.data, D);
        const ref = [0, 1].flatMap((b) =>
          refAggregate(p, rows(q0.data, D).slice(b * T_, (b + 1) * T_), memTok, 2, 2, 3, 6).flat(),
        );
        expectClose(out.data, ref, dtype === "float64" ? { rtol: 1e-11, atol: 1e-12 } : { rtol: 1e-4, atol: 1e-5 });
        agg.dispose();
      }));

  it("a shared memory gives each question what it gets alone and what a per-question copy gives", () =>
    scope(() => {
      const agg = makeAggregator();
      const q0 = randn([3, 2, D], { seed: 3, dtype: "float64" });
      const mem = randn([5, 2, D], { seed: 4, dtype: "float64" });
      const shared = agg.forward(q0, mem);
      const perQuestion = agg.forward(q0, stack([mem, mem, mem], 0)); // (3, 5, 2, D)
      expectClose(shared.data, perQuestion.data, { rtol: 1e-12, atol: 1e-13 });
      for (let b = 0; b < 3; b++) {
        const alone = agg.forward(slice(q0, 0, b, b + 1), mem);
        expectClose(slice(shared, 0, b, b + 1).data, alone.data, { rtol: 1e-12, atol: 1e-13 });
      }
      agg.dispose();
    }));

  it("is invariant to permuting memory entries and to permuting the flattened memory tokens", () =>
    scope(() => {
      const agg = makeAggregator();
      const [N, Tm] = [5, 3];
      const q0 = randn([2, 3, D], { seed: 5, dtype: "float64" });
      const mem = randn([N, Tm, D], { seed: 6, dtype: "float64" });
      const base = toF64(agg.forward(q0, mem));
      const rng = new Rng(8);
      // Entries reordered.
      const perm = rng.shuffle([...Array(N).keys()]);
      const memP = concat(
        perm.map((i) => slice(mem, 0, i, i + 1)),
        0,
      );
      expectClose(agg.forward(q0, memP).data, base, { rtol: 1e-12, atol: 1e-13 });
      // All N·Tm tokens reordered, across entries and slots, then regrouped as (N, Tm, d).
      const flat = reshape(mem, [N * Tm, D]);
      const tokPerm = rng.shuffle([...Array(N * Tm).keys()]);
      const memT = reshape(
        concat(
          tokPerm.map((i) => slice(flat, 0, i, i + 1)),
          0,
        ),
        [N, Tm, D],
      );
      expectClose(agg.forward(q0, memT).data, base, { rtol: 1e-12, atol: 1e-13 });
      // …and regrouped differently: (Tm, N, d) entries.
      expectClose(agg.forward(q0, reshape(memT, [Tm, N, D])).data, base, { rtol: 1e-12, atol: 1e-13 });
      agg.dispose();
    }));

  it("precomputed memory keys/values give the same output (shared and per question)", () =>
    scope(() => {
      const agg = makeAggregator();
      const q0 = randn([2, 3, D], { seed: 9, dtype: "float64" });
      const mem = randn([4, 3, D], { seed: 10, dtype: "float64" });
      const pq = randn([2, 4, 3, D], { seed: 12, dtype: "float64" });
      expect(agg.forward(q0, agg.encodeMemory(mem)).toArray()).toEqual(agg.forward(q0, mem).toArray());
      expect(agg.forward(q0, agg.encodeMemory(pq)).toArray()).toEqual(agg.forward(q0, pq).toArray());
      expect(agg.encodeMemory(mem).batch).toBe(1);
      expect(agg.encodeMemory(pq).batch).toBe(2);
      agg.dispose();
    }));

  it("gradients (float64) flow into question tokens, memory entries and parameters", () => {
    const agg = makeAggregator();
    const q0 = randn([2, 2, D], { seed: 13, dtype: "float64" }).requireGrad();
    const mem = randn([3, 2, D], { seed: 14, dtype: "float64" }).requireGrad();
    const pq = randn([2, 2, 2, D], { seed: 15, dtype: "float64" }).requireGrad();
    gradCheck((q, m) => agg.forward(q, m), [q0, mem], { maxElements: 24 });
    gradCheck((q, m) => agg.forward(q, m), [q0, pq], { maxElements: 24 });
    const some = agg.parameters().filter((_, i) => i % 3 === 0);
    gradCheck((...ps) => agg.forward(ps[0]!, ps[1]!), [q0, mem, ...some], { maxElements: 8 });
    for (const t of [q0, mem, pq]) t.dispose();
    agg.dispose();
  });

  it("applies dropout only in training mode", () =>
    scope(() => {
      const agg = makeAggregator("float64", { ...OPTS, dropout: 0.5 });
      const ref = makeAggregator("float64", OPTS);
      const q0 = randn([1, 2, D], { seed: 16, dtype: "float64" });
      const mem = randn([2, 2, D], { seed: 17, dtype: "float64" });
      agg.eval();
      expect(agg.forward(q0, mem).toArray()).toEqual(ref.forward(q0, mem).toArray());
      agg.train();
      setDropoutState(100);
      const a = agg.forward(q0, mem).toArray();
      setDropoutState(100);
      const b = agg.forward(q0, mem).toArray();
      expect(a).toEqual(b);
      expect(a).not.toEqual(ref.forward(q0, mem).toArray());
      agg.dispose();
      ref.dispose();
    }));

  it("float32 memory of 1,000 entries: no per-question copy, shared keys", () =>
    noGrad(() =>
      scope(() => {
        const agg = makeAggregator("float32");
        const q0 = randn([4, 3, D], { seed: 18 });
        const mem = randn([1000, 3, D], { seed: 19 });
        const enc = agg.encodeMemory(mem);
        expect(enc.blocks[0]!.k.shape).toEqual([1, 3000, 2, 3]);
        expect(agg.forward(q0, enc).shape).toEqual([4, 3, D]);
        agg.dispose();
      }),
    ));

  it("rejects bad shapes with messages naming them", () =>
    scope(() => {
      const agg = makeAggregator();
      const q0 = T.zeros([2, 3, D], "float64");
      expect(() => agg.forward(q0, T.zeros([4, 3, D + 1], "float64"))).toThrow(ShapeError);
      expect(() => agg.forward(q0, T.zeros([3, 4, 3, D], "float64"))).toThrow(/3 per-question banks for 2 questions/);
      expect(() => agg.forward(T.zeros([3, D], "float64"), T.zeros([4, 3, D], "float64"))).toThrow(/queries \[3, 8\]/);
      expect(() => agg.forward(q0, T.zeros([0, 3, D], "float64"))).toThrow(/empty/);
      agg.dispose();
    }));
});

describe("Aggregator without the query residual (readout)", () => {
  it("reads the memory only: over a single memory token the question changes nothing", () => {
    const d = 16;
    const agg = new Aggregator(d, { numBlocks: 1, numHeads: 2, headDim: 4, queryResidual: false, rng: new Rng(3) });
    const ref = new Aggregator(d, { numBlocks: 1, numHeads: 2, headDim: 4, rng: new Rng(3) });
    noGrad(() =>
      scope(() => {
        const memory = randn([1, 1, d], { rng: new Rng(4) }); // one entry of one token: every query reads it wholly
        const a = agg.forward(randn([1, 3, d], { rng: new Rng(5) }), memory);
        const b = agg.forward(randn([1, 3, d], { rng: new Rng(6) }), memory);
        expectClose(Array.from(a.data), Array.from(b.data), { atol: 1e-6 });
        // With the residual (the reference), the question's own tokens pass through.
        const c = ref.forward(randn([1, 3, d], { rng: new Rng(5) }), memory);
        const e = ref.forward(randn([1, 3, d], { rng: new Rng(6) }), memory);
        expect(Math.max(...Array.from(c.data, (x, i) => Math.abs(x - e.data[i]!)))).toBeGreaterThan(0.1);
      }),
    );
  });
});
