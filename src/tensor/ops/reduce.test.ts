import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { Tensor, grad, mean, scope, sum } from "../index.js";
import { randn } from "../random.js";
import { refSum } from "../reference/reduce.js";

const shapes: number[][] = [[1], [7], [3, 5], [2, 1, 4], [4, 3, 300], [5, 2, 3, 2]];

describe("sum and mean", () => {
  for (const [name, f] of [
    ["sum", sum],
    ["mean", mean],
  ] as const) {
    it(`${name} over all elements and over each axis matches the reference, float32 and float64`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const)
          for (const shape of shapes) {
            const x = randn(shape, { seed: 1, dtype });
            const tol = { rtol: dtype === "float32" ? 1e-6 : 1e-13, atol: dtype === "float32" ? 1e-6 : 1e-13 };
            const all = f(x);
            expect(all.shape).toEqual([]);
            expectClose(all.data, refSum(x.data, shape, undefined, name === "mean"), tol, `${name} all ${shape}`);
            for (let a = 0; a < shape.length; a++) {
              const y = f(x, { axis: a });
              expect(y.shape).toEqual(shape.filter((_, i) => i !== a));
              expectClose(y.data, refSum(x.data, shape, a, name === "mean"), tol, `${name} axis ${a} of ${shape}`);
              const k = f(x, { axis: a - shape.length, keepDim: true });
              expect(k.shape).toEqual(shape.map((d, i) => (i === a ? 1 : d)));
              expectClose(k.data, y.data, { rtol: 0, atol: 0 });
            }
            expect(f(x, { keepDim: true }).shape).toEqual(shape.map(() => 1));
          }
      }));

    it(`${name} backward broadcasts the gradient (finite differences)`, () =>
      scope(() => {
        const x = randn([3, 4, 5], { seed: 2, dtype: "float64" }).requireGrad();
        gradCheck((t) => f(t), [x]);
        for (const axis of [0, 1, 2, -1]) gradCheck((t) => f(t, { axis }), [x]);
        gradCheck((t) => f(t, { axis: 1, keepDim: true }), [x]);
      }));
  }

  it("float32 full sums accumulate in double: exact on values that defeat float accumulation", () =>
    scope(() => {
      // 1e8 followed by 1e6 ones (as float32: each 1 is lost when added to 1e8 in float).
      const n = 1_000_001;
      const x = Tensor.full([n], 1);
      x.data[0] = 1e8;
      expect(sum(x).item()).toBe(1e8 + 1e6);
      expect(mean(x).item()).toBeCloseTo((1e8 + 1e6) / n, 0);
      // Large axis reductions too (threaded path, inner > 1 and inner == 1).
      const y = randn([64, 513, 3], { seed: 3 });
      expectClose(sum(y, { axis: 1 }).data, refSum(y.data, y.shape, 1), { rtol: 1e-6, atol: 1e-5 });
      expectClose(sum(y.reshapeView([64 * 3, 513]), { axis: 1 }).data, refSum(y.data, [192, 513], 1), {
        rtol: 1e-6,
        atol: 1e-5,
      });
    }));

  it("float32 backward on a large tensor broadcasts g exactly (threaded path)", () =>
    scope(() => {
      const x = randn([33, 257, 5], { seed: 4 }).requireGrad();
      const g = randn([33, 5], { seed: 5 });
      const [d] = grad(mean(x, { axis: 1 }), [x], { gradOutput: g });
      const expected = new Float64Array(x.size);
      for (let o = 0; o < 33; o++)
        for (let k = 0; k < 257; k++)
          for (let i = 0; i < 5; i++)
            expected[(o * 257 + k) * 5 + i] = Math.fround(g.data[o * 5 + i]! * Math.fround(1 / 257));
      expectClose(d!.data, expected, { rtol: 0, atol: 0 });
      const [d2] = grad(sum(x), [x]);
      expect(d2!.data.every((v) => v === 1)).toBe(true);
    }));

  it("rejects a bad axis and integer tensors", () =>
    scope(() => {
      expect(() => sum(Tensor.zeros([2, 3]), { axis: 2 })).toThrow(/sum: axis 2 is out of range for shape \[2, 3\]/);
      expect(() => mean(Tensor.zeros([2, 3]), { axis: -3 })).toThrow(
        /mean: axis -3 is out of range for shape \[2, 3\]/,
      );
      expect(() => sum(Tensor.zeros([2], "int32"))).toThrow(/sum: expected a float32 or float64 tensor, got int32/);
    }));
});
