import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../test/helpers/numeric.js";
import { ShapeError } from "../errors.js";
import { type FloatDType, Tensor, grad, scope } from "../tensor/index.js";
import { Rng, randn } from "../tensor/random.js";
import { refSlotHeads } from "./aggregate/reference.js";
import { SlotHeads, StackedLayerNorm, StackedLinear } from "./heads.js";

/** Heads with non-trivial LayerNorm affine parameters (1 and 0 by default would hide indexing mistakes). */
function makeHeads(T: number, dIn: number, d: number, dtype: FloatDType, seed = 1): SlotHeads {
  const h = new SlotHeads(T, dIn, d, { rng: new Rng(seed), dtype });
  const rng = new Rng(seed + 100);
  for (const t of [h.norm.weight, h.norm.bias]) for (let i = 0; i < t.size; i++) t.data[i] = 0.5 + rng.normal() * 0.3;
  return h;
}

describe("SlotHeads", () => {
  for (const [dIn, d] of [
    [6, 5],
    [5, 5],
  ] as const)
    for (const dtype of ["float32", "float64"] as const)
      it(`matches the per-slot reference MLP (dIn ${dIn}, d ${d}, ${dtype})`, () =>
        scope(() => {
          const [B, T] = [3, 4];
          const heads = makeHeads(T, dIn, d, dtype);
          expect(heads.skip === null).toBe(dIn === d);
          const x = randn([B, T, dIn], { seed: 7, dtype });
          const y = heads.forward(x);
          expect(y.shape).toEqual([B, T, d]);
          const ref = refSlotHeads(heads.stateDict(), x.data, B, T, dIn, d);
          expectClose(y.data, ref, dtype === "float64" ? { rtol: 1e-12, atol: 1e-12 } : { rtol: 1e-5, atol: 1e-5 });
          heads.dispose();
        }));

  it("uses one head per slot: changing slot i's weights changes only output slot i", () =>
    scope(() => {
      const heads = makeHeads(3, 4, 4, "float64");
      const x = randn([2, 3, 4], { seed: 3, dtype: "float64" });
      const y0 = Float64Array.from(heads.forward(x).data);
      const w = heads.fc2.bias!.data; // (T, d)
      w[1 * 4 + 2] = w[1 * 4 + 2]! + 1; // slot 1, channel 2
      const y1 = heads.forward(x).data;
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < 3; t++)
          for (let c = 0; c < 4; c++) {
            const i = (b * 3 + t) * 4 + c;
            expect(y1[i]! - y0[i]!).toBeCloseTo(t === 1 && c === 2 ? 1 : 0, 12);
          }
      heads.dispose();
    }));

  it("gradients (float64) reach the input and every parameter", () => {
    const heads = makeHeads(3, 4, 5, "float64");
    const x = randn([2, 3, 4], { seed: 5, dtype: "float64" }).requireGrad();
    const params = heads.parameters();
    gradCheck((xx) => heads.forward(xx), [x, ...params], { maxElements: 24 });
    scope(() => {
      const y = heads.forward(x);
      const gs = grad(y, params, { gradOutput: Tensor.full(y.shape, 1, "float64") });
      for (const g of gs) expect(g.toArray().some((v) => v !== 0)).toBe(true);
    });
    heads.dispose();
    x.dispose();
  });

  it("rejects inputs of the wrong shape", () => {
    const heads = new SlotHeads(3, 4, 5);
    expect(() => scope(() => heads.forward(Tensor.zeros([2, 4, 4])))).toThrow(ShapeError);
    expect(() => scope(() => heads.forward(Tensor.zeros([2, 3, 5])))).toThrow(/SlotHeads.*\(B, 3, 4\)/);
    heads.dispose();
  });
});

describe("stacked layers", () => {
  it("StackedLinear applies copy g to group g", () =>
    scope(() => {
      const lin = new StackedLinear(3, 4, 2, { rng: new Rng(2), dtype: "float64" });
      const x = randn([3, 5, 4], { seed: 1, dtype: "float64" });
      const y = lin.forward(x).data;
      const W = lin.weight.data;
      const b = lin.bias!.data;
      for (let g = 0; g < 3; g++)
        for (let r = 0; r < 5; r++)
          for (let o = 0; o < 2; o++) {
            let s = b[g * 2 + o]!;
            for (let i = 0; i < 4; i++) s += W[(g * 2 + o) * 4 + i]! * x.data[(g * 5 + r) * 4 + i]!;
            expect(y[(g * 5 + r) * 2 + o]).toBeCloseTo(s, 12);
          }
      expect(() => lin.forward(Tensor.zeros([2, 5, 4], "float64"))).toThrow(ShapeError);
      lin.dispose();
    }));

  it("StackedLayerNorm gradients (float64)", () => {
    const ln = new StackedLayerNorm(2, 5, 1e-5, { dtype: "float64" });
    const rng = new Rng(4);
    for (const t of [ln.weight, ln.bias]) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal();
    const x = randn([2, 3, 5], { seed: 9, dtype: "float64" }).requireGrad();
    gradCheck((xx) => ln.forward(xx), [x, ln.weight, ln.bias]);
    ln.dispose();
    x.dispose();
  });
});
