import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { ShapeError } from "../../errors.js";
import { Tensor, grad, rope, ropeTable, scope } from "../index.js";
import { randn } from "../random.js";
import { refRope } from "../reference/attention.js";

describe("rope", () => {
  const configs = [
    { name: "default (offset 0)", B: 2, T: 5, NH: 3, HS: 8, opts: {} },
    { name: "position offset after a prefix", B: 2, T: 4, NH: 2, HS: 6, opts: { positionOffset: 17 } },
    { name: "theta 500000, partial rotary dim", B: 1, T: 3, NH: 2, HS: 10, opts: { theta: 500000, rotaryDim: 6 } },
    { name: "odd sizes, threaded rows", B: 3, T: 37, NH: 5, HS: 14, opts: { positionOffset: 3 } },
    { name: "offset beyond the cached table", B: 1, T: 4, NH: 1, HS: 4, opts: { positionOffset: 100000 } },
  ];
  for (const c of configs)
    it(`${c.name}: matches the reference, float32 and float64`, () =>
      scope(() => {
        for (const dtype of ["float32", "float64"] as const) {
          const x = randn([c.B, c.T, c.NH, c.HS], { seed: 1, dtype });
          const y = rope(x, c.opts);
          const ref = refRope(x.data, c.B, c.T, c.NH, c.HS, c.opts);
          expectClose(
            y.data,
            ref,
            dtype === "float32" ? { rtol: 1e-5, atol: 1e-6 } : { rtol: 1e-13, atol: 1e-14 },
            `${c.name} ${dtype}`,
          );
        }
      }));

  it("explicit positions (B, T) int32, including negative and large ones", () =>
    scope(() => {
      const [B, T, NH, HS] = [2, 4, 2, 8];
      const pos = Tensor.from(Int32Array.from([0, 5, 2, 9000, 3, 3, -2, 40]), [B, T]);
      for (const dtype of ["float32", "float64"] as const) {
        const x = randn([B, T, NH, HS], { seed: 2, dtype });
        const y = rope(x, { positions: pos });
        expectClose(
          y.data,
          refRope(x.data, B, T, NH, HS, { positions: pos.data }),
          dtype === "float32" ? { rtol: 1e-5, atol: 1e-6 } : { rtol: 1e-13, atol: 1e-14 },
        );
      }
      // positions equal to offset + t give the same result as positionOffset.
      const x = randn([B, T, NH, HS], { seed: 3 });
      const seq = Tensor.from(Int32Array.from([7, 8, 9, 10, 7, 8, 9, 10]), [B, T]);
      expect(rope(x, { positions: seq }).toArray()).toEqual(rope(x, { positionOffset: 7 }).toArray());
    }));

  it("position 0 is the identity, rotation preserves each pair's norm, entries past rotaryDim pass through", () =>
    scope(() => {
      const x = randn([1, 3, 2, 8], { seed: 4, dtype: "float64" });
      const y = rope(x, { rotaryDim: 4 });
      const d = x.data;
      const o = y.data;
      for (let i = 0; i < 16; i++) expect(o[i]).toBe(d[i]); // t = 0
      for (let t = 0; t < 3; t++)
        for (let h = 0; h < 2; h++) {
          const base = (t * 2 + h) * 8;
          for (let i = 0; i < 2; i++)
            expect(Math.hypot(o[base + i]!, o[base + i + 2]!)).toBeCloseTo(
              Math.hypot(d[base + i]!, d[base + i + 2]!),
              12,
            );
          for (let i = 4; i < 8; i++) expect(o[base + i]).toBe(d[base + i]);
        }
    }));

  it("cos/sin tables equal Hugging Face LlamaRotaryEmbedding (float32 angles), theta 500000, HS 64", () => {
    // From transformers' LlamaRotaryEmbedding(rope_theta=500000, head_dim=64): cos/sin[pos][i] for i = 0, 1, 2, 5.
    const hf: [number, number[], number[]][] = [
      [
        4095,
        [-0.06597599387168884, -0.9995385408401489, 0.9996298551559448, 0.6875314116477966],
        [-0.9978212118148804, 0.030375057831406593, 0.027205083519220352, -0.726154625415802],
      ],
      [
        7000,
        [0.8620134592056274, -0.35624489188194275, -0.7875254154205322, -0.6782292127609253],
        [0.5068854093551636, 0.9343926310539246, -0.6162822246551514, 0.7348504066467285],
      ],
    ];
    for (const [p, cos, sin] of hf) {
      const t = ropeTable(500000, 64, p, p);
      [0, 1, 2, 5].forEach((i, k) => {
        expect(Math.abs(Math.fround(t.cos[i]!) - cos[k]!)).toBeLessThanOrEqual(1.2e-7);
        expect(Math.abs(Math.fround(t.sin[i]!) - sin[k]!)).toBeLessThanOrEqual(1.2e-7);
      });
    }
  });

  it("backward matches finite differences (offset, positions, partial rotary dim)", () =>
    scope(() => {
      const x = randn([2, 3, 2, 6], { seed: 5, dtype: "float64" }).requireGrad();
      gradCheck((a) => rope(a, { positionOffset: 4 }), [x]);
      const pos = Tensor.from(Int32Array.from([1, 0, 12, 5, 5, 300]), [2, 3]);
      gradCheck((a) => rope(a, { positions: pos, theta: 100 }), [x]);
      gradCheck((a) => rope(a, { rotaryDim: 2 }), [x]);
    }));

  it("backward is the inverse rotation: the gradient of rope(x)·g is rope⁻¹(g)", () =>
    scope(() => {
      const x = randn([2, 9, 3, 8], { seed: 6 }).requireGrad();
      const g = randn([2, 9, 3, 8], { seed: 7 });
      const [dx] = grad(rope(x, { positionOffset: 2 }), [x], { gradOutput: g });
      expectClose(dx!.data, refRope(g.data, 2, 9, 3, 8, { positionOffset: 2, sign: -1 }), { rtol: 1e-5, atol: 1e-6 });
    }));

  it("rejects bad shapes and options with messages naming them", () =>
    scope(() => {
      const x = Tensor.zeros([2, 3, 4, 8]);
      const expectErr = (f: () => unknown, re: RegExp, type: new (...a: never[]) => Error = ShapeError) => {
        let err: unknown;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(type);
        expect((err as Error).message).toMatch(re);
      };
      expectErr(() => rope(Tensor.zeros([2, 3, 32])), /rope: x must be \(B, T, NH, HS\), got \[2, 3, 32\]/);
      expectErr(() => rope(x, { rotaryDim: 5 }), /rotaryDim 5 must be even and in \[2, HS = 8\] for x \[2, 3, 4, 8\]/);
      expectErr(() => rope(x, { rotaryDim: 10 }), /rotaryDim 10/);
      expectErr(() => rope(Tensor.zeros([1, 2, 1, 7])), /rotaryDim 7 must be even/);
      expectErr(
        () => rope(x, { positions: Tensor.zeros([2, 4], "int32") }),
        /positions \[2, 4\] must be \(B, T\) = \(2, 3\) for x \[2, 3, 4, 8\]/,
      );
      expectErr(() => rope(x, { positions: Tensor.zeros([2, 3]) }), /positions must be int32, got float32/);
      expectErr(() => rope(x, { theta: -1 }), /theta must be a positive number/, Error);
    }));
});
