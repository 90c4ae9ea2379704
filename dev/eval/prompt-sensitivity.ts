/**
 * `npx tsx dev/eval/prompt-sensitivity.ts [--questions 96] [--data FILE]`: how much the BM25 baseline depends on its
 * prompt. The benchmark gives every method the MAC checkpoint's template ("Question: …\nAnswer:") after the
 * retrieved paragraph; a user of SmolLM2-135M-Instruct would more likely use its chat template with an instruction.
 * On a seeded sample of the test stream's questions, with the same top-1 BM25 paragraph, greedy decoding and at most
 * 16 new tokens, scores both prompts (SQuAD EM/F1 and the MAC/CaMeLS variants). Prints JSON.
 */
import { parseArgs } from "node:util";
import { squadStream } from "../../src/eval/data/squad.js";
import { answerPrompts, qaPrompt } from "../../src/eval/methods/answer.js";
import { Bm25Retriever } from "../../src/eval/methods/retrieval.js";
import type { MethodContext } from "../../src/eval/methods/types.js";
import { scoreAll } from "../../src/data/qa-metrics.js";
import { loadBase } from "../../src/mac/build.js";
import { DEFAULT_CONFIG } from "../../src/mac/config.js";
import { Rng } from "../../src/tensor/random.js";

const { values } = parseArgs({
  options: {
    questions: { type: "string", default: "96" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
  },
});
const stream = squadStream(values.data!, { split: "test" });
const sample = new Rng(0).shuffle([...stream.questions]).slice(0, Number(values.questions));
const bm25 = new Bm25Retriever();
bm25.add(stream.docs);
const found = bm25.searchMany(
  sample.map((q) => q.question),
  1,
);
const { model, tokenizer } = await loadBase(DEFAULT_CONFIG.base);
const ctx: MethodContext = {
  base: model,
  tokenizer,
  qaTemplate: DEFAULT_CONFIG.qaTemplate,
  decoding: { maxNewTokens: 16 },
  batchSize: 16,
  seed: 0,
};
// The benchmark's own templates (src/eval/methods/answer.ts); `mac-lm eval` now chooses between them on validation.
const prompts = {
  benchmark: sample.map((q, i) => qaPrompt(ctx, q.question, [found[i]![0]!.text])),
  chat: sample.map((q, i) => qaPrompt({ ...ctx, promptTemplate: "chat" }, q.question, [found[i]![0]!.text])),
};
const imStart = tokenizer.encode("<|im_start|>", { addSpecialTokens: false });
const result: Record<string, unknown> = { questions: sample.length, im_start_ids: imStart };
for (const [name, ps] of Object.entries(prompts)) {
  const preds = await answerPrompts(ctx, ps);
  result[name] = {
    scores: scoreAll(
      preds,
      sample.map((q) => q.answers),
    ),
    examples: preds.slice(0, 5),
  };
  process.stderr.write(`${name} done\n`);
}
console.log(JSON.stringify(result, null, 1));
bm25.dispose();
model.dispose();
