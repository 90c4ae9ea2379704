import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { ShapeError } from "../../errors.js";
import type { ModelGeometry, Modulation } from "../../models/types.js";
import { type Tensor, Tensor as T, concat, reshape, scope } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import { Aggregator } from "../aggregate/aggregator.js";
import { aggregateHierarchical } from "../aggregate/hierarchical.js";
import { refPrefixPosition } from "../aggregate/reference.js";
import { PrefixModulation, SharedPrefixModulation, createModulation, repeatCounts, repeatIndices } from "./index.js";

const geom = (
  numLayers: number,
  numHeads: number,
  numKvHeads: number,
  headDim: number,
  hiddenSize = numHeads * headDim,
): ModelGeometry => ({
  numLayers,
  hiddenSize,
  numHeads,
  numKvHeads,
  headDim,
  vocabSize: 50,
});

/** All prefix keys and values, flattened into one tensor (for gradient checks). */
const flatPrefix = (m: Modulation): Tensor =>
  concat(
    m.prefix!.flatMap((kv) => [reshape(kv.k, [-1]), reshape(kv.v, [-1])]),
    0,
  );

describe("repeat rule", () => {
  it("reproduces the reference's sizes", () => {
    // distilgpt2: L = 6, P = 2 -> A = 24; T = 12 -> r = 2.
    expect(repeatCounts(12, 2 * 2 * 6)).toEqual(new Array(12).fill(2));
    expect(repeatIndices(12, 24).slice(0, 6)).toEqual([0, 0, 1, 1, 2, 2]);
    // Llama-2-7B: L = 32, P = 2 -> A = 128; T = 24 -> r = 5, rem = 8: 8 tokens × 6, then 16 × 5.
    const llama = repeatCounts(24, 2 * 2 * 32);
    expect(llama).toEqual([...new Array(8).fill(6), ...new Array(16).fill(5)]);
    const idx = repeatIndices(24, 128);
    expect(idx.length).toBe(128);
    expect(idx.slice(0, 13)).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2]);
    expect(idx.slice(48, 54)).toEqual([8, 8, 8, 8, 8, 9]);
    expect(idx[127]).toBe(23);
    // gpt2-large (L = 36) and gpt2-xl (L = 48), T = 24: r = 6 and 8.
    expect(repeatCounts(24, 144)).toEqual(new Array(24).fill(6));
    expect(repeatCounts(24, 192)).toEqual(new Array(24).fill(8));
    // Where the release skips the repeat: A = T is the identity, A < T keeps the first A tokens.
    expect(repeatIndices(5, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(repeatIndices(5, 3)).toEqual([0, 1, 2]);
    expect(() => repeatCounts(0, 4)).toThrow(/positive integers/);
  });
});

