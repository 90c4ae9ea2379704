/**
 * GPT-2 against Hugging Face's GPT2LMHeadModel (fixtures: reference/dump_decoders.py, test/fixtures/models/gpt2-tiny):
 * logits, logits with a P-tuning v2 prefix (positions starting at P), and the prefix gradients through the frozen
 * model, at 1e-4 relative.
 */
import { afterAll, describe, expect, test } from "vitest";
import { loadCausalLM } from "../../src/models/load.js";
import { checkLogits, checkPrefixGradients, checkPrefixLogits, openFixture } from "./decoder-parity.js";

const DIR = "test/fixtures/models/gpt2-tiny";

describe("gpt2 parity (gpt2-tiny)", () => {
  const fx = openFixture(DIR);
  const model = loadCausalLM(DIR);
  afterAll(() => {
    fx.close();
    model.dispose();
  });

  test("loads the Hugging Face folder (config.json model_type gpt2, Conv1D weights transposed)", () => {
    expect(model.modelType).toBe("gpt2");
    expect([
      model.numLayers,
      model.hiddenSize,
      model.numHeads,
      model.numKvHeads,
      model.headDim,
      model.vocabSize,
    ]).toEqual([2, 32, 4, 4, 8, 96]);
    expect(model.training).toBe(false);
    expect(model.eosTokenId).toBe(1);
  });

  test("logits without a prefix (right padding in row 1)", () => checkLogits(model, fx));
  test("logits with a prefix of P = 2 (mask extended by P, positions P..P+T-1)", () => checkPrefixLogits(model, fx));
  test("loss and its gradients w.r.t. the prefix through the frozen model", () => checkPrefixGradients(model, fx));
});
