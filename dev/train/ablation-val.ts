/**
 * `npx tsx dev/train/ablation-val.ts CHECKPOINT | --untrained CONFIG [--questions 128]`: the memory ablation of a
 * training validation (the same 128 questions of the 4 validation articles, K = 8, as MacTrainer.evaluate), for a
 * checkpoint or an untrained model of a configuration (the control: what training added). Prints JSON.
 */
import { parseArgs } from "node:util";
import { examplesOf, loadSquad, splitArticles } from "../../src/data/squad.js";
import { ablationLosses } from "../../src/mac/ablation.js";
import { buildMac } from "../../src/mac/build.js";
import { readConfig } from "../../src/mac/config.js";
import { loadMac } from "../../src/mac/io.js";
import { trainingAnswer } from "../../src/mac/train/trainer.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    untrained: { type: "string" },
    questions: { type: "string", default: "128" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
  },
});
const mac = values.untrained ? await buildMac(readConfig(values.untrained)) : await loadMac(positionals[0]!);
const val = examplesOf(splitArticles(loadSquad(values.data!), { val: 4, test: 6 }).val);
const n = Math.min(Number(values.questions), val.length);
const stride = val.length / n;
const sample = Array.from({ length: n }, (_, i) => val[Math.floor(i * stride)]!);
const docs = [...new Set(val.map((e) => e.document))];
const ablation = ablationLosses(
  mac,
  sample.map((e) => ({ document: e.document, question: e.question, answer: trainingAnswer(e.answers) })),
  docs,
  { k: 8 },
);
console.log(JSON.stringify({ model: values.untrained ? `untrained ${values.untrained}` : positionals[0], ablation }));
