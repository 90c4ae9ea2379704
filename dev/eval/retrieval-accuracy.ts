/**
 * `npx tsx dev/eval/retrieval-accuracy.ts [--split val|test] [--checkpoint DIR]`: how often each way of choosing
 * finds the question's own paragraph — BM25 top-k, the extractive memory's selection over the whole bank, and the
 * selection restricted to BM25's top-k paragraphs. Prints JSON.
 */
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
    checkpoint: { type: "string", default: "checkpoints/mac-extractive" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
    "max-docs": { type: "string", default: "0" },
  },
});
const stream = loadEvalStream({
  data: values.data!,
  format: "squad",
  split: values.split as "val" | "test",
  maxDocs: Number(values["max-docs"]),
});
const { docs, questions } = stream;
const bm25 = new Bm25Retriever();
bm25.add(docs);
const K = [1, 2, 3, 5];
const top = bm25.searchMany(
  questions.map((q) => q.question),
  5,
);
const recall = Object.fromEntries(
  K.map((k) => [
    k,
    top.filter((t, i) => t.slice(0, k).some((d) => d.id === questions[i]!.docId)).length / questions.length,
  ]),
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
const docIndex = new Map(docs.map((d, i) => [d.id, i]));
const scores: Float32Array[] = [];
noGrad(() => {
  for (let i = 0; i < questions.length; i += 16) {
    const q0 = mac.encodeQuestions(questions.slice(i, i + 16).map((q) => q.question));
    const s = sel.scores(q0, memory);
    const N = s.dim(1);
    for (let b = 0; b < s.dim(0); b++) scores.push(s.f32.slice(b * N, (b + 1) * N));
  }
});
const argmax = (row: Float32Array, allowed: (n: number) => boolean): number => {
  let best = -1;
  for (let n = 0; n < row.length; n++) if (allowed(n) && (best < 0 || row[n]! > row[best]!)) best = n;
  return best;
};
const acc = (pick: (i: number) => number): number =>
  questions.filter((q, i) => pick(i) === docIndex.get(q.docId)).length / questions.length;
const macAll = acc((i) => entryDoc[argmax(scores[i]!, () => true)]!);
const macInTopK = Object.fromEntries(
  [2, 3, 5].map((k) => [
    k,
    acc((i) => {
      const allowed = new Set(top[i]!.slice(0, k).map((d) => docIndex.get(d.id)!));
      const n = argmax(scores[i]!, (n) => allowed.has(entryDoc[n]!));
      return n < 0 ? -1 : entryDoc[n]!;
    }),
  ]),
);
console.log(
  JSON.stringify(
    {
      split: values.split,
      docs: docs.length,
      entries: entryDoc.length,
      questions: questions.length,
      bm25_recall: recall,
      mac_top1: macAll,
      mac_within_bm25_topk: macInTopK,
    },
    null,
    1,
  ),
);
