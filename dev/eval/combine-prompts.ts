/**
 * `npx tsx dev/eval/combine-prompts.ts [--split val] [--max-docs 40] [--template chat|plain] [--variants a,b]`:
 * ways to combine BM25's top paragraph with the extractive memory's chosen window in one prompt (the eval's chat or
 * plain template; `mac` is always MAC's own frame), scored by SQuAD F1 on the same questions (greedy, 16 tokens).
 * A development probe for bm25_mac's design; prints JSON per variant.
 */
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadEvalStream } from "../../src/eval/streams.js";
import { Bm25Retriever } from "../../src/eval/methods/retrieval.js";
import { answerPrompts, qaPrompt } from "../../src/eval/methods/answer.js";
import { loadMac } from "../../src/mac/io.js";
import { amortizeDocuments } from "../../src/mac/windows.js";
import { Tensor, concat, crossEntropy, noGrad, scope } from "../../src/tensor/index.js";
import { scoreAll } from "../../src/data/qa-metrics.js";
import { SelectAggregator } from "../../src/mac/aggregate/select.js";

const { values } = parseArgs({
  options: {
    split: { type: "string", default: "val" },
    checkpoint: { type: "string", default: "checkpoints/mac-extractive" },
    data: { type: "string", default: "../shared/data/squad/squad-dev-open.json" },
    "max-docs": { type: "string", default: "40" },
    /** The prompt layout of every variant: eval's "chat" or "plain" (answer.ts qaPrompt with MAC's qaTemplate). */
    template: { type: "string", default: "chat" },
    variants: { type: "string", default: "bm25,before,after,focus" },
    /** A JSONL file to append every answer to ({variant, id, prediction}). */
    predictions: { type: "string" },
  },
});
const { docs, questions } = loadEvalStream({
  data: values.data!,
  format: "squad",
  split: values.split as "val" | "test",
  maxDocs: Number(values["max-docs"]),
});
const bm25 = new Bm25Retriever();
bm25.add(docs);
const top = bm25.searchMany(
  questions.map((q) => q.question),
  2,
);
const mac = await loadMac(values.checkpoint!);
const amortized = amortizeDocuments(
  mac,
  docs.map((d) => d.text),
);
const entries = amortized.flatMap((a, i) => a.windows.map((w) => ({ doc: docs[i]!.id, text: w })));
const firstWindow = new Map(amortized.map((a, i) => [docs[i]!.id, a.windows[0]!]));
const memory = concat(
  amortized.map((a) => a.entries),
  0,
);
const chosen: { doc: string; text: string }[] = [];
// zoom: the memory's best window among the windows of BM25's top paragraph (BM25 picks the paragraph, MAC the part).
const zoomed: string[] = [];
const sel = mac.aggregator as unknown as SelectAggregator;
noGrad(() => {
  for (let i = 0; i < questions.length; i += 16) {
    const q0 = mac.encodeQuestions(questions.slice(i, i + 16).map((q) => q.question));
    const s = sel.scores(q0, memory); // (B, entries)
    const N = s.dim(1);
    for (let b = 0; b < s.dim(0); b++) {
      const row = s.f32.subarray(b * N, (b + 1) * N);
      let best = 0;
      let bestIn = -1;
      for (let n = 0; n < N; n++) {
        if (row[n]! > row[best]!) best = n;
        if (entries[n]!.doc === top[i + b]![0]?.id && (bestIn < 0 || row[n]! > row[bestIn]!)) bestIn = n;
      }
      chosen.push(entries[best]!);
      zoomed.push(entries[bestIn < 0 ? best : bestIn]!.text); // BM25 found nothing: the memory's own choice
    }
  }
});
const template = values.template as "chat" | "plain";
// Every variant's layout: SmolLM2's chat template with the context instruction (MAC's frame, what bm25 was first
// validated with), or eval's plain layout (the context, then MAC's qaTemplate).
const inTemplate = (context: string, q: string): string =>
  qaPrompt({ qaTemplate: mac.qaTemplate, promptTemplate: template }, q, [context]);
