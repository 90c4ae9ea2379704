import { describe, expect, it } from "vitest";
import { expectClose } from "../../test/helpers/numeric.js";
import { AdamW, Tensor, clipGradNorm, scope } from "./index.js";
import { randn } from "./random.js";
import { refAdamW, refGlobalNorm } from "./reference/optim.js";

// Inputs of reference/adamw_check.py (exactly representable, so both sides start from the same bits).
const N = 7;
const p0 = Array.from({ length: N }, (_, i) => 0.5 - 0.375 * i);
const gradAt = (t: number): number[] => Array.from({ length: N }, (_, i) => (((i * 7 + t * 3) % 11) - 5) / 4);

// Printed by `python3 reference/adamw_check.py` (torch 2.13.0, torch.optim.AdamW, float64, foreach=False).
const torchExpected = {
  adamw: {
    opts: { lr: 0.01, betas: [0.9, 0.999] as const, eps: 1e-8, weightDecay: 0.1 },
    steps: 6,
    p: [
      0.5075671090914043, 0.10988622396978509, -0.27249722070814864, -0.5933713658148831, -1.007940744472264,
      -1.36664215928747, -1.7206371537628602,
    ],
    m: [
      0.006277999999999978, -0.07714624999999999, 0.15722224999999995, -0.11086174999999998, 0.05321399999999998,
      0.0400825, -0.005251499999999992,
    ],
    v: [
      0.0026184443712513146, 0.004487269544633377, 0.003929822181876316, 0.0029921338688153145, 0.004426266423443502,
      0.0034300083086880656, 0.003427825177005064,
    ],
  },
  adam: {
    opts: { lr: 0.05, betas: [0.8, 0.99] as const, eps: 1e-6, weightDecay: 0 },
    steps: 5,
    p: [
      0.5504364835269852, 0.05292179305982398, -0.34402109999611313, -0.505519928249252, -1.0615655527596355,
      -1.3639749990865486, -1.6694184216015406,
    ],
    m: [
      -0.09735999999999997, -0.10439999999999995, 0.054879999999999984, -0.26543999999999995, 0.27751999999999993,
      -0.11319999999999995, 0.006479999999999983,
    ],
    v: [
      0.023333926900000017, 0.04166099453125004, 0.02322311250625002, 0.028885165056250026, 0.03802151260000003,
      0.023871994375000018, 0.03375639697500003,
    ],
  },
};

