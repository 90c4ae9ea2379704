/**
 * `npx tsx dev/eval/paired.ts --run results/eval/squad-test-qa --a bm25 --b bm25_mac [--samples 10000]`: method b
 * against method a on the same questions of an eval run (its predictions/*.jsonl): the mean F1 difference, its 95 %
 * paired bootstrap interval (questions resampled with replacement, seeded), and how many answers got better or worse.
 * Prints JSON.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { squadScores } from "../../src/data/qa-metrics.js";
import { Rng } from "../../src/tensor/random.js";

const { values } = parseArgs({
  options: {
    run: { type: "string", default: "results/eval/squad-test-qa" },
    a: { type: "string", default: "bm25" },
    b: { type: "string", default: "bm25_mac" },
    samples: { type: "string", default: "10000" },
    seed: { type: "string", default: "0" },
  },
});
interface Prediction {
  id: string;
  prediction: string;
  answers: string[];
}
const f1s = (method: string): Map<string, number> =>
  new Map(
    readFileSync(join(values.run!, "predictions", `${method}.jsonl`), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Prediction)
      .map((p) => [p.id, 100 * squadScores(p.prediction, p.answers).f1]),
  );
const [fa, fb] = [f1s(values.a!), f1s(values.b!)];
const ids = [...fa.keys()];
if (ids.length !== fb.size || ids.some((id) => !fb.has(id)))
  throw new Error(`${values.a} and ${values.b} did not answer the same questions in ${values.run}`);
const diff = ids.map((id) => fb.get(id)! - fa.get(id)!);
const mean = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
const rng = new Rng(Number(values.seed));
const means = Array.from({ length: Number(values.samples) }, () => {
  let s = 0;
  for (let i = 0; i < diff.length; i++) s += diff[rng.int(diff.length)]!;
  return s / diff.length;
}).sort((x, y) => x - y);
const at = (q: number): number => means[Math.min(means.length - 1, Math.floor(q * means.length))]!;
console.log(
  JSON.stringify({
    run: values.run,
    questions: ids.length,
    [`${values.a}_f1`]: mean(ids.map((id) => fa.get(id)!)),
    [`${values.b}_f1`]: mean(ids.map((id) => fb.get(id)!)),
    difference: mean(diff),
    ci95: [at(0.025), at(0.975)],
    better: diff.filter((d) => d > 0).length,
    worse: diff.filter((d) => d < 0).length,
  }),
);
