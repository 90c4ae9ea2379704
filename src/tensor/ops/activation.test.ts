import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { MacLmError, ShapeError } from "../../errors.js";
import { Tensor, gelu, grad, sigmoid, silu, softmax, swiglu, scope, tanh } from "../index.js";
import { rand, randn } from "../random.js";
import {
  refGelu,
  refGeluGrad,
  refMap,
  refSigmoid,
  refSigmoidGrad,
  refSilu,
  refSiluGrad,
  refSoftmax,
  refSoftmaxBackward,
  refTanhGrad,
} from "../reference/activation.js";

const dtypes = ["float32", "float64"] as const;

// Inputs that hit each branch of the float32 vector math: 0, ±tiny, the tanh polynomial/exp switch at 0.625,
// the exp clamps (±87.3, ±88.7), far tails, plus random values; the length (odd, > 2·2^13) also exercises
// the masked tail and the threaded path.
const special = [
  0, -0, 1e-7, -1e-7, 1e-3, -1e-3, 0.6249, 0.6251, -0.6251, 1, -1, 3, -3, 5, -5, 8, -8, 12, -12, 20, -20, 44, -44, 87.5,
  -87.5, 89, -89, 100, -100,
];
function inputs(n: number, dtype: (typeof dtypes)[number], std = 3): Tensor {
  const x = randn([n], { seed: 1, dtype, std });
  x.data.set(special.slice(0, Math.min(n, special.length)));
  return x;
}

interface Case {
  name: string;
  f: (x: Tensor) => Tensor;
  ref: (v: number) => number;
  dref: (v: number) => number;
  /**
   * float32 forward, relative to the float64 reference, over all inputs. Where |y| ≥ 0.01 every case is held
   * to 1e-6; below that, GELU-tanh's error grows to 2e-6 (measured) because u = √(2/π)(x + 0.044715x³) is
   * rounded to float before e^(−2u), and keeps growing with |u| in the far tail (9e-6 at y ≈ −3e-28), hence
   * the absolute floor. torch's float32 GELU-tanh is off by 4e-6 where |y| ≥ 0.01 and up to 6e-4 below.
   * Elsewhere the floor is where results flush to 0 (no denormals).
   */
  rtol: number;
  atol: number;
}

const cases: Case[] = [
  {
    name: "gelu(tanh)",
    f: (x) => gelu(x, "tanh"),
    ref: (v) => refGelu(v, "tanh"),
    dref: (v) => refGeluGrad(v, "tanh"),
    rtol: 3e-6,
    atol: 1e-12,
  },
  {
    name: "gelu(none)",
    f: (x) => gelu(x),
    ref: (v) => refGelu(v, "none"),
    dref: (v) => refGeluGrad(v, "none"),
    rtol: 1e-6,
    atol: 1e-36,
  },
  { name: "silu", f: silu, ref: refSilu, dref: refSiluGrad, rtol: 1e-6, atol: 1e-36 },
  { name: "sigmoid", f: sigmoid, ref: refSigmoid, dref: refSigmoidGrad, rtol: 1e-6, atol: 1e-36 },
  { name: "tanh", f: tanh, ref: Math.tanh, dref: refTanhGrad, rtol: 1e-6, atol: 1e-36 },
];

/** Elements of (actual, expected) where |expected| ≥ min. */
function where(actual: ArrayLike<number>, expected: ArrayLike<number>, min: number): [number[], number[]] {
  const a: number[] = [];
  const e: number[] = [];
  for (let i = 0; i < expected.length; i++)
    if (Math.abs(expected[i]!) >= min) {
      a.push(actual[i]!);
      e.push(expected[i]!);
    }
  return [a, e];
}

