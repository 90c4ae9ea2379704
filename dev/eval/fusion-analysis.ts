/**
 * `npx tsx dev/eval/fusion-analysis.ts --scores FILE --predictions FILE [--split val]`: BM25 + MAC's reading rule
 * judged offline. From dev/eval/fusion-scores.ts (BM25's and the memory's scores) and the answers of
 * dev/eval/combine-prompts.ts (variants `bm25`: BM25's paragraph; `mac`: the memory's window in MAC's frame), the F1
 * of "read the memory's window where it lies in BM25's first paragraph, or where BM25(d) + λ·memory(d) of its
 * paragraph beats the first's; else the paragraph", for a grid of λ (λ = 0: agreement only). Prints JSON lines.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { squadScores } from "../../src/data/qa-metrics.js";
import { loadEvalStream } from "../../src/eval/streams.js";

const { values } = parseArgs({
  options: {
    scores: { type: "string" },
    predictions: { type: "string" },
    split: { type: "string", default: "val" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
    weights: { type: "string", default: "0,0.25,0.5,1,2,4" },
  },
});
interface Scored {
  id: string;
  own: number;
  bm25: [number, number][]; // [paragraph, score], best first (top 20)
  mac: number[]; // per paragraph: its best window's score
}
const scored = (JSON.parse(readFileSync(values.scores!, "utf8")) as { questions: Scored[] }).questions;
const answers = new Map<string, Map<string, string>>();
for (const line of readFileSync(values.predictions!, "utf8").split("\n").filter(Boolean)) {
  const r = JSON.parse(line) as { variant: string; id: string; prediction: string };
  if (!answers.has(r.variant)) answers.set(r.variant, new Map());
  answers.get(r.variant)!.set(r.id, r.prediction);
}
const { questions } = loadEvalStream({
  data: values.data!,
  format: "squad",
  split: values.split as "val" | "test",
  maxDocs: 0,
});
const refs = new Map(questions.map((q) => [q.id, q.answers]));
const f1 = (variant: string, id: string): number => {
  const p = answers.get(variant)?.get(id);
  if (p === undefined) throw new Error(`no ${variant} answer for ${id} in ${values.predictions}`);
  return squadScores(p, refs.get(id)!).f1;
};
const argmax = (xs: readonly number[]): number => xs.reduce((b, x, i) => (x > xs[b]! ? i : b), 0);

for (const w of values.weights!.split(",").map(Number)) {
  let total = 0;
  let readWindow = 0;
  for (const q of scored) {
    const mine = argmax(q.mac);
    const first = q.bm25[0]?.[0] ?? mine;
    // Outside BM25's top 20 a paragraph's score is at most the 20th's: that bound stands in for it.
    const floor = q.bm25.at(-1)?.[1] ?? 0;
    const lexical = (d: number): number => q.bm25.find(([p]) => p === d)?.[1] ?? floor;
    const fused = (d: number): number => lexical(d) + w * q.mac[d]!;
    const window = mine === first || (w > 0 && fused(mine) > fused(first));
    readWindow += Number(window);
    total += f1(window ? "mac" : "bm25", q.id);
  }
  console.log(
    JSON.stringify({
      memory_weight: w,
      questions: scored.length,
      reads_window: readWindow,
      f1: (100 * total) / scored.length,
      bm25_f1: (100 * scored.reduce((s, q) => s + f1("bm25", q.id), 0)) / scored.length,
    }),
  );
}
