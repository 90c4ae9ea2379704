import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { MacLmError, ShapeError } from "../../errors.js";
import { Tensor, grad, kernels, layerNorm, noGrad, registerKernels, rmsNorm, scope } from "../index.js";
import { randn } from "../random.js";
import { refLayerNorm, refLayerNormBackward, refRmsNorm, refRmsNormBackward } from "../reference/norm.js";

const dtypes = ["float32", "float64"] as const;
const tol = (dtype: string) => (dtype === "float32" ? { rtol: 1e-5, atol: 2e-6 } : { rtol: 1e-12, atol: 1e-13 });

// [rows shape, C]: C < 8 (tail only), odd C (pack + tail), C = 1, and sizes that take the threaded path
// (rows·C ≥ 2·2^14) with more rows than the 64 dweight blocks.
const shapes: number[][] = [[3, 5], [2, 3, 37], [4, 64], [1, 1], [7], [700, 96], [130, 259]];

const split = (shape: number[]): [number, number] => {
  const c = shape[shape.length - 1]!;
  return [shape.reduce((a, b) => a * b, 1) / c, c];
};

/** Replaces a CPU kernel while fn runs, recording the arguments of each call. */
function spyKernel<K extends "layerNormBackward" | "rmsNormBackward">(name: K, fn: () => void): unknown[][] {
  const orig = kernels("cpu")[name];
  const calls: unknown[][] = [];
  registerKernels("cpu", {
    [name]: (...args: unknown[]) => {
      calls.push(args);
      (orig as (...a: unknown[]) => void)(...args);
    },
  });
  try {
    fn();
  } finally {
    registerKernels("cpu", { [name]: orig });
  }
  return calls;
}

