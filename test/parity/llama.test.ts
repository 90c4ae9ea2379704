/**
 * Llama against Hugging Face's LlamaForCausalLM (fixtures: reference/dump_decoders.py, test/fixtures/models/llama-tiny):
 * grouped-query attention (4 heads, 2 kv heads), RoPE, tied embeddings; logits, logits with a P-tuning v2 prefix
 * (unrotated prefix keys, token positions from P), and the prefix gradients through the frozen model, at 1e-4
 * relative. The same weights written as llama.cpp's GGUF (permuted q/k, llama.* metadata) must give the same.
 */
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, test } from "vitest";
import { loadCausalLM } from "../../src/models/load.js";
import type { LlamaForCausalLM } from "../../src/models/llama/model.js";
import { Tensor, scope } from "../../src/tensor/index.js";
import { cachedFile } from "../helpers/model-cache.js";
import { expectClose } from "../helpers/numeric.js";
import { checkLogits, checkPrefixGradients, checkPrefixLogits, openFixture } from "./decoder-parity.js";

/** 30 float32 layers on both sides: measured max abs error 3e-5 on logits of size ~15. */
const SMOL_TOL = { rtol: 1e-4, atol: 1e-4 };

const DIR = "test/fixtures/models/llama-tiny";

describe.each([
  ["Hugging Face folder", DIR],
  ["GGUF file", `${DIR}/model.gguf`],
])("llama parity (llama-tiny, %s)", (_, path) => {
  const fx = openFixture(DIR);
  const model = loadCausalLM(path);
  afterAll(() => {
    fx.close();
    model.dispose();
  });

  test("config and geometry", () => {
    expect(model.modelType).toBe("llama");
    expect([
      model.numLayers,
      model.hiddenSize,
      model.numHeads,
      model.numKvHeads,
      model.headDim,
      model.vocabSize,
    ]).toEqual([2, 32, 4, 2, 8, 96]);
    const c = (model as LlamaForCausalLM).config;
    expect([c.intermediate_size, c.rope_theta, c.tie_word_embeddings, c.max_position_embeddings]).toEqual([
      64,
      10000,
      true,
      64,
    ]);
    expect(c.rms_norm_eps).toBeCloseTo(1e-6, 12);
    expect([model.bosTokenId, model.eosTokenId]).toEqual([0, 1]);
    expect(model.training).toBe(false);
    expect(model.namedParameters().some(([n]) => n.startsWith("lm_head"))).toBe(false);
  });

  test("logits without a prefix (right padding in row 1)", () => checkLogits(model, fx));
  test("logits with a prefix of P = 2 (unrotated prefix keys, positions from P)", () => checkPrefixLogits(model, fx));
  test("loss and its gradients w.r.t. the prefix through the frozen model", () => checkPrefixGradients(model, fx));
});

/**
 * The real SmolLM2-135M-Instruct (Q4_1 GGUF: 30 layers, 9 heads, 3 kv heads, rope_theta 1e5) against the logits
 * transformers computes from the same file (reference/dump_decoders.py --smollm2): a few logit columns, the
 * log-sum-exp and the argmax of every position, without and with a formula-defined prefix of P = 2.
 */
interface SmolSummary {
  columns: number[][];
  logsumexp: number[];
  argmax: number[];
  mean: number[];
}

const smol = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");

describe("llama parity (SmolLM2-135M GGUF)", () => {
  test.skipIf(!smol.present)(`logits without and with a prefix match transformers${smol.skipNote}`, () => {
    const ref = JSON.parse(readFileSync("test/fixtures/models/smollm2-reference.json", "utf8")) as {
      ids: number[];
      columns: number[];
      logits: SmolSummary;
      logits_prefix: SmolSummary;
    };
    const model = loadCausalLM(smol.path, { freeze: true });
    expect([model.numLayers, model.numHeads, model.numKvHeads, model.headDim, model.vocabSize]).toEqual([
      30, 9, 3, 64, 49152,
    ]);
    expect((model as LlamaForCausalLM).config.rope_theta).toBe(100000);
    scope(() => {
      const T = ref.ids.length;
      const ids = Tensor.from(ref.ids, [1, T], "int32");
      // smollm2_prefix() of the reference script, in our layout (1, P, NKV, HS).
      const n = 2 * model.numKvHeads * model.headDim;
      const prefix = Array.from({ length: model.numLayers }, (_, l) => ({
        k: Tensor.from(
          Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(0.37 * i + 1.3 * l)),
          [1, 2, model.numKvHeads, model.headDim],
        ),
        v: Tensor.from(
          Float32Array.from({ length: n }, (_, i) => 0.5 * Math.cos(0.21 * i + 0.7 * l)),
          [1, 2, model.numKvHeads, model.headDim],
        ),
      }));
      for (const [logits, want, label] of [
        [model.forward({ ids }), ref.logits, "SmolLM2 logits"],
        [model.forward({ ids, modulation: { prefix } }), ref.logits_prefix, "SmolLM2 logits with prefix"],
      ] as [Tensor, SmolSummary, string][]) {
        const V = model.vocabSize;
        const d = logits.data;
        const cols = Array.from({ length: T }, (_, t) => ref.columns.map((j) => d[t * V + j]!)).flat();
        expectClose(cols, want.columns.flat(), SMOL_TOL, `${label} columns`);
        const lse = Array.from({ length: T }, (_, t) => {
          let m = -Infinity;
          for (let j = 0; j < V; j++) m = Math.max(m, d[t * V + j]!);
          let s = 0;
          for (let j = 0; j < V; j++) s += Math.exp(d[t * V + j]! - m);
          return m + Math.log(s);
        });
        expectClose(lse, want.logsumexp, SMOL_TOL, `${label} logsumexp`);
        const argmax = Array.from({ length: T }, (_, t) => {
          let best = 0;
          for (let j = 1; j < V; j++) if (d[t * V + j]! > d[t * V + best]!) best = j;
          return best;
        });
        expect(argmax, `${label} argmax`).toEqual(want.argmax);
      }
    });
    model.dispose();
  });
});
