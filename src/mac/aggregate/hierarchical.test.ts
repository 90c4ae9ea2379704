import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { MacLmError } from "../../errors.js";
import { type FloatDType, type Tensor, liveNativeMemory, noGrad, scope, slice, stack } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import { Aggregator } from "./aggregator.js";
import { aggregateFull, aggregateHierarchical, aggregateHierarchicalAsync } from "./hierarchical.js";

const D = 8;

function makeAggregator(dtype: FloatDType = "float64", seed = 21): Aggregator {
  const agg = new Aggregator(D, { numBlocks: 2, numHeads: 2, headDim: 3, rng: new Rng(seed), dtype });
  const rng = new Rng(seed + 1);
  for (const [name, t] of agg.namedParameters())
    if (/norm/.test(name))
      for (let i = 0; i < t.size; i++) t.data[i] = (name.endsWith("weight") ? 1 : 0) + 0.3 * rng.normal();
  return agg;
}

/**
 * The level-by-level algorithm written out plainly (reference §3.3 with the bank-length fix): groups of M
 * consecutive entries, each aggregated with the question; after the first level, one bank per question.
 */
function explicitHierarchical(agg: Aggregator, q0: Tensor, bank: Tensor, M: number): Tensor {
  let cur = bank; // (N, T, d), then (Bq, N', T, d)
  let perQuestion = false;
  const len = (): number => (perQuestion ? cur.dim(1) : cur.dim(0));
  while (len() > M) {
    const outs: Tensor[] = [];
    for (let s = 0; s < len(); s += M)
      outs.push(agg.forward(q0, slice(cur, perQuestion ? 1 : 0, s, Math.min(s + M, len()))));
    cur = stack(outs, 1);
    perQuestion = true;
  }
  return agg.forward(q0, cur);
}

/** Yields `bank` in chunks of the given sizes (copies, as a reader would produce them). */
function* chunks(bank: Tensor, sizes: readonly number[]): Generator<Tensor> {
  let s = 0;
  for (const n of sizes) {
    yield slice(bank, 0, s, s + n);
    s += n;
  }
  expect(s).toBe(bank.dim(0));
}

