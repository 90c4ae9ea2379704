/**
 * `npx tsx dev/train/memory-ablation.ts CHECKPOINT [--questions 96] [--split val]`: does the trained MAC use what the
 * documents say? For held-out questions, the answer-token loss (the training objective, nats per token) of the frozen
 * LM with:
 *   none       no modulation;
 *   alone      a memory of the question's own document only (the curriculum's first stage, --memory-per-question 1);
 *   own        a memory of K = 8 documents that contains the question's own document (as in training);
 *   others     a memory of 8 other documents of the same articles (the answer is in none of them).
 * own < others means the modulation carries document content; own ≈ others < none means it only learned the answer
 * format. Prints JSON.
 */

import { parseArgs } from "node:util";
import { examplesOf, loadSquad } from "../../src/data/squad.js";
import { squadSplitArticles } from "../../src/eval/data/squad.js";
import { loadMac } from "../../src/mac/io.js";
import { noGrad, scope } from "../../src/tensor/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    questions: { type: "string", default: "96" },
    split: { type: "string", default: "val" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
  },
});
const ckpt = positionals[0] ?? "checkpoints/mac-default";
const examples = examplesOf(squadSplitArticles(loadSquad(values.data!), values.split as "val"));
const docs = [...new Set(examples.map((e) => e.document))];
const mac = await loadMac(ckpt);
const K = 8;
const n = Math.min(Number(values.questions), examples.length);
const step = Math.max(1, Math.floor(examples.length / n));
const sample = Array.from({ length: n }, (_, i) => examples[i * step]!);
const sums = { none: 0, alone: 0, own: 0, others: 0 };
noGrad(() => {
  for (const [i, e] of sample.entries()) {
    const own = docs.indexOf(e.document);
    // Deterministic distractors: the next documents of the split, skipping the question's own.
    const others = Array.from({ length: K }, (_, j) => docs[(own + 1 + j * 7) % docs.length]!).filter(
      (d) => d !== e.document,
    );
    const qa = [{ question: e.question, answer: e.answers[0]! }];
    scope(() => {
      sums.none += mac.answerLoss(qa).item();
      const q0 = mac.encodeQuestions([e.question]);
      sums.alone += mac.answerLoss(qa, mac.modulate(q0, mac.amortize([e.document]))).item();
      sums.own += mac.answerLoss(qa, mac.modulate(q0, mac.amortize([e.document, ...others.slice(0, K - 1)]))).item();
      sums.others += mac.answerLoss(qa, mac.modulate(q0, mac.amortize(others.slice(0, K)))).item();
    });
    if ((i + 1) % 16 === 0) process.stderr.write(`${i + 1}/${n}\n`);
  }
});
const mean = (x: number): number => Math.round((x / n) * 1e4) / 1e4;
console.log(
  JSON.stringify({
    checkpoint: ckpt,
    split: values.split,
    questions: n,
    answer_loss: {
      none: mean(sums.none),
      alone: mean(sums.alone),
      own: mean(sums.own),
      others: mean(sums.others),
    },
  }),
);
mac.dispose();
mac.base.dispose();