describe("AdamW", () => {
  for (const [name, c] of Object.entries(torchExpected))
    it(`${name}: ${c.steps} steps match torch.optim.AdamW (float64) and the JS reference`, () =>
      scope(() => {
        const p = Tensor.from(p0, [N], "float64");
        const opt = new AdamW([p], c.opts);
        const grads: number[][] = [];
        for (let t = 1; t <= c.steps; t++) {
          grads.push(gradAt(t));
          opt.step([Tensor.from(gradAt(t), [N], "float64")]);
        }
        const s = opt.stateDict();
        expectClose(p.data, c.p, { rtol: 1e-13, atol: 1e-15 }, "p vs torch");
        expectClose(s.m[0]!.data, c.m, { rtol: 1e-13, atol: 1e-15 }, "m vs torch");
        expectClose(s.v[0]!.data, c.v, { rtol: 1e-13, atol: 1e-15 }, "v vs torch");
        expect(s.step).toEqual([c.steps]);
        const ref = refAdamW(p0, grads, {
          lr: c.opts.lr,
          beta1: c.opts.betas[0],
          beta2: c.opts.betas[1],
          eps: c.opts.eps,
          weightDecay: c.opts.weightDecay,
        });
        expectClose(p.data, ref.p, { rtol: 1e-13, atol: 1e-15 }, "p vs reference");
        opt.dispose();
      }));

  it("float32 over several steps and a large (threaded) tensor tracks the float64 reference; groups set weight decay", () =>
    scope(() => {
      const n = 100_003;
      const w = randn([n], { seed: 1 });
      const b = randn([3], { seed: 2 });
      const w0 = Float64Array.from(w.data);
      const b0 = Float64Array.from(b.data);
      const opt = new AdamW([{ params: [w] }, { params: [b], weightDecay: 0 }], { lr: 1e-2, weightDecay: 0.05 });
      const gw: Float32Array[] = [];
      const gb: Float32Array[] = [];
      for (let t = 0; t < 4; t++) {
        const g1 = randn([n], { seed: 10 + t });
        const g2 = randn([3], { seed: 20 + t });
        gw.push(Float32Array.from(g1.data));
        gb.push(Float32Array.from(g2.data));
        opt.step([g1, g2]);
      }
      const cfg = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
      expectClose(w.data, refAdamW(w0, gw, { ...cfg, weightDecay: 0.05 }).p, { rtol: 1e-5, atol: 2e-6 }, "w");
      expectClose(b.data, refAdamW(b0, gb, { ...cfg, weightDecay: 0 }).p, { rtol: 1e-5, atol: 2e-6 }, "b");
      opt.dispose();
    }));

  it("stateDict/loadStateDict resume exactly; null gradients skip a parameter", () =>
    scope(() => {
      const init = randn([5, 4], { seed: 3 });
      const grads = Array.from({ length: 6 }, (_, t) => randn([5, 4], { seed: 30 + t }));
      const other = randn([2], { seed: 4 });
      // Straight run: 6 steps.
      const a = init.clone();
      const oa = new AdamW([a, other.clone()], { lr: 3e-3 });
      for (const g of grads) oa.step([g, null]);
      expect(oa.stateDict().step).toEqual([6, 0]);
      // Interrupted run: 3 steps, state saved (copied), a fresh optimizer restored, 3 more steps.
      const b = init.clone();
      const ob1 = new AdamW([b, other.clone()], { lr: 3e-3 });
      for (const g of grads.slice(0, 3)) ob1.step([g, null]);
      const s = ob1.stateDict();
      const saved = { ...s, m: s.m.map((t) => t.clone()), v: s.v.map((t) => t.clone()) };
      ob1.dispose();
      const ob2 = new AdamW([b, other.clone()], { lr: 1 }); // lr restored from the state
      ob2.loadStateDict(saved);
      expect(ob2.lr).toBe(3e-3);
      for (const g of grads.slice(3)) ob2.step([g, null]);
      expect(Array.from(b.data)).toEqual(Array.from(a.data));
      expect(Array.from(ob2.stateDict().m[0]!.data)).toEqual(Array.from(oa.stateDict().m[0]!.data));
      expect(() => ob2.loadStateDict({ ...saved, m: [saved.m[1]!, saved.m[0]!] })).toThrow(
        /AdamW.loadStateDict: m\[0\] is float32 \[2\], parameter 0 is float32 \[5, 4\]/,
      );
    }));

  it("the optimizer state survives the scope it was created in", () => {
    const p = Tensor.from([1, 2], [2], "float32");
    const opt = scope(() => {
      const o = new AdamW([p]);
      o.step([Tensor.from([1, 1], [2], "float32")]);
      return o;
    });
    opt.step([Tensor.from([1, 1], [2], "float32")]);
    expect(opt.stateDict().step).toEqual([2]);
    opt.dispose();
    p.dispose();
  });

  it("checks gradients and hyperparameters", () =>
    scope(() => {
      const p = Tensor.zeros([2, 3]);
      const opt = new AdamW([p]);
      expect(() => opt.step([])).toThrow(/AdamW.step: got 0 gradients for 1 parameters/);
      expect(() => opt.step([Tensor.zeros([3, 2])])).toThrow(
        /AdamW.step: gradient 0 is float32 \[3, 2\], parameter 0 is float32 \[2, 3\]/,
      );
      expect(() => new AdamW([p], { betas: [1, 0.999] })).toThrow(/AdamW: beta1 1 is outside \[0, 1\)/);
      expect(() => new AdamW([p], { lr: -1 })).toThrow(/AdamW: lr -1 is outside/);
      expect(() => new AdamW([p, p])).toThrow(/listed twice/);
      opt.dispose();
    }));
});

describe("clipGradNorm", () => {
  it("returns the global norm and scales in place only above maxNorm", () =>
    scope(() => {
      const g1 = randn([1000, 37], { seed: 5 }); // several blocks, threaded
      const g2 = randn([3], { seed: 6, dtype: "float64" });
      const before = [Float64Array.from(g1.data), Float64Array.from(g2.data)];
      const norm = refGlobalNorm(before);
      expect(clipGradNorm([g1, g2], 1e9)).toBeCloseTo(norm, 6);
      expectClose(g1.data, before[0]!, { rtol: 0, atol: 0 });
      const got = clipGradNorm([g1, g2], 2);
      expect(Math.abs(got - norm) / norm).toBeLessThan(1e-12);
      const coef = 2 / (norm + 1e-6);
      expectClose(
        g1.data,
        before[0]!.map((v) => v * coef),
        { rtol: 1e-6 },
        "g1 scaled",
      );
      expectClose(
        g2.data,
        before[1]!.map((v) => v * coef),
        { rtol: 1e-12 },
        "g2 scaled",
      );
      expect(clipGradNorm([g1, g2], 1e9)).toBeCloseTo(2, 5);
      expect(() => clipGradNorm([g1], 0)).toThrow(/clipGradNorm: maxNorm must be a positive number, got 0/);
    }));

  it("a non-finite norm leaves the gradients alone", () =>
    scope(() => {
      const g = Tensor.from([1, Infinity, 2], [3], "float32");
      expect(clipGradNorm([g], 1)).toBe(Infinity);
      expect(g.toArray()).toEqual([1, Infinity, 2]);
    }));
});
