import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { MacLmError } from "../../errors.js";
import { Tensor, dropout, grad, scope } from "../index.js";
import { randn } from "../random.js";
import { refDropoutKeep } from "../reference/dropout.js";

// The mask, written independently from native/kernels/dropout_mask.h (src/tensor/reference/dropout.ts).
const refKeep = (seed: number, p: number, n: number): boolean[] => {
  const keep = refDropoutKeep(seed, p);
  return Array.from({ length: n }, (_, i) => keep(i));
};

describe("dropout", () => {
  it("p = 0 and training = false return the input itself (no copy, no graph node)", () =>
    scope(() => {
      const x = randn([4, 5], { seed: 1 }).requireGrad();
      expect(dropout(x, 0, { seed: 1 })).toBe(x);
      expect(dropout(x, 0.5, { seed: 1, training: false })).toBe(x);
      expect(dropout(x, 0.5, { seed: 1 }).node?.op).toBe("dropout");
    }));

  it("matches the reference mask exactly (float32 vector path and float64 scalar path), kept values scaled by 1/(1 − p)", () =>
    scope(() => {
      for (const [p, seed, n] of [
        [0.1, 7, 100_003],
        [0.5, -3, 37],
        [0.9, 2 ** 40 + 5, 20_000],
      ] as const) {
        const keep = refKeep(seed, p, n);
        for (const dtype of ["float32", "float64"] as const) {
          const x = randn([n], { seed: 2, dtype });
          const y = dropout(x, p, { seed }).data;
          const scale = dtype === "float32" ? Math.fround(1 / (1 - p)) : 1 / (1 - p);
          const round = dtype === "float32" ? Math.fround : (v: number) => v;
          for (let i = 0; i < n; i++) {
            const want = keep[i] ? round(x.data[i]! * scale) : 0;
            if (y[i] !== want && !(want === 0 && y[i] === 0))
              expect.fail(`p=${p} ${dtype}: element ${i} is ${y[i]}, expected ${want}`);
          }
        }
      }
    }));

  it("drops a fraction p of the elements, uniformly along the tensor, independently of neighbours", () =>
    scope(() => {
      const n = 1 << 18;
      const x = Tensor.full([n], 1);
      for (const p of [0.1, 0.5, 0.9]) {
        const y = dropout(x, p, { seed: 11 }).data;
        const sd = Math.sqrt((p * (1 - p)) / n);
        let dropped = 0;
        let firstHalf = 0;
        let pairs = 0;
        for (let i = 0; i < n; i++) {
          const d = y[i] === 0 ? 1 : 0;
          dropped += d;
          if (i < n / 2) firstHalf += d;
          if (i > 0 && d && y[i - 1] === 0) pairs++;
        }
        expect(Math.abs(dropped / n - p), `fraction for p=${p}`).toBeLessThan(5 * sd);
        expect(Math.abs(firstHalf / (n / 2) - p), `first half for p=${p}`).toBeLessThan(5 * sd * Math.SQRT2);
        const sdPair = Math.sqrt((p * p * (1 - p * p)) / n);
        expect(Math.abs(pairs / (n - 1) - p * p), `adjacent pairs for p=${p}`).toBeLessThan(6 * sdPair);
        // Inverted scaling: the mean is preserved.
        let sum = 0;
        for (let i = 0; i < n; i++) sum += y[i]!;
        expect(Math.abs(sum / n - 1)).toBeLessThan(5 * Math.sqrt(p / (1 - p) / n));
      }
    }));

  it("is deterministic per seed; different seeds give independent masks", () =>
    scope(() => {
      const n = 1 << 16;
      const x = randn([n], { seed: 3 });
      const a = dropout(x, 0.3, { seed: 42 }).toArray();
      expect(dropout(x, 0.3, { seed: 42 }).toArray()).toEqual(a);
      const b = dropout(x, 0.3, { seed: 43 }).toArray();
      let both = 0;
      for (let i = 0; i < n; i++) if (a[i] === 0 && b[i] === 0) both++;
      expect(Math.abs(both / n - 0.09)).toBeLessThan(6 * Math.sqrt((0.09 * 0.91) / n));
    }));

  it("backward applies the same mask and scale to the gradient", () =>
    scope(() => {
      const n = 50_001;
      const x = randn([n], { seed: 4 }).requireGrad();
      const g = randn([n], { seed: 5 });
      const y = dropout(x, 0.25, { seed: 9 });
      const [dx] = grad(y, [x], { gradOutput: g });
      const s = Math.fround(1 / 0.75);
      const want = Array.from(y.data, (v, i) => (v === 0 ? 0 : Math.fround(g.data[i]! * s)));
      expect(Array.from(dx!.data, (v) => (v === 0 ? 0 : v))).toEqual(want);
      gradCheck((t) => dropout(t, 0.4, { seed: 10 }), [randn([3, 11], { seed: 6, dtype: "float64" }).requireGrad()]);
    }));

  it("p = 1 drops everything", () =>
    scope(() => {
      const x = randn([2, 9], { seed: 7 }).requireGrad();
      const y = dropout(x, 1, { seed: 1 });
      expect(y.toArray().every((v) => v === 0)).toBe(true);
      const [dx] = grad(y, [x], { gradOutput: Tensor.full([2, 9], 1) });
      expectClose(dx!.data, new Float64Array(18));
    }));

  it("rejects bad arguments, naming the op", () =>
    scope(() => {
      const x = Tensor.zeros([3]);
      expect(() => dropout(x, 1.5, { seed: 1 })).toThrow(MacLmError);
      expect(() => dropout(x, -0.1, { seed: 1 })).toThrow(/dropout: p must be in \[0, 1\], got -0.1/);
      expect(() => dropout(x, Number.NaN, { seed: 1 })).toThrow(/dropout: p must be in \[0, 1\]/);
      expect(() => dropout(x, 0.5, { seed: 0.5 })).toThrow(/dropout: seed must be a safe integer/);
      expect(() => dropout(Tensor.zeros([3], "int32"), 0.5, { seed: 1 })).toThrow(
        /dropout: input must be float32 or float64, got int32/,
      );
    }));
});