describe("aggregateHierarchical", () => {
  it("is exactly full aggregation when N ≤ M (N < M and N = M, tensor or streamed bank)", () =>
    scope(() => {
      const agg = makeAggregator();
      const q0 = randn([2, 3, D], { seed: 1, dtype: "float64" });
      for (const N of [3, 4]) {
        const bank = randn([N, 3, D], { seed: 2 + N, dtype: "float64" });
        const full = aggregateFull(agg, q0, bank).toArray();
        expect(aggregateHierarchical(agg, q0, bank, 4).toArray()).toEqual(full);
        expect(aggregateHierarchical(agg, q0, chunks(bank, N === 3 ? [1, 2] : [2, 0, 2]), 4).toArray()).toEqual(full);
      }
      agg.dispose();
    }));

  it("over N > M equals the explicit two-level computation", () =>
    scope(() => {
      const agg = makeAggregator();
      const [Bq, T, N, M] = [2, 3, 7, 3];
      const q0 = randn([Bq, T, D], { seed: 7, dtype: "float64" });
      const bank = randn([N, T, D], { seed: 8, dtype: "float64" });
      // Level 1: groups [0, 3), [3, 6), [6, 7) -> 3 entries per question; then the final aggregation over them.
      const level1 = [0, 3, 6].map((s) => agg.forward(q0, slice(bank, 0, s, Math.min(s + M, N)))); // 3 × (Bq, T, d)
      const twoLevel = agg.forward(q0, stack(level1, 1)); // memory (Bq, 3, T, d)
      const h = aggregateHierarchical(agg, q0, bank, M);
      expect(h.shape).toEqual([Bq, T, D]);
      // The first level runs its groups as one batch, the questions' tokens folded together: the same sums in
      // GEMMs of other shapes, so equal to rounding (float64).
      expectClose(h.data, twoLevel.data, { rtol: 1e-12, atol: 1e-13 });
      // Not the full aggregation (so the test above is not vacuous).
      expect(
        Math.max(...h.toArray().map((v, i) => Math.abs(v - aggregateFull(agg, q0, bank).data[i]!))),
      ).toBeGreaterThan(1e-3);
      agg.dispose();
    }));

  for (const [N, M] of [
    [10, 2],
    [9, 3],
    [16, 4],
    [17, 4],
    [13, 3],
  ] as const)
    it(`N = ${N}, M = ${M}: the streamed levels equal the level-by-level loop, for any chunking`, () =>
      scope(() => {
        const agg = makeAggregator();
        const q0 = randn([2, 2, D], { seed: N, dtype: "float64" });
        const bank = randn([N, 2, D], { seed: 100 + N, dtype: "float64" });
        const want = explicitHierarchical(agg, q0, bank, M).data;
        const tol = { rtol: 1e-12, atol: 1e-13 }; // batched first level: see the test above
        expectClose(aggregateHierarchical(agg, q0, bank, M).data, want, tol);
        const rng = new Rng(N * M);
        const sizes: number[] = [];
        for (let left = N; left > 0;) {
          const n = Math.min(left, rng.int(5));
          sizes.push(n);
          left -= n;
        }
        // Any chunking, and any first-level batch (1 group per call, 2, all), cut across the chunks.
        for (const batchGroups of [undefined, 1, 2])
          expectClose(aggregateHierarchical(agg, q0, chunks(bank, sizes), M, { batchGroups }).data, want, tol);
        agg.dispose();
      }));

  it("handles several questions at once like each question alone", () =>
    scope(() => {
      const agg = makeAggregator();
      const q0 = randn([3, 2, D], { seed: 30, dtype: "float64" });
      const bank = randn([11, 2, D], { seed: 31, dtype: "float64" });
      const all = aggregateHierarchical(agg, q0, bank, 3);
      for (let b = 0; b < 3; b++)
        expectClose(slice(all, 0, b, b + 1).data, aggregateHierarchical(agg, slice(q0, 0, b, b + 1), bank, 3).data, {
          rtol: 1e-12,
          atol: 1e-13,
        });
      agg.dispose();
    }));

  it("accepts an async stream", async () => {
    const agg = makeAggregator();
    const q0 = randn([1, 2, D], { seed: 40, dtype: "float64" });
    const bank = randn([9, 2, D], { seed: 41, dtype: "float64" });
    async function* stream(): AsyncGenerator<Tensor> {
      for (let s = 0; s < 9; s += 4) {
        await Promise.resolve();
        yield slice(bank, 0, s, Math.min(s + 4, 9));
      }
    }
    const got = await aggregateHierarchicalAsync(agg, q0, stream(), 2);
    expect(got.toArray()).toEqual(aggregateHierarchical(agg, q0, bank, 2).toArray());
    expect((await aggregateHierarchicalAsync(agg, q0, bank, 2)).toArray()).toEqual(got.toArray());
    agg.dispose();
  });

  it("gradients (float64) flow into the question tokens and every memory entry, tensor or stream", () => {
    const agg = makeAggregator();
    const q0 = randn([2, 2, D], { seed: 50, dtype: "float64" }).requireGrad();
    const bank = randn([5, 2, D], { seed: 51, dtype: "float64" }).requireGrad();
    gradCheck((q, m) => aggregateHierarchical(agg, q, m, 2), [q0, bank], { maxElements: 40 });
    gradCheck((q, m) => aggregateHierarchical(agg, q, chunks(m, [2, 1, 2]), 2), [q0, bank], { maxElements: 40 });
    q0.dispose();
    bank.dispose();
    agg.dispose();
  });

  it("under noGrad, working memory stays bounded as the streamed bank grows (and nothing leaks)", () =>
    noGrad(() => {
      const agg = makeAggregator("float32");
      const [T, M, chunk] = [4, 4, 8];
      const q0 = randn([2, T, D], { seed: 60 });
      const run = (N: number): number => {
        const before = liveNativeMemory().bytes;
        let peak = 0;
        const rng = new Rng(N);
        function* source(): Generator<Tensor> {
          for (let s = 0; s < N; s += chunk) {
            const c = randn([chunk, T, D], { rng });
            peak = Math.max(peak, liveNativeMemory().bytes - before);
            yield c;
            c.dispose(); // the source frees its chunk once the next one is asked for
          }
        }
        const out = aggregateHierarchical(agg, q0, source(), M, { batchGroups: 2 });
        expect(out.shape).toEqual([2, T, D]);
        out.dispose();
        expect(liveNativeMemory().bytes - before).toBe(0);
        return peak;
      };
      const small = run(64);
      const large = run(1024);
      const entry = 2 * T * D * 4; // bytes of one per-question entry (Bq = 2)
      // Held between chunks: ≤ batchGroups·M bank entries at level 0 (the same for both), ≤ M entries per level
      // above. 64 -> 16 -> 4 (2 levels) vs 1024 -> 256 -> 64 -> 16 -> 4 (4 levels): two more level buffers.
      expect(large - small).toBeLessThanOrEqual(2 * M * entry + 1024);
      expect(large).toBeLessThan((1024 * T * D * 4) / 4); // far below the bank's own size
      q0.dispose();
      agg.dispose();
    }));

  it("frees its buffers when the stream fails midway (noGrad)", () =>
    noGrad(() => {
      const agg = makeAggregator("float32");
      const q0 = randn([1, 2, D], { seed: 80 });
      const good = randn([7, 2, D], { seed: 81 });
      const bad = randn([1, 3, D], { seed: 82 });
      const before = liveNativeMemory().bytes;
      expect(() => aggregateHierarchical(agg, q0, [good, bad], 2)).toThrow(/slots per entry/);
      expect(liveNativeMemory().bytes).toBe(before);
      for (const t of [q0, good, bad]) t.dispose();
      agg.dispose();
    }));

  it("rejects a group size below 2 and an empty bank", () =>
    scope(() => {
      const agg = makeAggregator();
      const q0 = randn([1, 2, D], { seed: 70, dtype: "float64" });
      const bank = randn([3, 2, D], { seed: 71, dtype: "float64" });
      expect(() => aggregateHierarchical(agg, q0, bank, 1)).toThrow(MacLmError);
      expect(() => aggregateHierarchical(agg, q0, [], 2)).toThrow(/empty/);
      expect(() => aggregateHierarchical(agg, q0, bank, 2, { batchGroups: 0 })).toThrow(/batchGroups/);
      expect(() =>
        aggregateHierarchical(agg, q0, [slice(bank, 0, 0, 1), randn([1, 3, D], { dtype: "float64" })], 2),
      ).toThrow(/slots per entry/);
      agg.dispose();
    }));
});