describe("PrefixModulation", () => {
  for (const T_ of [12, 5])
    it(`lays out keys/values by layer, key/value and prefix position (T = ${T_})`, () =>
      scope(() => {
        // L = 2, P = 3 -> A = 12 positions; NKV = 2 heads of HS = 3 -> kvDim = d = 6 (identity skip).
        const [L, P, NKV, HS, B] = [2, 3, 2, 3, 2];
        const g = geom(L, NKV, NKV, HS);
        const d = NKV * HS;
        const mod = new PrefixModulation(g, d, { numPrefixTokens: P, hidden: 4, dtype: "float64" });
        expect(mod.skip).toBeNull();
        // The FFN adds 1000·a at position a (fc2 weights 0, bias 1000·a) and the latent encodes (b, t, c):
        // y[b, a, c] = 100000·b + 100·tok(a) + c + 1000·a.
        mod.fc2.weight.data.fill(0);
        for (let a = 0; a < 2 * L * P; a++) for (let c = 0; c < d; c++) mod.fc2.bias!.data[a * d + c] = 1000 * a;
        const z = T.from(
          Float64Array.from({ length: B * T_ * d }, (_, i) => {
            const [b, t, c] = [Math.floor(i / (T_ * d)), Math.floor(i / d) % T_, i % d];
            return 100000 * b + 100 * t + c;
          }),
          [B, T_, d],
        );
        const tok = repeatIndices(T_, 2 * L * P);
        const { prefix } = mod.forward(z);
        expect(prefix!.length).toBe(L);
        for (let l = 0; l < L; l++)
          for (const [which, j] of [
            ["k", 2 * l],
            ["v", 2 * l + 1],
          ] as const) {
            const t = prefix![l]![which];
            expect(t.shape).toEqual([B, P, NKV, HS]);
            for (let b = 0; b < B; b++)
              for (let p = 0; p < P; p++)
                for (let h = 0; h < NKV; h++)
                  for (let e = 0; e < HS; e++) {
                    const a = p * 2 * L + j;
                    const want = 100000 * b + 100 * tok[a]! + (h * HS + e) + 1000 * a;
                    expect(t.data[((b * P + p) * NKV + h) * HS + e]).toBe(want);
                  }
          }
        mod.dispose();
      }));

  for (const [name, g, d] of [
    ["MHA, kvDim = d", geom(2, 2, 2, 3), 6],
    ["GQA, kvDim ≠ d (Linear skip)", geom(2, 4, 2, 3, 10), 10],
  ] as const)
    it(`matches the per-position reference FFN (${name})`, () =>
      scope(() => {
        const mod = new PrefixModulation(g, d, { numPrefixTokens: 2, hidden: 5, rng: new Rng(3), dtype: "float64" });
        const rng = new Rng(4);
        for (const t of [mod.norm.weight, mod.norm.bias])
          for (let i = 0; i < t.size; i++) t.data[i] = 1 + 0.3 * rng.normal();
        const kvDim = g.numKvHeads * g.headDim;
        expect(mod.skip === null).toBe(kvDim === d);
        const [B, T_] = [2, 3];
        const z = randn([B, T_, d], { seed: 5, dtype: "float64" });
        const { prefix } = mod.forward(z);
        const A = 2 * 2 * g.numLayers;
        const tok = repeatIndices(T_, A);
        const p = mod.stateDict();
        for (let b = 0; b < B; b++)
          for (let a = 0; a < A; a++) {
            const x = Array.from(z.data).slice((b * T_ + tok[a]!) * d, (b * T_ + tok[a]! + 1) * d);
            const want = refPrefixPosition(p, a, x, 5, kvDim);
            const [pp, j] = [Math.floor(a / (2 * g.numLayers)), a % (2 * g.numLayers)];
            const kv = prefix![Math.floor(j / 2)]!;
            const t = j % 2 === 0 ? kv.k : kv.v;
            expect(t.shape).toEqual([B, 2, g.numKvHeads, g.headDim]);
            const got = Array.from(t.data).slice((b * 2 + pp) * kvDim, (b * 2 + pp + 1) * kvDim);
            expectClose(got, want, { rtol: 1e-12, atol: 1e-12 });
          }
        mod.dispose();
      }));

  it("has the reference's parameter layout (A stacked FFNs of hidden 768)", () => {
    const mod = new PrefixModulation(geom(1, 2, 2, 4), 8);
    expect(mod.fc1.weight.shape).toEqual([4, 768, 8]); // A = P·2L = 4
    expect(mod.fc2.weight.shape).toEqual([4, 8, 768]);
    expect(mod.norm.weight.shape).toEqual([4, 8]);
    mod.dispose();
  });

  it("rejects a latent of the wrong width", () => {
    const mod = new PrefixModulation(geom(1, 2, 2, 3), 6, { hidden: 4 });
    expect(() => scope(() => mod.forward(T.zeros([1, 3, 5])))).toThrow(ShapeError);
    mod.dispose();
  });
});

describe("SharedPrefixModulation", () => {
  it("one FFN plus a position embedding: same layout, repeated tokens get different prefixes", () =>
    scope(() => {
      const g = geom(2, 4, 2, 3, 10);
      const mod = new SharedPrefixModulation(g, 10, { hidden: 7, dtype: "float64" });
      expect(mod.fc1.weight.shape).toEqual([7, 10]);
      expect(mod.pos.shape).toEqual([8, 10]);
      const { prefix } = mod.forward(randn([3, 2, 10], { seed: 1, dtype: "float64" })); // T = 2 -> each token × 4
      expect(prefix!.map((kv) => kv.k.shape)).toEqual([
        [3, 2, 2, 3],
        [3, 2, 2, 3],
      ]);
      // Positions 0 (layer 0 key, p 0) and 1 (layer 0 value, p 0) share token 0 but not the output.
      expect(prefix![0]!.k.toArray()).not.toEqual(prefix![0]!.v.toArray());
      mod.dispose();
    }));
});

describe("gradients through aggregation and modulation", () => {
  for (const kind of ["prefix", "prefix-shared"] as const)
    it(`${kind}: float64 gradients into memory entries, question tokens and parameters`, () => {
      const d = 8;
      const g = geom(2, 4, 2, 2, d); // kvDim 4 ≠ d
      const agg = new Aggregator(d, { numBlocks: 1, numHeads: 2, headDim: 3, rng: new Rng(1), dtype: "float64" });
      const mod = createModulation(g, d, { kind, hidden: 5, numPrefixTokens: 1, rng: new Rng(2), dtype: "float64" });
      const q0 = randn([2, 3, d], { seed: 3, dtype: "float64" }).requireGrad();
      const bank = randn([5, 3, d], { seed: 4, dtype: "float64" }).requireGrad();
      const params = mod.parameters().filter((_, i) => i % 2 === 0);
      gradCheck((q, m) => flatPrefix(mod.forward(agg.forward(q, m))), [q0, bank], { maxElements: 30 });
      gradCheck((q, m) => flatPrefix(mod.forward(aggregateHierarchical(agg, q, m, 2))), [q0, bank], {
        maxElements: 20,
      });
      gradCheck((...xs) => flatPrefix(mod.forward(agg.forward(xs[0]!, xs[1]!))), [q0, bank, ...params], {
        maxElements: 6,
      });
      for (const t of [q0, bank]) t.dispose();
      agg.dispose();
      mod.dispose();
    });
});