describe("elementwise activations", () => {
  for (const c of cases) {
    it(`${c.name} forward matches the reference, float32 and float64, sizes 1, 37, 100003`, () =>
      scope(() => {
        for (const dtype of dtypes)
          for (const n of [1, 37, 100_003]) {
            const x = inputs(n, dtype);
            const y = c.f(x);
            expect(y.shape).toEqual([n]);
            const ref = refMap(x.data, c.ref);
            if (dtype === "float64")
              expectClose(y.data, ref, { rtol: 1e-12, atol: 1e-300 }, `${c.name} float64 n=${n}`);
            else {
              expectClose(y.data, ref, { rtol: c.rtol, atol: c.atol }, `${c.name} float32 n=${n}`);
              const [a, e] = where(y.data, ref, 0.01);
              expectClose(a, e, { rtol: 1e-6, atol: 0 }, `${c.name} float32 n=${n}, |y| ≥ 0.01`);
            }
          }
      }));

    it(`${c.name} backward matches finite differences and the reference derivative`, () =>
      scope(() => {
        const x = randn([3, 7], { seed: 2, dtype: "float64", std: 2 }).requireGrad();
        gradCheck(c.f, [x]);
        for (const dtype of dtypes) {
          const xs = inputs(20_011, dtype).requireGrad();
          const g = rand([20_011], { seed: 3, dtype, low: 0.5, high: 1.5 });
          const [dx] = grad(c.f(xs), [xs], { gradOutput: g });
          const ref = refMap(xs.data, (v, i) => g.data[i]! * c.dref(v));
          // float32 derivatives cancel (1 − y², s·(1 + x(1 − s)) near its zero...): absolute error ≤ 2e-6·|g|.
          // tanh and sigmoid differentiate through their rounded output y: absolute error ~ulp(1)·|g| in float64.
          const tol = dtype === "float32" ? { rtol: 5e-6, atol: 3e-6 } : { rtol: 1e-11, atol: 1e-15 };
          expectClose(dx!.data, ref, tol, `${c.name}' ${dtype}`);
        }
      }));
  }

  it("limits: ±inf and NaN as torch gives them", () =>
    scope(() => {
      for (const dtype of dtypes) {
        const x = Tensor.from([-Infinity, Infinity, Number.NaN, -1e4], [4], dtype);
        // x·(something → 0) at −inf is NaN in torch too (−inf·0).
        for (const f of [(t: Tensor) => gelu(t, "tanh"), (t: Tensor) => gelu(t), silu])
          expect(
            f(x)
              .toArray()
              .map((v) => (Object.is(v, -0) ? 0 : v)),
          ).toEqual([Number.NaN, Infinity, Number.NaN, 0]);
        expect(sigmoid(x).toArray()).toEqual([0, 1, Number.NaN, 0]);
        expect(tanh(x).toArray()).toEqual([-1, 1, Number.NaN, -1]);
      }
    }));

  it("an element's value does not depend on its position (vector body, masked tail, thread chunk)", () =>
    scope(() => {
      const big = inputs(50_001, "float32");
      for (const c of cases) {
        const all = c.f(big).data;
        for (const [start, len] of [
          [0, 37],
          [8, 3],
          [49_990, 11],
          [25_001, 9],
        ] as const) {
          const part = Tensor.from(big.data.subarray(start, start + len), [len], "float32");
          expect(Array.from(c.f(part).data), c.name).toEqual(Array.from(all.subarray(start, start + len)));
        }
      }
    }));

  it("rejects non-float inputs", () =>
    scope(() => {
      expect(() => gelu(Tensor.zeros([2], "int32"))).toThrow(MacLmError);
      expect(() => gelu(Tensor.zeros([2], "int32"))).toThrow(/gelu: input must be float32 or float64, got int32/);
      expect(() => gelu(Tensor.zeros([2]), "fast" as "tanh")).toThrow(/gelu: approximate must be "none" or "tanh"/);
    }));
});