describe("layerNorm", () => {
  for (const shape of shapes)
    it(`forward ${JSON.stringify(shape)} matches the reference (y, mean, rstd), float32 and float64, with and without bias`, () =>
      scope(() => {
        const [rows, c] = split(shape);
        for (const dtype of dtypes) {
          const x = randn(shape, { seed: 1, dtype, mean: 0.5, std: 2 });
          const w = randn([c], { seed: 2, dtype });
          const b = randn([c], { seed: 3, dtype });
          for (const bias of [b, null]) {
            const ref = refLayerNorm(x.data, w.data, bias?.data ?? null, rows, c, 1e-5);
            expectClose(layerNorm(x, w, bias, 1e-5).data, ref.y, tol(dtype), `y ${dtype}`);
            const out = Tensor.empty(x.shape, dtype);
            const mean = Tensor.empty(shape.slice(0, -1), dtype);
            const rstd = Tensor.empty(shape.slice(0, -1), dtype);
            kernels("cpu").layerNormForward(out, mean, rstd, x, w, bias, 1e-5);
            expectClose(mean.data, ref.mean, tol(dtype), `mean ${dtype}`);
            expectClose(rstd.data, ref.rstd, tol(dtype), `rstd ${dtype}`);
          }
        }
      }));

  it("is accurate for rows with a large mean (two-pass variance)", () =>
    scope(() => {
      const x = randn([8, 300], { seed: 4, mean: 1000 });
      const w = Tensor.full([300], 1);
      const ref = refLayerNorm(x.data, w.data, null, 8, 300, 1e-5);
      expectClose(layerNorm(x, w).data, ref.y, { rtol: 1e-3, atol: 1e-3 });
    }));

  it("a constant row normalises to the bias; C = 1 gives the bias", () =>
    scope(() => {
      const w = Tensor.from([2, 3, 4], [3]);
      const b = Tensor.from([0.5, -1, 7], [3]);
      expect(layerNorm(Tensor.full([2, 3], 5), w, b).toArray()).toEqual([0.5, -1, 7, 0.5, -1, 7]);
      expect(
        layerNorm(Tensor.from([3, -8], [2, 1]), Tensor.from([2], [1]), Tensor.from([0.25], [1])).toArray(),
      ).toEqual([0.25, 0.25]);
    }));

  it("backward matches finite differences (x, weight, bias; without bias)", () =>
    scope(() => {
      const x = randn([3, 7], { seed: 5, dtype: "float64" }).requireGrad();
      const w = randn([7], { seed: 6, dtype: "float64" }).requireGrad();
      const b = randn([7], { seed: 7, dtype: "float64" }).requireGrad();
      gradCheck((a, ww, bb) => layerNorm(a, ww, bb), [x, w, b]);
      gradCheck((a, ww) => layerNorm(a, ww, null), [x, w]);
      const x3 = randn([2, 2, 9], { seed: 8, dtype: "float64" }).requireGrad();
      const w9 = randn([9], { seed: 9, dtype: "float64" }).requireGrad();
      gradCheck((a, ww) => layerNorm(a, ww, null, 1e-3), [x3, w9]);
    }));

  for (const shape of [
    [5, 3],
    [2, 3, 37],
    [700, 96],
    [130, 259],
  ])
    it(`backward ${JSON.stringify(shape)} matches the reference Jacobian, float32 and float64`, () =>
      scope(() => {
        const [rows, c] = split(shape);
        for (const dtype of dtypes) {
          const x = randn(shape, { seed: 10, dtype }).requireGrad();
          const w = randn([c], { seed: 11, dtype }).requireGrad();
          const b = randn([c], { seed: 12, dtype }).requireGrad();
          const g = randn(shape, { seed: 13, dtype });
          const [dx, dw, db] = grad(layerNorm(x, w, b), [x, w, b], { gradOutput: g });
          const ref = refLayerNormBackward(g.data, x.data, w.data, rows, c, 1e-5);
          // Parameter gradients sum over rows: allow for float32 accumulation over `rows` terms.
          const sumTol = dtype === "float32" ? { rtol: 1e-5, atol: 1e-6 * Math.sqrt(rows) * 4 } : tol(dtype);
          expectClose(dx!.data, ref.dx, dtype === "float32" ? { rtol: 1e-4, atol: 1e-5 } : tol(dtype), `dx ${dtype}`);
          expectClose(dw!.data, ref.dw, sumTol, `dweight ${dtype}`);
          expectClose(db!.data, ref.db, sumTol, `dbias ${dtype}`);
        }
      }));

  it("parameter gradients are bitwise deterministic across runs", () =>
    scope(() => {
      const x = randn([1000, 48], { seed: 14 }).requireGrad();
      const w = randn([48], { seed: 15 }).requireGrad();
      const b = randn([48], { seed: 16 }).requireGrad();
      const g = randn([1000, 48], { seed: 17 });
      const run = () => grad(layerNorm(x, w, b), [x, w, b], { gradOutput: g }).map((t) => t.toArray());
      const first = run();
      for (let i = 0; i < 3; i++) expect(run()).toEqual(first);
    }));

  it("computes only the gradients asked for: a frozen weight and bias cost nothing, a frozen input skips dx", () =>
    scope(() => {
      const [rows, c] = [6, 10];
      const x = randn([rows, c], { seed: 18, dtype: "float64" });
      const w = randn([c], { seed: 19, dtype: "float64" });
      const b = randn([c], { seed: 20, dtype: "float64" });
      const g = randn([rows, c], { seed: 21, dtype: "float64" });
      const ref = refLayerNormBackward(g.data, x.data, w.data, rows, c, 1e-5);

      x.requireGrad();
      let dx: Tensor | undefined;
      const calls1 = spyKernel(
        "layerNormBackward",
        () => void ([dx] = grad(layerNorm(x, w, b), [x], { gradOutput: g })),
      );
      expect(calls1.map((a) => [a[0] !== null, a[1] !== null, a[2] !== null])).toEqual([[true, false, false]]);
      expectClose(dx!.data, ref.dx, tol("float64"));

      x.requireGrad(false);
      w.requireGrad();
      let dw: Tensor | undefined;
      const calls2 = spyKernel(
        "layerNormBackward",
        () => void ([dw] = grad(layerNorm(x, w, b), [w], { gradOutput: g })),
      );
      expect(calls2.map((a) => [a[0] !== null, a[1] !== null, a[2] !== null])).toEqual([[false, true, false]]);
      expectClose(dw!.data, ref.dw, tol("float64"));
    }));

  it("records nothing under noGrad() or for inputs without grad", () =>
    scope(() => {
      const x = randn([2, 4], { seed: 22 }).requireGrad();
      const w = Tensor.full([4], 1);
      expect(noGrad(() => layerNorm(x, w)).node).toBeNull();
      expect(layerNorm(randn([2, 4], { seed: 23 }), w).node).toBeNull();
      expect(layerNorm(x, w).node?.op).toBe("layerNorm");
    }));

  // Zero-size tensors are created outside scope(): disposing one fails in core (buffer.cc's free cannot find a
  // zero-byte buffer), which is not this op's concern.
  it("handles zero rows", () => {
    const x = Tensor.zeros([0, 4], "float64").requireGrad();
    const w = Tensor.from([1, 2, 3, 4], [4], "float64").requireGrad();
    const y = layerNorm(x, w);
    expect(y.shape).toEqual([0, 4]);
    const [dw] = grad(y, [w], { gradOutput: Tensor.zeros([0, 4], "float64") });
    expect(dw!.toArray()).toEqual([0, 0, 0, 0]);
    expect(rmsNorm(x, w).shape).toEqual([0, 4]);
  });

  it("names the op and the shapes on bad arguments", () =>
    scope(() => {
      const x = Tensor.zeros([2, 3]);
      expect(() => layerNorm(x, Tensor.zeros([4]))).toThrow(ShapeError);
      expect(() => layerNorm(x, Tensor.zeros([4]))).toThrow(
        /layerNorm: weight \[4\] does not match input \[2, 3\] \(expected \[3\]\)/,
      );
      expect(() => layerNorm(x, Tensor.zeros([3]), Tensor.zeros([3, 1]))).toThrow(
        /layerNorm: bias \[3, 1\] does not match input \[2, 3\]/,
      );
      expect(() => layerNorm(x, Tensor.zeros([3], "float64"))).toThrow(
        /layerNorm: dtype mismatch: input float32 vs weight float64/,
      );
      expect(() => layerNorm(Tensor.zeros([], "float32"), Tensor.zeros([1]))).toThrow(
        /layerNorm: input \[\] needs a last dimension/,
      );
      expect(() => layerNorm(Tensor.zeros([2, 3], "int32"), Tensor.zeros([3]))).toThrow(MacLmError);
      expect(() => layerNorm(x, Tensor.zeros([3]), null, -1)).toThrow(/layerNorm: eps must be/);
    }));

  it("rejects an empty last dimension", () => {
    const empty = Tensor.zeros([2, 0]);
    expect(() => layerNorm(empty, Tensor.zeros([0]))).toThrow(
      /layerNorm: input \[2, 0\] needs a last dimension of size ≥ 1/,
    );
  });
});

