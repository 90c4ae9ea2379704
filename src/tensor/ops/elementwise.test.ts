import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { Tensor, add, affine, axpyInPlace, div, expand, mul, scope, sub } from "../index.js";
import { randn } from "../random.js";
import { refBinary } from "../reference/basic.js";

const fns = { add, sub, mul, div };
const refs = {
  add: (x: number, y: number) => x + y,
  sub: (x: number, y: number) => x - y,
  mul: (x: number, y: number) => x * y,
  div: (x: number, y: number) => x / y,
};

const cases: [number[], number[]][] = [
  [
    [3, 4],
    [3, 4],
  ], // same shape
  [[2, 3, 5], [5]], // row / bias
  [
    [2, 3, 5],
    [3, 5],
  ], // trailing block
  [
    [2, 3, 5],
    [3, 1],
  ], // column
  [
    [4, 1, 3],
    [1, 5, 1],
  ], // both broadcast
  [
    [2, 1, 1, 6],
    [2, 3, 4, 1],
  ], // attention-mask-like
  [[], [3]], // scalar
];

describe("elementwise", () => {
  for (const [name, f] of Object.entries(fns) as [keyof typeof fns, typeof add][])
    for (const [sa, sb] of cases)
      it(`${name} ${JSON.stringify(sa)} ∘ ${JSON.stringify(sb)} matches the reference, float32 and float64`, () =>
        scope(() => {
          for (const dtype of ["float32", "float64"] as const) {
            const a = randn(sa, { seed: 1, dtype });
            const b = randn(sb, { seed: 2, dtype, mean: name === "div" ? 3 : 0 });
            const out = f(a, b);
            const ref = refBinary(refs[name], a.data, sa, b.data, sb, out.shape);
            expectClose(out.data, ref, { rtol: dtype === "float32" ? 1e-6 : 1e-12 }, name);
          }
        }));

  for (const [name, f] of Object.entries(fns) as [keyof typeof fns, typeof add][])
    it(`${name} backward matches finite differences under broadcasting`, () =>
      scope(() => {
        for (const [sa, sb] of cases.slice(1, 6)) {
          const a = randn(sa, { seed: 3, dtype: "float64" }).requireGrad();
          const b = randn(sb, { seed: 4, dtype: "float64", mean: name === "div" ? 3 : 0 }).requireGrad();
          gradCheck(f, [a, b]);
        }
      }));

  it("affine and axpy", () =>
    scope(() => {
      const a = randn([7, 3], { seed: 5, dtype: "float64" }).requireGrad();
      gradCheck((x) => affine(x, -2.5, 0.75), [a]);
      const y = Tensor.from([1, 2, 3], [3], "float32");
      axpyInPlace(y, Tensor.from([1, 1, 1], [3], "float32"), 2);
      expect(y.toArray()).toEqual([3, 4, 5]);
    }));

  it("names the op and the shapes when shapes do not broadcast", () =>
    scope(() => {
      expect(() => add(Tensor.zeros([2, 3]), Tensor.zeros([4]))).toThrow(
        /add: shapes \[2, 3\] and \[4\] do not broadcast/,
      );
      expect(() => add(Tensor.zeros([2]), Tensor.zeros([2], "float64"))).toThrow(/add: dtype mismatch/);
    }));

  it("a large elementwise op runs on all threads and stays exact", () =>
    scope(() => {
      const a = randn([1 << 18], { seed: 6 });
      const b = randn([1 << 18], { seed: 7 });
      const out = add(a, b);
      const ref = refBinary(refs.add, a.data, a.shape, b.data, b.shape, out.shape);
      expectClose(out.data, ref, { rtol: 1e-6 }, "add large");
    }));
});

describe("expand", () => {
  it("copies a broadcast operand to the target shape and sums gradients back", () =>
    scope(() => {
      const x = randn([1, 3, 1], { seed: 9, dtype: "float64" }).requireGrad();
      const y = expand(x, [2, 3, 4]);
      expect(y.shape).toEqual([2, 3, 4]);
      const ref = refBinary((a, b) => a + b, new Float64Array(24), [2, 3, 4], x.data, x.shape, [2, 3, 4]);
      expectClose(y.data, ref, { rtol: 0 });
      gradCheck((t) => expand(t, [2, 3, 4]), [x]);
      expect(() => expand(x, [3, 2])).toThrow(/expand/);
    }));
});