const frame = mac.contextFrame ?? { before: "", after: "\n\n" };
const ownText = new Map(docs.map((d) => [d.id, d.text]));
const variants: Record<string, (i: number) => string> = {
  bm25: (i) => inTemplate(top[i]![0]!.text.trim(), questions[i]!.question),
  before: (i) => inTemplate(`${chosen[i]!.text.trim()}\n\n${top[i]![0]!.text.trim()}`, questions[i]!.question),
  after: (i) => inTemplate(`${top[i]![0]!.text.trim()}\n\n${chosen[i]!.text.trim()}`, questions[i]!.question),
  focus: (i) =>
    inTemplate(
      chosen[i]!.doc === top[i]![0]!.id
        ? chosen[i]!.text.trim()
        : `${chosen[i]!.text.trim()}\n\n${top[i]![0]!.text.trim()}`,
      questions[i]!.question,
    ),
  top2: (i) => inTemplate(top[i]!.map((d) => d.text.trim()).join("\n\n"), questions[i]!.question),
  window: (i) => inTemplate(chosen[i]!.text.trim(), questions[i]!.question),
  // MAC's own answer: its window in the frame it was trained with (what the mac method reads).
  mac: (i) => `${frame.before}${chosen[i]!.text.trim()}${frame.after}${mac.prompt(questions[i]!.question)}`,
  zoom: (i) => inTemplate(zoomed[i]!.trim(), questions[i]!.question),
  // Controls: a window of the BM25 paragraph chosen without the question (its first), or the whole paragraph twice.
  after_first: (i) =>
    inTemplate(`${top[i]![0]!.text.trim()}\n\n${firstWindow.get(top[i]![0]!.id)!.trim()}`, questions[i]!.question),
  // References: the LM alone (bare chat prompt), and the question's own paragraph in context (a perfect retriever).
  none: (i) => qaPrompt({ qaTemplate: mac.qaTemplate, promptTemplate: template }, questions[i]!.question),
  oracle: (i) => inTemplate(ownText.get(questions[i]!.docId)!.trim(), questions[i]!.question),
  twice: (i) => inTemplate(`${top[i]![0]!.text.trim()}\n\n${top[i]![0]!.text.trim()}`, questions[i]!.question),
};
const ctx = {
  base: mac.base,
  tokenizer: mac.baseTokenizer,
  qaTemplate: "",
  decoding: { maxNewTokens: 16 },
  batchSize: 16,
  seed: 0,
};
const agree = questions.filter((q, i) => chosen[i]!.doc === top[i]![0]!.id).length;
console.log(JSON.stringify({ questions: questions.length, mac_agrees_with_bm25: agree, template }));
/** Mean log-probability per token (EOS included) of `answer` after `prompt`: the reader's confidence. */
function confidence(prompt: string, answer: string): number {
  const tok = mac.baseTokenizer;
  const p = tok.encode(prompt, { addSpecialTokens: false });
  const a = [...tok.encode(answer, { addSpecialTokens: false }), tok.eosId!];
  const ids = [...p, ...a];
  const targets = ids.map((_, t) => (t >= p.length - 1 && t < ids.length - 1 ? ids[t + 1]! : -100));
  return noGrad(() =>
    scope(() => {
      const logits = mac.base.forward({ ids: Tensor.from(Int32Array.from(ids), [1, ids.length], "int32") });
      return -crossEntropy(logits, Tensor.from(Int32Array.from(targets), [1, ids.length], "int32")).item();
    }),
  );
}

/**
 * choose / choose_window: where MAC's window lies in another document than BM25's paragraph, the LM answers with
 * each (BM25's paragraph; MAC's document, or only its window) and the answer it is more confident in is kept.
 */
async function chooseByReader(macContext: (i: number) => string): Promise<string[]> {
  const bm = await answerPrompts(
    ctx,
    questions.map((_, i) => variants.bm25!(i)),
  );
  const dis = questions.map((_, i) => i).filter((i) => chosen[i]!.doc !== top[i]![0]!.id);
  const mPrompts = dis.map((i) => inTemplate(macContext(i).trim(), questions[i]!.question));
  const mAns = await answerPrompts(ctx, mPrompts);
  let switched = 0;
  dis.forEach((i, k) => {
    if (confidence(mPrompts[k]!, mAns[k]!) > confidence(variants.bm25!(i), bm[i]!)) {
      bm[i] = mAns[k]!;
      switched++;
    }
  });
  console.log(JSON.stringify({ disagreements: dis.length, switched_to_mac: switched }));
  return bm;
}

for (const v of values.variants!.split(",")) {
  const t0 = Date.now();
  const preds =
    v === "choose"
      ? await chooseByReader((i) => ownText.get(chosen[i]!.doc)!)
      : v === "choose_window"
        ? await chooseByReader((i) => chosen[i]!.text)
        : await answerPrompts(
            ctx,
            questions.map((_, i) => variants[v]!(i)),
          );
  const s = scoreAll(
    preds,
    questions.map((q) => q.answers),
  );
  console.log(JSON.stringify({ variant: v, f1: s.f1, em: s.em, seconds: (Date.now() - t0) / 1000 }));
  if (values.predictions)
    appendFileSync(
      values.predictions,
      preds.map((p, i) => JSON.stringify({ variant: v, id: questions[i]!.id, prediction: p })).join("\n") + "\n",
    );
}
