import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { Tensor, concat, grad, mul, permute, reshape, scope, slice, split, stack, sum, transpose } from "../index.js";
import { randn } from "../random.js";
import { refConcat, refPermute, refSlice } from "../reference/layout.js";

const exact = { rtol: 0, atol: 0 };

describe("permute and transpose", () => {
  const cases: [number[], number[]][] = [
    [
      [3, 4],
      [1, 0],
    ],
    [
      [2, 3, 4, 5],
      [0, 2, 1, 3],
    ], // (B, T, NH, HS) -> (B, NH, T, HS)
    [
      [2, 3, 4, 5],
      [0, 1, 3, 2],
    ], // batched transpose of the last two dims (tiled path)
    [
      [2, 3, 4],
      [2, 0, 1],
    ],
    [
      [1, 3, 1, 4],
      [3, 2, 1, 0],
    ], // size-1 dims
    [
      [2, 1, 3, 2, 1, 2],
      [5, 3, 1, 0, 4, 2],
    ], // 6-D
    [
      [4, 5],
      [0, 1],
    ], // identity
    [
      [37, 70, 3],
      [1, 0, 2],
    ], // odd sizes, contiguous runs of 3
    [
      [3, 65, 97],
      [0, 2, 1],
    ], // odd sizes, partial tiles
    [
      [8, 128, 6, 64],
      [0, 2, 1, 3],
    ], // large: threaded run copies
    [
      [300, 400],
      [1, 0],
    ], // large: threaded tiles
  ];
  for (const [shape, perm] of cases)
    it(`permute ${JSON.stringify(shape)} by ${JSON.stringify(perm)} matches the reference`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const) {
          const x = randn(shape, { seed: 1, dtype });
          const y = permute(x, perm);
          expect(y.shape).toEqual(perm.map((p) => shape[p]));
          expectClose(y.data, refPermute(x.data, shape, perm), exact, dtype);
        }
      }));

  it("permute backward is the inverse permutation; transpose swaps two axes; int32 works", () =>
    scope(() => {
      const x = randn([2, 3, 4], { seed: 2, dtype: "float64" }).requireGrad();
      gradCheck((t) => permute(t, [2, 0, 1]), [x]);
      gradCheck((t) => transpose(t, -1, 0), [x]);
      const t = transpose(x, 0, 2);
      expect(t.shape).toEqual([4, 3, 2]);
      expectClose(t.data, refPermute(x.data, [2, 3, 4], [2, 1, 0]), exact);
      const ids = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3], "int32");
      expect(permute(ids, [1, 0]).toArray()).toEqual([1, 4, 2, 5, 3, 6]);
    }));

  it("errors name the op and the shape", () =>
    scope(() => {
      const x = Tensor.zeros([2, 3]);
      expect(() => permute(x, [0, 0])).toThrow(/permute: axes \[0, 0\] are not a permutation of the dims of \[2, 3\]/);
      expect(() => permute(x, [0])).toThrow(/not a permutation/);
      expect(() => transpose(x, 0, 2)).toThrow(/transpose: axis 2 is out of range for shape \[2, 3\]/);
    }));
});

describe("reshape", () => {
  it("is a view with autograd; -1 infers a dim", () =>
    scope(() => {
      const x = randn([2, 6], { seed: 3, dtype: "float64" }).requireGrad();
      const y = reshape(x, [3, -1]);
      expect(y.shape).toEqual([3, 4]);
      expect(y.data.buffer).toBe(x.data.buffer);
      gradCheck((t) => mul(reshape(t, [4, 3]), reshape(t, [4, 3])), [x]);
      expect(() => reshape(x, [5, -1])).toThrow(/reshape: cannot view \[2, 6\] \(12 elements\) as \[5, -1\]/);
      expect(() => reshape(x, [-1, -1])).toThrow(/reshape: cannot view/);
      expect(() => reshape(x, [3, 3])).toThrow(/reshape: cannot view \[2, 6\] \(12 elements\) as \[3, 3\]/);
    }));
});