describe("rmsNorm", () => {
  for (const shape of shapes)
    it(`forward ${JSON.stringify(shape)} matches the reference (y, rstd), float32 and float64`, () =>
      scope(() => {
        const [rows, c] = split(shape);
        for (const dtype of dtypes) {
          const x = randn(shape, { seed: 30, dtype, mean: 0.3 });
          const w = randn([c], { seed: 31, dtype });
          const ref = refRmsNorm(x.data, w.data, rows, c, 1e-6);
          expectClose(rmsNorm(x, w).data, ref.y, tol(dtype), `y ${dtype}`);
          const out = Tensor.empty(x.shape, dtype);
          const rstd = Tensor.empty(shape.slice(0, -1), dtype);
          kernels("cpu").rmsNormForward(out, rstd, x, w, 1e-6);
          expectClose(rstd.data, ref.rstd, tol(dtype), `rstd ${dtype}`);
        }
      }));

  it("backward matches finite differences", () =>
    scope(() => {
      const x = randn([3, 7], { seed: 32, dtype: "float64" }).requireGrad();
      const w = randn([7], { seed: 33, dtype: "float64" }).requireGrad();
      gradCheck((a, ww) => rmsNorm(a, ww, 1e-5), [x, w]);
      const x1 = randn([4, 1], { seed: 34, dtype: "float64" }).requireGrad();
      const w1 = randn([1], { seed: 35, dtype: "float64" }).requireGrad();
      gradCheck((a, ww) => rmsNorm(a, ww, 0.5), [x1, w1]);
    }));

  for (const shape of [
    [5, 3],
    [2, 3, 37],
    [700, 96],
    [130, 259],
  ])
    it(`backward ${JSON.stringify(shape)} matches the reference Jacobian, float32 and float64`, () =>
      scope(() => {
        const [rows, c] = split(shape);
        for (const dtype of dtypes) {
          const x = randn(shape, { seed: 36, dtype }).requireGrad();
          const w = randn([c], { seed: 37, dtype }).requireGrad();
          const g = randn(shape, { seed: 38, dtype });
          const [dx, dw] = grad(rmsNorm(x, w), [x, w], { gradOutput: g });
          const ref = refRmsNormBackward(g.data, x.data, w.data, rows, c, 1e-6);
          expectClose(dx!.data, ref.dx, dtype === "float32" ? { rtol: 1e-4, atol: 1e-5 } : tol(dtype), `dx ${dtype}`);
          expectClose(
            dw!.data,
            ref.dw,
            dtype === "float32" ? { rtol: 1e-5, atol: 4e-6 * Math.sqrt(rows) } : tol(dtype),
            `dweight ${dtype}`,
          );
        }
      }));

  it("a frozen weight costs nothing", () =>
    scope(() => {
      const x = randn([6, 10], { seed: 39, dtype: "float64" }).requireGrad();
      const w = randn([10], { seed: 40, dtype: "float64" });
      const calls = spyKernel(
        "rmsNormBackward",
        () => void grad(rmsNorm(x, w), [x], { gradOutput: randn([6, 10], { seed: 41, dtype: "float64" }) }),
      );
      expect(calls.map((a) => [a[0] !== null, a[1] !== null])).toEqual([[true, false]]);
    }));

  it("names the op and the shapes on bad arguments", () =>
    scope(() => {
      expect(() => rmsNorm(Tensor.zeros([2, 3]), Tensor.zeros([2]))).toThrow(
        /rmsNorm: weight \[2\] does not match input \[2, 3\]/,
      );
      expect(() => rmsNorm(Tensor.zeros([2, 3]), Tensor.zeros([3]), Number.NaN)).toThrow(/rmsNorm: eps must be/);
    }));
});
