import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { Tensor, crossEntropy, grad, logSoftmax, noGrad, scope } from "../index.js";
import { randint, randn } from "../random.js";
import { refCrossEntropy, refCrossEntropyBackward, refLogSoftmax, refLogSoftmaxBackward } from "../reference/loss.js";

const reductions = ["mean", "sum", "none"] as const;

describe("crossEntropy", () => {
  for (const reduction of reductions)
    it(`forward (${reduction}) matches the reference, float32 and float64, with ignored targets`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const)
          for (const [N, V] of [
            [1, 1],
            [6, 7],
            [33, 1000],
          ] as const) {
            const logits = randn([N, V], { seed: 1, dtype, std: 3 });
            const targets = randint([N], V, { seed: 2 });
            if (N > 1) targets.data[1] = -100;
            const out = crossEntropy(logits, targets, { reduction });
            expect(out.shape).toEqual(reduction === "none" ? [N] : []);
            const ref = refCrossEntropy(logits.data, targets.data, N, V, -100, reduction);
            expectClose(
              out.data,
              ref,
              { rtol: dtype === "float32" ? 2e-6 : 1e-13, atol: dtype === "float32" ? 2e-6 : 1e-13 },
              `${dtype} ${N}x${V}`,
            );
          }
      }));

  for (const reduction of reductions)
    it(`backward (${reduction}) matches finite differences and the reference`, () =>
      scope(() => {
        const [N, V] = [5, 6];
        const logits = randn([N, V], { seed: 3, dtype: "float64" }).requireGrad();
        const targets = Tensor.from([2, -1, 5, 0, 2], [N], "int32");
        gradCheck((x) => crossEntropy(x, targets, { reduction, ignoreIndex: -1 }), [logits]);
        const g = reduction === "none" ? randn([N], { seed: 4, dtype: "float64" }) : Tensor.scalar(0.7, "float64");
        const [d] = grad(crossEntropy(logits, targets, { reduction, ignoreIndex: -1 }), [logits], { gradOutput: g });
        const ref = refCrossEntropyBackward(logits.data, targets.data, g.data, N, V, -1, reduction);
        expectClose(d!.data, ref, { rtol: 1e-12, atol: 1e-14 });
        // The ignored row gets exactly zero gradient.
        expect(Array.from(d!.data.subarray(V, 2 * V))).toEqual(new Array(V).fill(0));
      }));

  it("large float32 rows (threaded path): forward and backward against the reference", () =>
    scope(() => {
      const [N, V] = [64, 5003];
      const logits = randn([N, V], { seed: 5, std: 4 }).requireGrad();
      const targets = randint([N], V, { seed: 6 });
      const loss = crossEntropy(logits, targets);
      expectClose(loss.data, refCrossEntropy(logits.data, targets.data, N, V, -100, "mean"), { rtol: 1e-6 });
      const [d] = grad(loss, [logits]);
      const ref = refCrossEntropyBackward(logits.data, targets.data, [1], N, V, -100, "mean");
      expectClose(d!.data, ref, { rtol: 1e-4, atol: 1e-9 });
    }));

  it("is stable for huge logits and a batch of leading dims (..., V)", () =>
    scope(() => {
      const logits = Tensor.from([1000, 0, -1000, 2000, 2000, 0], [1, 2, 3], "float32");
      const targets = Tensor.from([0, 2], [1, 2], "int32");
      const out = crossEntropy(logits, targets, { reduction: "none" });
      expect(out.shape).toEqual([1, 2]);
      expectClose(out.data, [0, 2000 + Math.log(2)], { rtol: 1e-6 });
    }));

  it("mean over only ignored targets is 0 (no NaN) and its gradient is zero", () =>
    scope(() => {
      const logits = randn([3, 4], { seed: 7, dtype: "float64" }).requireGrad();
      const targets = Tensor.from([-100, -100, -100], [3], "int32");
      const loss = crossEntropy(logits, targets);
      expect(loss.item()).toBe(0);
      const [d] = grad(loss, [logits]);
      expect(Array.from(d!.data)).toEqual(new Array(12).fill(0));
    }));

  it("does not record under noGrad or for a frozen input", () =>
    scope(() => {
      const logits = randn([2, 3], { seed: 8 }).requireGrad();
      const t = Tensor.from([0, 1], [2], "int32");
      expect(noGrad(() => crossEntropy(logits, t)).node).toBeNull();
      expect(crossEntropy(randn([2, 3], { seed: 9 }), t).node).toBeNull();
      expect(crossEntropy(logits, t).node?.op).toBe("crossEntropy");
    }));

  it("errors name the op, the bad target and the shapes", () =>
    scope(() => {
      const logits = randn([2, 3], { seed: 10 });
      expect(() => crossEntropy(logits, Tensor.from([0, 3], [2], "int32"))).toThrow(
        /crossEntropy: target 3 at row 1 of targets \[2\] is outside \[0, 3\) \(logits \[2, 3\]\) and is not ignoreIndex -100/,
      );
      expect(() => crossEntropy(logits, Tensor.from([0, 1, 2], [3], "int32"))).toThrow(
        /crossEntropy: logits \[2, 3\] must be \(\.\.\., V\) with targets \(\.\.\.\), got targets \[3\]/,
      );
      expect(() => crossEntropy(logits, Tensor.from([0, 1], [2], "float32"))).toThrow(
        /crossEntropy: targets must be int32/,
      );
      expect(() => crossEntropy(logits, Tensor.from([0, 1], [2], "int32"), { reduction: "max" as "sum" })).toThrow(
        /reduction must be/,
      );
    }));
});

describe("logSoftmax", () => {
  it("matches the reference in float32 and float64, small and large rows", () =>
    scope(() => {
      for (const dtype of ["float32", "float64"] as const)
        for (const shape of [[1], [2, 3, 5], [17, 3001]]) {
          const x = randn(shape, { seed: 11, dtype, std: 5 });
          const y = logSoftmax(x);
          const ref = refLogSoftmax(x.data, shape[shape.length - 1]!);
          expectClose(
            y.data,
            ref,
            { rtol: dtype === "float32" ? 1e-5 : 1e-13, atol: dtype === "float32" ? 1e-5 : 1e-13 },
            dtype,
          );
        }
    }));

  it("backward matches finite differences", () =>
    scope(() => {
      const x = randn([3, 7], { seed: 12, dtype: "float64" }).requireGrad();
      gradCheck(logSoftmax, [x]);
      const y = randn([2, 1, 4], { seed: 13, dtype: "float64" }).requireGrad();
      gradCheck(logSoftmax, [y]);
    }));

  it("float32 backward on large rows (threaded path) matches the reference", () =>
    scope(() => {
      const x = randn([19, 2999], { seed: 14, std: 3 }).requireGrad();
      const g = randn([19, 2999], { seed: 15 });
      const y = logSoftmax(x);
      const [dx] = grad(y, [x], { gradOutput: g });
      expectClose(dx!.data, refLogSoftmaxBackward(g.data, y.data, 2999), { rtol: 1e-4, atol: 1e-4 });
    }));

  it("rejects scalars and integer tensors", () =>
    scope(() => {
      expect(() => logSoftmax(Tensor.scalar(1))).toThrow(/logSoftmax: input must be at least 1-D, got \[\]/);
      expect(() => logSoftmax(Tensor.from([1], [1], "int32"))).toThrow(/logSoftmax: x must be float32 or float64/);
    }));
});
