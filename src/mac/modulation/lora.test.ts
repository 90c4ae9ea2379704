import { describe, expect, it } from "vitest";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { loraDelta } from "../../models/lora.js";
import type { ModelGeometry, Modulation } from "../../models/types.js";
import { type Tensor, Tensor as T, add, concat, grad, reshape, scope } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import { Aggregator } from "../aggregate/aggregator.js";
import { refLayerNormVec, refLinearVec } from "../aggregate/reference.js";
import { refGelu } from "../../tensor/reference/activation.js";
import { LoraModulation, loraFeatures } from "./lora.js";
import { repeatIndices } from "./repeat.js";

// GQA geometry: C = 10, NH = 4, NKV = 2, HS = 3 -> q out 12, k/v out 6, o in 12.
const G: ModelGeometry = { numLayers: 3, hiddenSize: 10, numHeads: 4, numKvHeads: 2, headDim: 3, vocabSize: 20 };

/** Σ over layers and targets of the delta on a fixed input x (B, S, in), as one flat tensor. */
function allDeltas(mod: LoraModulation, m: Modulation, xs: Map<number, Tensor>): Tensor {
  const parts: Tensor[] = [];
  for (const layer of m.lora!)
    for (const role of mod.targets) {
      const d = layer[role]!;
      const { in: nIn, out } = loraFeatures(mod.geometry, role);
      parts.push(reshape(loraDelta("test", xs.get(nIn)!, d, out), [-1]));
    }
  return concat(parts, 0);
}

function inputs(B: number, dtype: "float64" | "float32" = "float64"): Map<number, Tensor> {
  return new Map([10, 12].map((n) => [n, randn([B, 2, n], { seed: n, dtype })]));
}

