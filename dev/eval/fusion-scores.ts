/**
 * `npx tsx dev/eval/fusion-scores.ts --split val|test [--checkpoint DIR] --out FILE`: for every question of a
 * split, BM25's scores of its top 20 paragraphs and the extractive memory's best window score in every paragraph,
 * with the question's own paragraph — the material to judge whether fusing the two rankings finds the paragraph
 * more often than BM25 alone (analysis: dev/eval/fusion-analysis.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadEvalStream } from "../../src/eval/streams.js";
import { Bm25Retriever } from "../../src/eval/methods/retrieval.js";
import { loadMac } from "../../src/mac/io.js";
import { Mac } from "../../src/api/mac.js";

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

// The memory's score of every paragraph: its best window's (Mac.documentScores over a bank of the split).
const bankDir = mkdtempSync(join(tmpdir(), "maclm-fusion-"));
const api = Mac.fromModel(await loadMac(values.checkpoint!), { bank: bankDir });
await api.adapt(docs.map((d) => ({ id: d.id, text: d.text })));
const macScores: number[][] = [];
for (let i = 0; i < questions.length; i += 16)
  for (const perDoc of api.documentScores(questions.slice(i, i + 16).map((q) => q.question)))
    macScores.push(docs.map((d) => Number(perDoc.get(d.id)!.toFixed(4))));
await api.close();
rmSync(bankDir, { recursive: true, force: true });
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
