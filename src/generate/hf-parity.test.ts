// generate() on a real model against Hugging Face generate(): test/fixtures/models/gpt2-tiny (the decoder parity
// fixture) loaded by our GPT-2, token ids from reference/dump_generate.py (transformers 4.46.3, re-checked by 5.x).
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { loadCausalLM } from "../models/load.js";
import { type GenerateOptions, generate } from "./index.js";

interface Case {
  name: string;
  prompts: number[][];
  options: GenerateOptions;
  sequences: number[][];
  scores: number[] | null;
}
const fixture = JSON.parse(readFileSync("test/fixtures/generate/gpt2-tiny.json", "utf8")) as {
  transformers: string;
  model: string;
  eos: number;
  cases: Case[];
};
const model = loadCausalLM(fixture.model);
afterAll(() => model.dispose());

describe(`gpt2-tiny: greedy, beam and diverse beam search as transformers ${fixture.transformers}`, () => {
  for (const c of fixture.cases) {
    it(c.name, () => {
      const out = generate(model, c.prompts, { ...c.options, eosTokenId: fixture.eos });
      expect(out.sequences).toEqual(c.sequences);
      if (c.scores !== null) out.scores!.forEach((s, i) => expect(s).toBeCloseTo(c.scores![i]!, 4));
    });
  }
});