describe("LoraModulation", () => {
  it("produces A (B, r, in) and B (B, out, r) for every layer and target, scaling alpha / r", () =>
    scope(() => {
      const mod = new LoraModulation(G, 8, { rank: 2, alpha: 6, targets: ["q", "v", "o"], hidden: 5 });
      const { lora } = mod.forward(randn([2, 4, 8], { seed: 1 }));
      expect(lora!.length).toBe(3);
      for (const layer of lora!) {
        expect(Object.keys(layer).sort()).toEqual(["o", "q", "v"]);
        expect(layer.q!.a.shape).toEqual([2, 2, 10]);
        expect(layer.q!.b.shape).toEqual([2, 12, 2]);
        expect(layer.v!.a.shape).toEqual([2, 2, 10]);
        expect(layer.v!.b.shape).toEqual([2, 6, 2]);
        expect(layer.o!.a.shape).toEqual([2, 2, 12]);
        expect(layer.o!.b.shape).toEqual([2, 10, 2]);
        expect(layer.q!.scaling).toBe(3);
      }
      expect(mod.numPositions).toBe(3 * 3 * 2);
      mod.dispose();
    }));

  it("maps position (target t, layer l, component i) = (t·L + l)·r + i to row i of A / column i of B", () =>
    scope(() => {
      const [B, Tz, d, r, hidden] = [2, 4, 8, 2, 5];
      const mod = new LoraModulation(G, d, { rank: r, hidden, rng: new Rng(3), dtype: "float64" });
      const rng = new Rng(4);
      for (const lin of mod.to_b)
        for (const t of [lin.weight, lin.bias!]) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal();
      const z = randn([B, Tz, d], { seed: 5, dtype: "float64" });
      const { lora } = mod.forward(z);
      const L = G.numLayers;
      const tok = repeatIndices(Tz, mod.numPositions);
      const p = mod.stateDict();
      const W = (n: string): ArrayLike<number> => p.get(n)!.data;
      mod.targets.forEach((role, t) => {
        const { in: nIn, out } = loraFeatures(G, role);
        for (let l = 0; l < L; l++)
          for (let i = 0; i < r; i++) {
            const k = (t * L + l) * r + i;
            for (let b = 0; b < B; b++) {
              const x = Array.from(z.data)
                .slice((b * Tz + tok[k]!) * d, (b * Tz + tok[k]! + 1) * d)
                .map((v, c) => v + W("pos")[k * d + c]!);
              const h = refLinearVec(
                refLayerNormVec(x, W("norm.weight"), W("norm.bias")),
                W("fc.weight"),
                W("fc.bias"),
                hidden,
              ).map((v) => refGelu(v, "none"));
              const aRow = refLinearVec(h, W(`to_a.${t}.weight`), W(`to_a.${t}.bias`), nIn);
              const bCol = refLinearVec(h, W(`to_b.${t}.weight`), W(`to_b.${t}.bias`), out);
              const A = lora![l]![role]!.a.data;
              const Bm = lora![l]![role]!.b.data;
              expectClose(Array.from(A).slice((b * r + i) * nIn, (b * r + i + 1) * nIn), aRow, {
                rtol: 1e-12,
                atol: 1e-12,
              });
              expectClose(
                Array.from({ length: out }, (_, o) => Bm[(b * out + o) * r + i]!),
                bCol,
                { rtol: 1e-12, atol: 1e-12 },
              );
            }
          }
      });
      mod.dispose();
    }));

  it("starts at a zero delta (B = 0), and gradients reach to_b at once and everything once B ≠ 0", () => {
    const mod = new LoraModulation(G, 8, {
      rank: 2,
      targets: ["q", "k", "v", "o"],
      hidden: 5,
      rng: new Rng(6),
      dtype: "float64",
    });
    const z = randn([2, 3, 8], { seed: 7, dtype: "float64" }).requireGrad();
    const xs = inputs(2);
    scope(() => {
      const m = mod.forward(z);
      for (const layer of m.lora!)
        for (const d of Object.values(layer)) expect(d.b.toArray().every((v) => v === 0)).toBe(true);
      const deltas = allDeltas(mod, m, xs);
      expect(deltas.toArray().every((v) => v === 0)).toBe(true);
      // A loss on the modulated outputs: gradients reach to_b (weights and biases), not yet A's side (PEFT's start).
      const named = mod.namedParameters();
      const gs = grad(deltas, [z, ...named.map(([, t]) => t)], {
        gradOutput: randn(deltas.shape, { seed: 8, dtype: "float64" }),
      });
      const nonzero = (t: Tensor): boolean => t.toArray().some((v) => v !== 0);
      expect(nonzero(gs[0]!)).toBe(false);
      named.forEach(([name], i) => expect(nonzero(gs[i + 1]!), name).toBe(name.startsWith("to_b.")));
    });
    // After B moves away from zero (as after a first step), gradients flow everywhere, and match finite differences.
    const rng = new Rng(9);
    for (const lin of mod.to_b)
      for (const t of [lin.weight, lin.bias!]) for (let i = 0; i < t.size; i++) t.data[i] = 0.3 * rng.normal();
    gradCheck((zz) => allDeltas(mod, mod.forward(zz), xs), [z], { maxElements: 24 });
    const some = mod.parameters().filter((_, i) => i % 2 === 1);
    gradCheck((...ps) => allDeltas(mod, mod.forward(ps[0]!), xs), [z, ...some], { maxElements: 6 });
    z.dispose();
    for (const x of xs.values()) x.dispose();
    mod.dispose();
  });

  it("float64 gradients from the deltas into question tokens and memory entries through the aggregator", () => {
    const agg = new Aggregator(10, { numBlocks: 1, numHeads: 2, headDim: 3, rng: new Rng(10), dtype: "float64" });
    const mod = new LoraModulation(G, 10, { rank: 2, hidden: 5, rng: new Rng(11), dtype: "float64" });
    const rng = new Rng(12);
    for (const lin of mod.to_b)
      for (const t of [lin.weight, lin.bias!]) for (let i = 0; i < t.size; i++) t.data[i] = 0.3 * rng.normal();
    const q0 = randn([2, 3, 10], { seed: 13, dtype: "float64" }).requireGrad();
    const bank = randn([4, 3, 10], { seed: 14, dtype: "float64" }).requireGrad();
    const xs = inputs(2);
    gradCheck((q, m) => allDeltas(mod, mod.forward(agg.forward(q, m)), xs), [q0, bank], { maxElements: 24 });
    for (const t of [q0, bank, ...xs.values()]) t.dispose();
    agg.dispose();
    mod.dispose();
  });

  it("works with the base model's LoRA application (zero at start: the base projection is unchanged)", () =>
    scope(() => {
      const mod = new LoraModulation(G, 8, { rank: 4, hidden: 6 });
      const m = mod.forward(randn([2, 3, 8], { seed: 15 }));
      const x = randn([2, 5, 10], { seed: 16 });
      const y = randn([2, 5, 12], { seed: 17 });
      const out = add(y, loraDelta("q", x, m.lora![0]!.q!, 12));
      expect(out.toArray()).toEqual(y.toArray());
      expect(() => new LoraModulation(G, 8, { targets: [] })).toThrow(/targets/);
      expect(() => new LoraModulation(G, 8, { rank: 0 })).toThrow(/rank/);
      expect(() => mod.forward(T.zeros([2, 3, 7]))).toThrow(/latent/);
      mod.dispose();
    }));
});
