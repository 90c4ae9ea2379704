import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { Tensor, embedding, grad, indexSelect, noGrad, scope } from "../index.js";
import { randint, randn } from "../random.js";
import { refEmbedding, refEmbeddingBackward } from "../reference/embedding.js";

describe("embedding", () => {
  it("gathers rows, float32 and float64, for 1-D and 2-D ids", () =>
    scope(() => {
      for (const dtype of ["float32", "float64"] as const)
        for (const idShape of [[7], [3, 5], [1, 1]]) {
          const [V, C] = [11, 6];
          const table = randn([V, C], { seed: 1, dtype });
          const ids = randint(idShape, V, { seed: 2 });
          const out = embedding(ids, table);
          expect(out.shape).toEqual([...idShape, C]);
          expect(out.dtype).toBe(dtype);
          expectClose(out.data, refEmbedding(ids.data, table.data, C), { rtol: 0, atol: 0 }, "embedding");
        }
    }));

  it("backward scatter-adds repeated ids, matches the reference and finite differences", () =>
    scope(() => {
      const [V, C] = [5, 3];
      const table = randn([V, C], { seed: 3, dtype: "float64" }).requireGrad();
      const ids = Tensor.from([0, 2, 2, 4, 0, 2], [2, 3], "int32");
      gradCheck((t) => embedding(ids, t), [table]);
      const g = randn([2, 3, C], { seed: 4, dtype: "float64" });
      const [d] = grad(embedding(ids, table), [table], { gradOutput: g });
      expectClose(d!.data, refEmbeddingBackward(ids.data, g.data, V, C), { rtol: 1e-15, atol: 0 });
      // Row 1 and row 3 are never looked up: their gradient is exactly zero.
      expect(Array.from(d!.data.subarray(C, 2 * C))).toEqual([0, 0, 0]);
    }));

  it("large backward (threaded path) matches the reference in float32 and is bitwise reproducible", () =>
    scope(() => {
      const [V, C, N] = [300, 200, 2000]; // many duplicates: 2000 ids over 300 rows
      const table = randn([V, C], { seed: 5 }).requireGrad();
      const ids = randint([N], V, { seed: 6 });
      const g = randn([N, C], { seed: 7 });
      const ref = refEmbeddingBackward(ids.data, g.data, V, C);
      const run = () => grad(embedding(ids, table), [table], { gradOutput: g })[0]!;
      const a = run();
      expectClose(a.data, ref, { rtol: 1e-5, atol: 1e-5 }, "dtable");
      // Each dtable element is summed by one thread in order of n (see embedding.cc), so runs agree bit for bit.
      const b = run();
      expect(Buffer.compare(Buffer.from(a.f32.buffer), Buffer.from(b.f32.buffer))).toBe(0);
    }));

  it("a frozen table records nothing", () =>
    scope(() => {
      const table = randn([4, 2], { seed: 8 });
      const out = embedding(Tensor.from([1, 3], [2], "int32"), table);
      expect(out.requiresGrad).toBe(false);
      expect(out.node).toBeNull();
      expectClose(out.data, refEmbedding([1, 3], table.data, 2), { rtol: 0, atol: 0 });
    }));

  it("out-of-range ids throw a clear error naming the id, its position and V", () =>
    scope(() => {
      const table = randn([10, 4], { seed: 10 });
      expect(() => embedding(Tensor.from([1, 10, 2], [3], "int32"), table)).toThrow(
        /embedding: id 10 \(at flat position 1 of \[3\]\) is outside \[0, 10\) for table \[10, 4\]/,
      );
      expect(() => embedding(Tensor.from([-1], [1], "int32"), table)).toThrow(/id -1 .* outside \[0, 10\)/);
      expect(() => embedding(Tensor.from([1], [1], "float32"), table)).toThrow(
        /embedding: ids must be int32, got float32/,
      );
      expect(() => embedding(Tensor.from([1], [1], "int32"), randn([10]))).toThrow(
        /embedding: table must be 2-D \(V, C\), got \[10\]/,
      );
    }));
});

describe("indexSelect", () => {
  it("selects rows along axis 0 (repeats allowed), float and int32, with backward", () =>
    scope(() => {
      const x = randn([4, 2, 3], { seed: 11, dtype: "float64" }).requireGrad();
      const idx = Tensor.from([3, 0, 3], [3], "int32");
      const y = indexSelect(x, idx);
      expect(y.shape).toEqual([3, 2, 3]);
      expectClose(y.data, refEmbedding(idx.data, x.data, 6), { rtol: 0, atol: 0 });
      gradCheck((t) => indexSelect(t, idx), [x]);
      const tokens = Tensor.from([10, 11, 20, 21, 30, 31], [3, 2], "int32");
      const re = noGrad(() => indexSelect(tokens, Tensor.from([2, 2, 0], [3], "int32")));
      expect(re.dtype).toBe("int32");
      expect(re.toArray()).toEqual([30, 31, 30, 31, 10, 11]);
      expect(() => indexSelect(x, Tensor.from([4], [1], "int32"))).toThrow(
        /indexSelect: index 4 .* outside \[0, 4\) for input \[4, 2, 3\]/,
      );
    }));
});
