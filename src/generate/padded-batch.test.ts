/**
 * Batched greedy generation of prompts of different lengths (left padding) gives, token for token, what each prompt
 * gives alone: the models take positions from the attention mask as Hugging Face's generate() does, in the prompt
 * pass and in the cached steps, with and without a prefix modulation (positions then start at P). On the tiny
 * fixture models (GPT-2: learned absolute positions; Llama: RoPE) and the real SmolLM2-135M from the model cache.
 * (RoPE attention only sees relative positions, so without a prefix a shift of all positions changes Llama's
 * results by rounding only; the unrotated prefix keys make the absolute positions matter.)
 */
import { afterAll, describe, expect, test } from "vitest";
import { cachedFile } from "../../test/helpers/model-cache.js";
import { loadCausalLM } from "../models/load.js";
import type { CausalLM, LayerKV } from "../models/types.js";
import { Tensor, untrack } from "../tensor/index.js";
import { Rng } from "../tensor/random.js";
import { greedySearch } from "./index.js";

/** A batch-1 prefix of P positions: deterministic values of about `scale`. */
function prefixFor(m: CausalLM, P: number, seed: number, scale: number): LayerKV[] {
  const rng = new Rng(seed);
  const n = P * m.numKvHeads * m.headDim;
  const t = (): Tensor =>
    untrack(
      Tensor.from(
        Float32Array.from({ length: n }, () => scale * rng.normal()),
        [1, P, m.numKvHeads, m.headDim],
      ),
    );
  return Array.from({ length: m.numLayers }, () => ({ k: t(), v: t() }));
}

function promptsFor(vocab: number, lengths: number[], seed: number): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => rng.int(vocab)));
}

/** Generates the prompts as one batch and one by one; both must agree (and the batch must really be padded). */
function checkBatchEqualsAlone(model: CausalLM, prompts: number[][], maxNewTokens: number, prefix?: LayerKV[]) {
  expect(new Set(prompts.map((p) => p.length)).size).toBe(prompts.length);
  const opts = { maxNewTokens, eosTokenId: null, ...(prefix ? { modulation: { prefix } } : {}) };
  const alone = prompts.map((p) => greedySearch(model, [p], opts).sequences[0]!);
  const batched = greedySearch(model, prompts, opts).sequences;
  expect(batched).toEqual(alone);
  expect(alone.every((s) => s.length === maxNewTokens)).toBe(true);
  // The prompts are not degenerate: they lead to different continuations.
  expect(new Set(alone.map((s) => s.join(","))).size).toBeGreaterThan(1);
}

describe.each([
  ["gpt2-tiny", 0.5],
  ["llama-tiny", 0.5],
])("%s: batched greedy generation of left-padded prompts", (name, scale) => {
  const model = loadCausalLM(`test/fixtures/models/${name}`, { freeze: true });
  const prefix = prefixFor(model, 3, 5, scale);
  const prompts = promptsFor(model.vocabSize, [2, 8, 5], 11);
  afterAll(() => {
    model.dispose();
    for (const { k, v } of prefix) [k, v].forEach((t) => t.dispose());
  });

  test("equals each prompt alone, without a prefix", () => checkBatchEqualsAlone(model, prompts, 10));
  test("equals each prompt alone, with a prefix (P = 3)", () => checkBatchEqualsAlone(model, prompts, 10, prefix));
});

const smol = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");

describe("SmolLM2-135M: batched greedy generation of left-padded prompts", () => {
  test.skipIf(!smol.present)(`equals each prompt alone, without and with a prefix${smol.skipNote}`, () => {
    const model = loadCausalLM(smol.path, { freeze: true });
    const prompts = promptsFor(model.vocabSize, [3, 9, 5], 23);
    const prefix = prefixFor(model, 2, 7, 0.5);
    try {
      checkBatchEqualsAlone(model, prompts, 6);
      checkBatchEqualsAlone(model, prompts, 6, prefix);
    } finally {
      for (const { k, v } of prefix) [k, v].forEach((t) => t.dispose());
      model.dispose();
    }
  });
});
