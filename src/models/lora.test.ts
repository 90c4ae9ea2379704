/**
 * LoRA modulation (peft-style checks) on both decoder families: B = 0 gives exactly the base logits; a shared
 * (batch 1) update equals merging W + scaling·B·A into the weight (GPT-2's q/k/v on the thirds of c_attn);
 * per-example updates equal running each example alone; gradients reach A and B through the frozen model.
 * loraDelta itself is checked against finite differences in float64.
 */
import { afterAll, describe, expect, test } from "vitest";
import { expectClose, gradCheck } from "../../test/helpers/numeric.js";
import { type Tensor, Tensor as T, grad, indexSelect, mul, scope, sum, untrack } from "../tensor/index.js";
import { randint, randn } from "../tensor/random.js";
import { loadCausalLM } from "./load.js";
import { loraTargetWeight } from "./adapter.js";
import { GPT2LMHeadModel } from "./gpt2/model.js";
import { LlamaForCausalLM } from "./llama/model.js";
import { loraDelta, mergeLora } from "./lora.js";
import type { CausalLM, LayerLora, LoraDelta, LoraTarget } from "./types.js";

const B = 2;
const Tn = 5;
const R = 4;

const targetWeight = loraTargetWeight;

function randomDelta(m: CausalLM, l: number, role: LoraTarget, batch: number, seed: number, zeroB = false): LoraDelta {
  const { lin, out } = targetWeight(m, l, role);
  const a = untrack(randn([batch, R, lin.inFeatures], { seed, std: 0.3 }));
  const b = untrack(zeroB ? T.zeros([batch, out, R]) : randn([batch, out, R], { seed: seed + 1, std: 0.3 }));
  return { a, b, scaling: 0.5 };
}

const ROLES: LoraTarget[] = ["q", "k", "v", "o"];