describe("swiglu", () => {
  const refSwiglu = (a: number, b: number) => refSilu(a) * b;

  it("forward matches silu(gate)·up, float32 and float64, sizes 5, 37, 60001", () =>
    scope(() => {
      for (const dtype of dtypes)
        for (const n of [5, 37, 60_001]) {
          const a = inputs(n, dtype);
          const b = randn([n], { seed: 4, dtype });
          const ref = refMap(a.data, (v, i) => refSwiglu(v, b.data[i]!));
          expectClose(
            swiglu(a, b).data,
            ref,
            dtype === "float32" ? { rtol: 1e-6, atol: 1e-12 } : { rtol: 1e-12, atol: 1e-300 },
          );
        }
    }));

  it("backward matches finite differences and the reference derivatives", () =>
    scope(() => {
      const a = randn([2, 3, 5], { seed: 5, dtype: "float64", std: 2 }).requireGrad();
      const b = randn([2, 3, 5], { seed: 6, dtype: "float64" }).requireGrad();
      gradCheck(swiglu, [a, b]);
      for (const dtype of dtypes) {
        const n = 30_007;
        const gate = inputs(n, dtype).requireGrad();
        const up = randn([n], { seed: 7, dtype }).requireGrad();
        const g = rand([n], { seed: 8, dtype, low: 0.5, high: 1.5 });
        const [dg, du] = grad(swiglu(gate, up), [gate, up], { gradOutput: g });
        const t = dtype === "float32" ? { rtol: 5e-6, atol: 3e-6 } : { rtol: 1e-11, atol: 1e-300 };
        expectClose(
          dg!.data,
          refMap(gate.data, (v, i) => g.data[i]! * up.data[i]! * refSiluGrad(v)),
          t,
          `dgate ${dtype}`,
        );
        expectClose(
          du!.data,
          refMap(gate.data, (v, i) => g.data[i]! * refSilu(v)),
          t,
          `dup ${dtype}`,
        );
      }
    }));

  it("a frozen operand gets no gradient computed", () =>
    scope(() => {
      const a = randn([4, 6], { seed: 9, dtype: "float64" });
      const b = randn([4, 6], { seed: 10, dtype: "float64" }).requireGrad();
      gradCheck(swiglu, [a, b]);
    }));

  it("names the op and the shapes on mismatched operands", () =>
    scope(() => {
      expect(() => swiglu(Tensor.zeros([2, 3]), Tensor.zeros([3, 2]))).toThrow(ShapeError);
      expect(() => swiglu(Tensor.zeros([2, 3]), Tensor.zeros([3, 2]))).toThrow(
        /swiglu: gate \[2, 3\] and up \[3, 2\] must have the same shape/,
      );
      expect(() => swiglu(Tensor.zeros([2]), Tensor.zeros([2], "float64"))).toThrow(/swiglu: dtype mismatch/);
    }));
});

describe("softmax", () => {
  const split = (shape: number[]): [number, number] => {
    const c = shape[shape.length - 1]!;
    return [shape.reduce((a, b) => a * b, 1) / c, c];
  };

  for (const shape of [[3, 5], [2, 3, 37], [1, 1], [9], [400, 100], [33, 1031]])
    it(`forward and backward ${JSON.stringify(shape)} match the reference, float32 and float64`, () =>
      scope(() => {
        const [rows, c] = split(shape);
        for (const dtype of dtypes) {
          const x = randn(shape, { seed: 11, dtype, std: 4 }).requireGrad();
          const y = softmax(x);
          const ref = refSoftmax(x.data, rows, c);
          expectClose(
            y.data,
            ref,
            dtype === "float32" ? { rtol: 2e-6, atol: 1e-12 } : { rtol: 1e-12, atol: 1e-300 },
            `y ${dtype}`,
          );
          const g = randn(shape, { seed: 12, dtype });
          const [dx] = grad(y, [x], { gradOutput: g });
          expectClose(
            dx!.data,
            refSoftmaxBackward(g.data, ref, rows, c),
            dtype === "float32" ? { rtol: 1e-4, atol: 1e-6 } : { rtol: 1e-10, atol: 1e-14 },
            `dx ${dtype}`,
          );
        }
      }));

  it("backward matches finite differences", () =>
    scope(() => {
      gradCheck(softmax, [randn([3, 6], { seed: 13, dtype: "float64" }).requireGrad()]);
      gradCheck(softmax, [randn([2, 2, 11], { seed: 14, dtype: "float64", std: 3 }).requireGrad()]);
    }));

  it("is stable for large logits and gives exact zeros for -inf (masked) entries", () =>
    scope(() => {
      for (const dtype of dtypes) {
        const y = softmax(Tensor.from([1000, 999, -1000, 998, -Infinity, 0, -Infinity, 5], [2, 4], dtype)).toArray();
        const z1 = 1 + Math.exp(-1) + Math.exp(-2);
        expectClose(y.slice(0, 4), [1 / z1, Math.exp(-1) / z1, 0, Math.exp(-2) / z1], { rtol: 1e-6, atol: 0 }, dtype);
        expect(y[4]).toBe(0);
        expect(y[6]).toBe(0);
        expectClose(
          y.slice(4),
          [0, 1 / (1 + Math.exp(5)), 0, Math.exp(5) / (1 + Math.exp(5))],
          { rtol: 1e-6, atol: 0 },
          dtype,
        );
      }
    }));

  it("rows sum to 1", () =>
    scope(() => {
      const y = softmax(randn([64, 77], { seed: 15, std: 10 })).data;
      for (let r = 0; r < 64; r++) {
        let s = 0;
        for (let j = 0; j < 77; j++) s += y[r * 77 + j]!;
        expect(Math.abs(s - 1)).toBeLessThan(1e-6);
      }
    }));
});
