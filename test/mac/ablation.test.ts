/**
 * The memory ablation (src/mac/ablation.ts) on the tiny content-recipe MAC (llama-tiny, character tokenizer): which
 * documents each condition's memory holds, and that the losses and answers it reports are the ones MacModel itself
 * gives for the same memory (full aggregation), with the document in the context for in_context.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  type AblationQuestion,
  ablationLosses,
  ablationMemories,
  memoryAblation,
  summarizeAblation,
} from "../../src/mac/ablation.js";
import { CONTEXT_SEPARATOR } from "../../src/mac/train/distill.js";
import { noGrad, scope } from "../../src/tensor/index.js";
import { expectClose } from "../helpers/numeric.js";
import { lmSoftMac } from "./lm-mac.js";
import { TINY_EXAMPLES } from "./tiny-mac.js";

const POOL = TINY_EXAMPLES.map((e) => e.document);
const QUESTIONS: AblationQuestion[] = TINY_EXAMPLES.map((e) => ({
  document: e.document,
  question: e.question,
  answer: e.answers[0]!,
}));

describe("ablationMemories", () => {
  it("own document first with K − 1 distinct distractors; K unrelated documents without the own one", () => {
    const pool = Array.from({ length: 14 }, (_, i) => `document ${i}`); // a multiple of the stride 7
    for (const own of [0, 5, 13]) {
      const m = ablationMemories({ document: pool[own]!, question: "q", answer: "a" }, pool, 8);
      expect(m.alone).toEqual([pool[own]]);
      expect(m.own[0]).toBe(pool[own]);
      expect(new Set(m.own).size).toBe(8);
      expect(new Set(m.unrelated).size).toBe(8);
      expect(m.unrelated).not.toContain(pool[own]);
      expect(m.own.slice(1)).toEqual(m.unrelated.slice(0, 7));
    }
    // A pool with fewer than K other documents: all of them.
    const m = ablationMemories(QUESTIONS[0]!, POOL.slice(0, 3), 8);
    expect(m.own).toHaveLength(3);
    expect([...m.unrelated].sort()).toEqual([POOL[1], POOL[2]].sort());
  });
});

describe("memoryAblation (tiny lm-queries + soft-prompt MAC)", () => {
  const mac = lmSoftMac();
  mac.maxQaLength = 200; // room for the document in the prompt of the in-context check below
  afterAll(() => {
    mac.dispose();
    mac.base.dispose();
  });
  const K = 3;
  const gen = { maxNewTokens: 4 };

  it("reports MacModel's own losses and answers for each condition's memory", async () => {
    mac.train(); // the ablation evaluates in eval mode and gives the mode back
    const progress: number[] = [];
    const { summary, records } = await memoryAblation(mac, QUESTIONS, POOL, {
      k: K,
      generate: gen,
      batchSize: 4,
      onProgress: (d) => progress.push(d),
    });
    expect(mac.training).toBe(true);
    expect(progress).toEqual([0, 4, 6]);
    mac.eval();
    expect(records).toHaveLength(QUESTIONS.length);
    noGrad(() =>
      QUESTIONS.forEach((q, i) => {
        const mem = ablationMemories(q, POOL, K);
        const qa = [{ question: q.question, answer: q.answer }];
        const r = records[i]!;
        scope(() => {
          const q0 = mac.encodeQuestions([q.question]);
          const loss = (docs: string[]): number => mac.answerLoss(qa, mac.modulate(q0, mac.amortize(docs))).item();
          expectClose(r.loss.none, mac.answerLoss(qa).item(), { atol: 1e-5 });
          expectClose(r.loss.own_alone, loss(mem.alone), { atol: 1e-5 });
          expectClose(r.loss.own_among_k, loss(mem.own), { atol: 1e-5 });
          expectClose(r.loss.unrelated_k, loss(mem.unrelated), { atol: 1e-5 });
        });
        expect(r.answer!.none).toBe(mac.answer([q.question], null, gen)[0]);
        expect(r.answer!.own_alone).toBe(mac.answer([q.question], mac.amortize(mem.alone), gen)[0]);
        expect(r.answer!.own_among_k).toBe(mac.answer([q.question], mac.amortize(mem.own), gen)[0]);
        expect(r.answer!.unrelated_k).toBe(mac.answer([q.question], mac.amortize(mem.unrelated), gen)[0]);
        // in_context: the document's tokens, the separator, then the question's prompt, and no memory. With one
        // token per character that is the plain LM prompted with the concatenated text.
        const template = mac.qaTemplate;
        mac.qaTemplate = `${q.document}${CONTEXT_SEPARATOR}${template}`;
        try {
          expectClose(
            r.loss.in_context,
            scope(() => mac.answerLoss(qa).item()),
            { atol: 1e-4 },
          );
          expect(r.answer!.in_context).toBe(mac.answer([q.question], null, gen)[0]);
        } finally {
          mac.qaTemplate = template;
        }
      }),
    );
    // Not vacuous: the memory and the context change the losses, and the model says something.
    expect(records.some((r) => r.loss.own_alone !== r.loss.none && r.loss.in_context !== r.loss.none)).toBe(true);
    expect(records.some((r) => r.answer!.none.length > 0)).toBe(true);
    expect(summary).toEqual(summarizeAblation(K, records));
    expect(summary.content_gap).toBe(Math.round((summary.unrelated_k - summary.own_among_k) * 1e4) / 1e4);
    expect(summary).toMatchObject({ k: K, questions: QUESTIONS.length });
    // Training's validation (losses only) gives the same numbers.
    expect(ablationLosses(mac, QUESTIONS, POOL, { k: K })).toEqual(summary);
  });

  it("without generate options it only measures losses", async () => {
    const { records } = await memoryAblation(mac, QUESTIONS.slice(0, 2), POOL, { k: K });
    expect(records.map((r) => r.answer)).toEqual([undefined, undefined]);
  });
});
