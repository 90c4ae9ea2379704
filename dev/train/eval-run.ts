/**
 * `npx tsx dev/train/eval-run.ts RUN_DIR [--questions N] [--split val|test]`: scores a training run's newest
 * checkpoint on its held-out articles: MAC (memory of all the split's documents, full aggregation) against the same
 * frozen base LM without adaptation, greedy decoding. Prints JSON (scores in percent). Until `mac-lm eval` exists.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { examplesOf, loadSquad } from "../../src/data/squad.js";
import { scoreAll } from "../../src/data/qa-metrics.js";
import { loadMac, weightsFolder } from "../../src/mac/io.js";
import { concat, noGrad, scope } from "../../src/tensor/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    questions: { type: "string", default: "48" },
    split: { type: "string", default: "val" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
  },
});
const run = positionals[0] ?? "runs/squad-default";
const split = JSON.parse(readFileSync(join(run, "split.json"), "utf8")) as Record<string, string[]>;
const titles = new Set(split[values.split!]);
const examples = examplesOf(loadSquad(values.data!).filter((a) => titles.has(a.title)));
const sample = examples.slice(0, Number(values.questions));
const mac = await loadMac(run);
const docs = [...new Set(examples.map((e) => e.document))];
const t0 = performance.now();
const memory = noGrad(() => scope(() => concat(mac.amortizeBatched(docs), 0)));
const adaptS = (performance.now() - t0) / 1000;
const withMemory = mac.answer(
  sample.map((e) => e.question),
  memory,
  { maxNewTokens: 16 },
);
const without = mac.answer(
  sample.map((e) => e.question),
  null,
  { maxNewTokens: 16 },
);
const refs = sample.map((e) => e.answers);
const state = JSON.parse(readFileSync(join(weightsFolder(run), "state.json"), "utf8")) as { step: number };
console.log(
  JSON.stringify(
    {
      run,
      step: state.step,
      split: values.split,
      documents: docs.length,
      questions: sample.length,
      adapt_s: Math.round(adaptS * 10) / 10,
      mac: scoreAll(withMemory, refs),
      none: scoreAll(without, refs),
      examples: sample
        .slice(0, 8)
        .map((e, i) => ({ q: e.question, gold: e.answers[0], mac: withMemory[i], none: without[i] })),
    },
    null,
    2,
  ),
);
