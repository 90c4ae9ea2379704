/**
 * `npx tsx dev/eval/fusion-scores.ts --split val|test [--checkpoint DIR] --out FILE`: for every question of a
 * split, BM25's scores of its top 20 paragraphs and the extractive memory's best window score in every paragraph,
 * with the question's own paragraph — the material to judge whether fusing the two rankings finds the paragraph
 * more often than BM25 alone (analysis: dev/eval/fusion-analysis.ts).
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadEvalStream } from "../../src/eval/streams.js";
import { Bm25Retriever } from "../../src/eval/methods/retrieval.js";
import { loadMac } from "../../src/mac/io.js";
import { SelectAggregator } from "../../src/mac/aggregate/select.js";
import { amortizeDocuments } from "../../src/mac/windows.js";
import { concat, noGrad } from "../../src/tensor/index.js";

const { values } = parseArgs({
  options: {
    split: { type: "string", default: "val" },
    checkpoint: { type: "string", default: "checkpoints/mac-extractive-qa" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
    out: { type: "string" },
  },
});
const stream = loadEvalStream({
  data: values.data!,
  format: "squad",
  split: values.split as "val" | "test",
  maxDocs: 0,
});
const { docs, questions } = stream;
const docIndex = new Map(docs.map((d, i) => [d.id, i]));
const bm25 = new Bm25Retriever();
bm25.add(docs);
const bm25Top = questions.map((q) =>
  bm25.scored(q.question, 20).map((r) => [docIndex.get(r.doc.id)!, Number(r.score.toFixed(4))]),
);

const mac = await loadMac(values.checkpoint!);
const sel = mac.aggregator as unknown as SelectAggregator;
const amortized = amortizeDocuments(
  mac,
  docs.map((d) => d.text),
);
const entryDoc: number[] = amortized.flatMap((a, i) => Array.from({ length: a.entries.dim(0) }, () => i));
const memory = concat(
  amortized.map((a) => a.entries),
  0,
);
const macScores: number[][] = [];
noGrad(() => {
  for (let i = 0; i < questions.length; i += 16) {
    const q0 = mac.encodeQuestions(questions.slice(i, i + 16).map((q) => q.question));
    const s = sel.scores(q0, memory);
    const N = s.dim(1);
    for (let b = 0; b < s.dim(0); b++) {
      const perDoc = new Array<number>(docs.length).fill(-Infinity);
      for (let n = 0; n < N; n++) perDoc[entryDoc[n]!] = Math.max(perDoc[entryDoc[n]!]!, s.f32[b * N + n]!);
      macScores.push(perDoc.map((x) => Number(x.toFixed(4))));
    }
  }
});
writeFileSync(
  values.out!,
  JSON.stringify({
    split: values.split,
    checkpoint: values.checkpoint,
    docs: docs.length,
    questions: questions.map((q, i) => ({
      id: q.id,
      own: docIndex.get(q.docId),
      bm25: bm25Top[i],
      mac: macScores[i],
    })),
  }),
);
console.log(`wrote ${values.out}: ${questions.length} questions, ${docs.length} paragraphs`);