describe.each([["gpt2-tiny"], ["llama-tiny"]])("%s", (name) => {
  const model = loadCausalLM(`test/fixtures/models/${name}`, { freeze: true });
  const ids = untrack(randint([B, Tn], model.vocabSize, { seed: 3 }));
  const lora = (batch: number, seed: number, zeroB = false): LayerLora[] =>
    Array.from({ length: model.numLayers }, (_, l) =>
      Object.fromEntries(ROLES.map((r, i) => [r, randomDelta(model, l, r, batch, seed + 10 * l + 2 * i, zeroB)])),
    );
  const free = (ls: LayerLora[]): void =>
    ls.forEach((x) => Object.values(x).forEach((d: LoraDelta) => [d.a, d.b].forEach((t) => t.dispose())));
  afterAll(() => {
    model.dispose();
    ids.dispose();
  });

  test("B = 0 gives exactly the base logits", () => {
    const zero = lora(B, 1, true);
    scope(() => {
      const base = model.forward({ ids });
      const withZero = model.forward({ ids, modulation: { lora: zero } });
      expect(Array.from(withZero.data)).toEqual(Array.from(base.data));
    });
    free(zero);
  });

  test.each(ROLES)("a shared (batch 1) update of %s equals the merged weight", (role) => {
    const deltas = lora(1, 20);
    const only: LayerLora[] = deltas.map((x) => ({ [role]: x[role] }));
    scope(() => {
      const modulated = model.forward({ ids, modulation: { lora: only } });
      const saved = only.map((_, l) => targetWeight(model, l, role).lin.weight.clone());
      only.forEach((x, l) => {
        const { lin, row } = targetWeight(model, l, role);
        const merged = mergeLora(lin.weight, x[role]!, row);
        lin.weight.data.set(merged.data);
        merged.dispose();
      });
      const merged = model.forward({ ids });
      saved.forEach((w, l) => targetWeight(model, l, role).lin.weight.data.set(w.data));
      expectClose(modulated.data, merged.data, { rtol: 1e-4, atol: 2e-5 }, `${role} merged`);
      const base = model.forward({ ids }).data;
      expect(Math.max(...Array.from(modulated.data, (x, i) => Math.abs(x - base[i]!)))).toBeGreaterThan(1e-3); // the update matters
    });
    free(deltas);
  });

  test("per-example updates equal running each example with its own", () => {
    const deltas = lora(B, 40);
    scope(() => {
      const both = model.forward({ ids, modulation: { lora: deltas } }); // (B, T, V)
      for (let b = 0; b < B; b++) {
        const row = T.from([b], [1], "int32");
        const pick = (t: Tensor): Tensor => indexSelect(t, row);
        const own = deltas.map((x) =>
          Object.fromEntries(
            Object.entries(x).map(([r, d]: [string, LoraDelta]) => [
              r,
              { a: pick(d.a), b: pick(d.b), scaling: d.scaling },
            ]),
          ),
        );
        const alone = model.forward({ ids: pick(ids), modulation: { lora: own } });
        expectClose(alone.data, pick(both).data, { rtol: 1e-5, atol: 1e-5 }, `example ${b}`);
      }
    });
    free(deltas);
  });

  test("gradients reach A and B through the frozen model (directional finite difference)", () => {
    const deltas = lora(B, 60);
    for (const x of deltas) for (const d of Object.values(x) as LoraDelta[]) [d.a, d.b].forEach((t) => t.requireGrad());
    const params = deltas.flatMap((x) => (Object.values(x) as LoraDelta[]).flatMap((d) => [d.a, d.b]));
    scope(() => {
      const Rw = randn([B, Tn, model.vocabSize], { seed: 5 });
      const loss = (): Tensor => sum(mul(model.forward({ ids, modulation: { lora: deltas } }), Rw));
      const gs = grad(loss(), params);
      expect(gs.every((g) => g.data.some((x) => x !== 0))).toBe(true);
      expect(model.trainableParameters()).toEqual([]);
      // L(p + εu) − L(p − εu) ≈ 2ε·(g·u) with u = g/|g|, for one A and one B.
      for (const i of [0, params.length - 1]) {
        const p = params[i]!;
        const g = gs[i]!.data;
        const norm = Math.sqrt(Array.from(g).reduce((s, x) => s + x * x, 0));
        const eps = 1e-2;
        const orig = Float32Array.from(p.data);
        const shift = (sgn: number): number => {
          p.data.set(orig.map((x, j) => x + (sgn * eps * g[j]!) / norm));
          return scope(() => loss().item());
        };
        const fd = (shift(1) - shift(-1)) / (2 * eps);
        p.data.set(orig);
        expect(Math.abs(fd - norm) / norm).toBeLessThan(1e-2);
      }
    });
    free(deltas);
  });

  test("LoRA shape errors name the shapes", () => {
    scope(() => {
      const ok = lora(1, 80);
      const bad: LayerLora[] = ok.map((x) => ({ q: { a: x.q!.a, b: x.k!.a, scaling: 1 } }));
      expect(() => model.forward({ ids, modulation: { lora: bad } })).toThrow(
        /LoRA A must be \(B\|1, r, \d+\) and B \(B\|1, \d+, r\)/,
      );
      expect(() => model.forward({ ids, modulation: { lora: ok.slice(1) } })).toThrow(
        /modulation.lora has 1 layers, the model has 2/,
      );
      const wrongBatch: LayerLora[] = ok.map((x) => ({ q: { ...x.q!, a: randn([3, R, model.hiddenSize]) } }));
      expect(() => model.forward({ ids, modulation: { lora: wrongBatch } })).toThrow(/LoRA batch dims must be 1 or 2/);
      free(ok);
    });
  });
});

describe("loraDelta gradients (float64 finite differences)", () => {
  test.each([
    ["per-example A and B", 2, 2],
    ["shared A and B", 1, 1],
    ["shared A, per-example B", 1, 2],
  ])("%s", (_, ba, bb) => {
    const x = randn([2, 3, 5], { seed: 1, dtype: "float64" }).requireGrad();
    const a = randn([ba, R, 5], { seed: 2, dtype: "float64" }).requireGrad();
    const b = randn([bb, 6, R], { seed: 3, dtype: "float64" }).requireGrad();
    gradCheck((x, a, b) => loraDelta("test", x!, { a: a!, b: b!, scaling: 0.7 }, 6), [x, a, b]);
    for (const t of [x, a, b]) t.dispose();
  });
});

test("a random model of each family runs (constructors without a checkpoint)", () => {
  const g = new GPT2LMHeadModel(
    { ...(loadCausalLM("test/fixtures/models/gpt2-tiny") as GPT2LMHeadModel).config },
    { seed: 1 },
  );
  const l = new LlamaForCausalLM(
    { ...(loadCausalLM("test/fixtures/models/llama-tiny") as LlamaForCausalLM).config, tie_word_embeddings: false },
    { seed: 1 },
  );
  expect(l.namedParameters().map(([n]) => n)).toContain("lm_head.weight");
  scope(() => {
    const ids = randint([1, 3], 96, { seed: 1 });
    expect(g.forward({ ids }).shape).toEqual([1, 3, 96]);
    expect(l.forward({ ids }).shape).toEqual([1, 3, 96]);
  });
  g.dispose();
  l.dispose();
});