describe("slice, split, concat, stack", () => {
  it("slice matches the reference on every axis, with negative bounds; backward fills zeros", () =>
    scope(() => {
      const shape = [3, 5, 4];
      for (const dtype of ["float32", "float64"] as const) {
        const x = randn(shape, { seed: 4, dtype });
        for (let a = 0; a < 3; a++) {
          const y = slice(x, a, 1, shape[a]! - 1);
          expect(y.shape).toEqual(shape.map((d, i) => (i === a ? d - 2 : d)));
          expectClose(y.data, refSlice(x.data, shape, a, 1, shape[a]! - 1), exact);
        }
        expectClose(slice(x, -2, -3).data, refSlice(x.data, shape, 1, 2, 5), exact);
      }
      const x = randn(shape, { seed: 5, dtype: "float64" }).requireGrad();
      gradCheck((t) => slice(t, 1, 2, 4), [x]);
      const [d] = grad(sum(slice(x, 1, 2, 4)), [x]);
      expect(refSlice(d!.data, shape, 1, 0, 2).every((v) => v === 0)).toBe(true);
      expect(refSlice(d!.data, shape, 1, 2, 4).every((v) => v === 1)).toBe(true);
      expect(() => slice(x, 1, 3, 6)).toThrow(/slice: range \[3, 6\) is out of bounds for axis 1 of \[3, 5, 4\]/);
    }));

  it("large slice and concat (threaded block copies), float32 forward and backward", () =>
    scope(() => {
      const shape = [300, 97, 8];
      const x = randn(shape, { seed: 20 }).requireGrad();
      const y = slice(x, 1, 13, 90);
      expectClose(y.data, refSlice(x.data, shape, 1, 13, 90), exact);
      const g = randn(y.shape, { seed: 21 });
      const [d] = grad(y, [x], { gradOutput: g });
      expectClose(refSlice(d!.data, shape, 1, 13, 90), g.data, exact);
      expect(refSlice(d!.data, shape, 1, 90, 97).every((v) => v === 0)).toBe(true);
      const parts = split(x, [40, 57], 1);
      expectClose(concat(parts, 1).data, x.data, exact);
    }));

  it("concat matches the reference on every axis, with backward; int32 too", () =>
    scope(() => {
      for (const dtype of ["float32", "float64"] as const)
        for (let a = 0; a < 3; a++) {
          const shapes = [2, 1, 3].map((k) => [2, 3, 4].map((d, i) => (i === a ? k : d)));
          const xs = shapes.map((s, i) => randn(s, { seed: 10 + i, dtype }));
          const y = concat(xs, a);
          expectClose(
            y.data,
            refConcat(
              xs.map((x) => x.data),
              shapes,
              a,
            ),
            exact,
            `axis ${a}`,
          );
        }
      const a = randn([2, 3], { seed: 6, dtype: "float64" }).requireGrad();
      const b = randn([2, 2], { seed: 7, dtype: "float64" }).requireGrad();
      gradCheck((x, y) => concat([x, y, x], -1), [a, b]);
      const ids = concat([Tensor.from([1, 2], [1, 2], "int32"), Tensor.from([3, 4], [1, 2], "int32")], 0);
      expect(ids.dtype).toBe("int32");
      expect(ids.toArray()).toEqual([1, 2, 3, 4]);
      expect(() => concat([a, Tensor.zeros([3, 3], "float64")], 1)).toThrow(
        /concat: shapes \[2, 3\], \[3, 3\] differ outside axis 1/,
      );
      expect(() => concat([a, Tensor.zeros([2, 3])], 0)).toThrow(/concat: dtype mismatch: float64 vs float32/);
    }));

  it("split by sizes and by chunk size round-trips through concat; stack adds an axis", () =>
    scope(() => {
      const x = randn([4, 7], { seed: 8, dtype: "float64" }).requireGrad();
      const parts = split(x, [2, 5], 1);
      expect(parts.map((p) => p.shape)).toEqual([
        [4, 2],
        [4, 5],
      ]);
      expectClose(concat(parts, 1).data, x.data, exact);
      const chunks = split(x, 3, -1);
      expect(chunks.map((p) => p.dim(1))).toEqual([3, 3, 1]);
      expectClose(concat(chunks, 1).data, x.data, exact);
      gradCheck((t) => mul(split(t, 2, 0)[0]!, split(t, 2, 0)[1]!), [x]);
      expect(() => split(x, [3, 3], 1)).toThrow(/split: sizes \[3, 3\] do not add up to 7 \(axis 1 of \[4, 7\]\)/);

      const a = randn([2, 3], { seed: 9, dtype: "float64" }).requireGrad();
      const b = randn([2, 3], { seed: 10, dtype: "float64" }).requireGrad();
      for (const axis of [0, 1, 2, -1]) {
        const s = stack([a, b], axis);
        const an = axis < 0 ? axis + 3 : axis;
        expect(s.shape).toEqual([2, 3].slice(0, an).concat([2], [2, 3].slice(an)));
        expectClose(slice(s, an, 1, 2).data, b.data, exact);
      }
      gradCheck((x, y) => stack([x, y], 1), [a, b]);
      expect(() => stack([a, Tensor.zeros([3, 2], "float64")])).toThrow(/stack: shapes differ: \[2, 3\], \[3, 2\]/);
    }));
});
