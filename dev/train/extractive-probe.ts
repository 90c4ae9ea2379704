/**
 * `npx tsx dev/train/extractive-probe.ts [--questions 128] [--template plain|chat]`: how much of a document's help
 * survives when the frozen LM reads only T of its tokens? No training: for validation questions, the answer loss
 * (nats per answer token) of the base LM with, in its context,
 *   none        nothing;
 *   full        the whole paragraph (the ceiling);
 *   idf-T       the paragraph's T rarest tokens (document frequency over SQuAD-train paragraphs), in text order —
 *               what a question-blind amortizer that selects tokens could keep;
 *   window-T    the T-token window of the paragraph sharing most tokens with the question — what a question-aware
 *               aggregator selecting among an entry's tokens could keep;
 * each with the own paragraph and with an unrelated one (gap = unrelated − own, the content gap's analogue).
 * This bounds what an extractive memory (entries that are mixtures of the document's own token embeddings) can give
 * before any training. Prints JSON.
 */
import { parseArgs } from "node:util";
import { examplesOf, loadSquad } from "../../src/data/squad.js";
import { squadSplitArticles } from "../../src/eval/data/squad.js";
import { loadMac } from "../../src/mac/io.js";
import { Tensor, crossEntropy, noGrad, reshape, scope } from "../../src/tensor/index.js";

const { values } = parseArgs({
  options: {
    questions: { type: "string", default: "128" },
    template: { type: "string", default: "plain" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
    train: { type: "string", default: "data/squad/train-v1.1.json" },
    checkpoint: { type: "string", default: "checkpoints/mac-default" },
  },
});
const mac = await loadMac(values.checkpoint!);
const tok = mac.baseTokenizer;
const enc = (s: string): number[] => tok.encode(s, { addSpecialTokens: false });

// Document frequency of each token id over training paragraphs (never the validation articles).
const trainDocs = [...new Set(examplesOf(loadSquad(values.train!)).map((e) => e.document))].slice(0, 4000);
const df = new Map<number, number>();
for (const d of trainDocs) for (const t of new Set(enc(d))) df.set(t, (df.get(t) ?? 0) + 1);
const idf = (t: number): number => Math.log((trainDocs.length + 1) / ((df.get(t) ?? 0) + 1));

const idfTop = (ids: number[], T: number): number[] => {
  const keep = new Set(
    ids
      .map((t, i) => [idf(t), i] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, T)
      .map(([, i]) => i),
  );
  return ids.filter((_, i) => keep.has(i));
};
const windowTop = (ids: number[], question: number[], T: number): number[] => {
  const q = new Set(question.filter((t) => idf(t) > 2));
  let best = 0;
  let bestScore = -1;
  for (let s = 0; s + T <= Math.max(T, ids.length); s += 4) {
    const score = ids.slice(s, s + T).filter((t) => q.has(t)).length;
    if (score > bestScore) [best, bestScore] = [s, score];
  }
  return ids.slice(best, best + T);
};

const prompt = (question: string, hasContext: boolean): string => {
  if (values.template === "chat") {
    const sys = hasContext
      ? "Answer the question with a short phrase copied from the context."
      : "Answer the question with a short phrase.";
    return `<|im_start|>system\n${sys}<|im_end|>\n<|im_start|>user\n${hasContext ? "Context: " : ""}`;
  }
  return "";
};
// The answer loss with `context` token ids placed where the template puts the context.
const answerLoss = (context: number[] | null, question: string, answer: string): number =>
  scope(() => {
    const q = question.trim();
    let pre: number[];
    let post: number[];
    if (values.template === "chat") {
      pre = enc(prompt(q, context !== null));
      post = enc(`${context !== null ? "\n\n" : ""}Question: ${q}<|im_end|>\n<|im_start|>assistant\n`);
    } else {
      pre = [];
      post = enc(`${context !== null ? "\n\n" : ""}${mac.prompt(q)}`);
    }
    const a = enc(values.template === "chat" ? answer.trim() : ` ${answer.trim()}`);
    const ids = [...pre, ...(context ?? []), ...post, ...a];
    const L = ids.length;
    const targets = Tensor.full([1, L], -100, "int32");
    for (let j = L - a.length; j < L; j++) targets.data[j - 1] = ids[j]!;
    const logits = mac.base.forward({ ids: Tensor.from(Int32Array.from(ids), [1, L], "int32") });
    return crossEntropy(reshape(logits, [-1, logits.dim(2)]), targets.reshapeView([-1])).item();
  });

const examples = examplesOf(squadSplitArticles(loadSquad(values.data!), "val"));
const docs = [...new Set(examples.map((e) => e.document))];
const n = Math.min(Number(values.questions), examples.length);
const step = Math.max(1, Math.floor(examples.length / n));
const sample = Array.from({ length: n }, (_, i) => examples[i * step]!);
const Ts = [16, 32, 48];
const sums: Record<string, number> = {};
const addTo = (k: string, v: number): void => void (sums[k] = (sums[k] ?? 0) + v);
const docTokens = docs.map((d) => enc(d.trim()));
noGrad(() => {
  for (const [i, e] of sample.entries()) {
    const own = docs.indexOf(e.document);
    const other = (own + 1 + 7 * (i % 3)) % docs.length; // an unrelated paragraph (another one of the split)
    const qIds = enc(e.question);
    const ans = e.answers[0]!;
    addTo("none", answerLoss(null, e.question, ans));
    addTo("full/own", answerLoss(docTokens[own]!, e.question, ans));
    addTo("full/unrelated", answerLoss(docTokens[other]!, e.question, ans));
    for (const T of Ts) {
      addTo(`idf-${T}/own`, answerLoss(idfTop(docTokens[own]!, T), e.question, ans));
      addTo(`idf-${T}/unrelated`, answerLoss(idfTop(docTokens[other]!, T), e.question, ans));
      addTo(`window-${T}/own`, answerLoss(windowTop(docTokens[own]!, qIds, T), e.question, ans));
      addTo(`window-${T}/unrelated`, answerLoss(windowTop(docTokens[other]!, qIds, T), e.question, ans));
    }
    if ((i + 1) % 16 === 0) process.stderr.write(`${i + 1}/${n}\n`);
  }
});
const mean = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, Math.round((v / n) * 1e4) / 1e4]));
const gaps = Object.fromEntries(
  Object.keys(mean)
    .filter((k) => k.endsWith("/own"))
    .map((k) => {
      const base = k.slice(0, -4);
      return [base, Math.round((mean[`${base}/unrelated`]! - mean[k]!) * 1e4) / 1e4];
    }),
);
const meanDocTokens = docTokens.reduce((s, d) => s + d.length, 0) / docTokens.length;
console.log(JSON.stringify({ template: values.template, questions: n, meanDocTokens, loss: mean, gap: gaps }, null, 1));
