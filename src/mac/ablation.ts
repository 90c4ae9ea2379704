/**
 * The memory ablation: does the memory carry what the documents say, or only an answer format? For each question,
 * the answer-token loss of the frozen LM (nats per answer token, the training objective) with
 *   none          no modulation;
 *   own_alone     a memory of the question's own document only;
 *   own_among_k   its own document among K − 1 others (as in training and use);
 *   unrelated_k   K other documents (the answer is in none of them);
 *   in_context    no memory, the document in the LM's context instead (the ceiling; the distillation teacher).
 * content_gap = unrelated_k − own_among_k: how much the own document's entry helps when it must be found among
 * others. A modulation that only learned the answer format has content_gap ≈ 0 and own ≈ unrelated < none.
 * Used by training (at every validation), `mac-lm eval` and the report, on the same questions.
 */
import type { Modulation } from "../models/types.js";
import { Tensor, noGrad, scope } from "../tensor/index.js";
import type { MacModel, QaExample } from "./model.js";
import { contextIds } from "./train/distill.js";

export interface AblationQuestion {
  document: string;
  question: string;
  /** The answer scored (the training answer). */
  answer: string;
}

export const ABLATION_CONDITIONS = ["none", "own_alone", "own_among_k", "unrelated_k", "in_context"] as const;
export type AblationCondition = (typeof ABLATION_CONDITIONS)[number];

export interface MemoryAblation {
  k: number;
  questions: number;
  /** Mean answer loss (nats per answer token) per condition. */
  none: number;
  own_alone: number;
  own_among_k: number;
  unrelated_k: number;
  in_context: number;
  content_gap: number;
}

/**
 * The memories of the ablation for question i of `questions`: its own document and K − 1 distractors from `pool`
 * (deterministic: a fixed stride through the pool, skipping the own document), and K unrelated documents.
 */
export function ablationMemories(
  q: AblationQuestion,
  pool: readonly string[],
  K: number,
): { alone: string[]; own: string[]; unrelated: string[] } {
  const others: string[] = [];
  const start = Math.max(0, pool.indexOf(q.document));
  for (let j = 1; others.length < K && j <= pool.length * 8; j++) {
    const d = pool[(start + j * 7) % pool.length]!;
    if (d !== q.document && !others.includes(d)) others.push(d);
  }
  return { alone: [q.document], own: [q.document, ...others.slice(0, K - 1)], unrelated: others.slice(0, K) };
}

/** The frozen LM's keys/values over a document placed in its context (a prefix modulation). Dispose its layers. */
export function inContextModulation(mac: MacModel, document: string): Modulation {
  const ids = contextIds(mac, document);
  const cache = mac.base.newCache(1);
  noGrad(() => mac.base.hidden({ ids: Tensor.from(Int32Array.from(ids), [1, ids.length], "int32"), cache }));
  return { prefix: cache.layers };
}

/** Answer losses under each condition for each question (nats per answer token), without gradients. */
export function ablationLosses(
  mac: MacModel,
  questions: readonly AblationQuestion[],
  pool: readonly string[],
  opts: { k?: number; onProgress?: (done: number) => void } = {},
): MemoryAblation {
  const K = opts.k ?? 8;
  const sums: Record<AblationCondition, number> = {
    none: 0,
    own_alone: 0,
    own_among_k: 0,
    unrelated_k: 0,
    in_context: 0,
  };
  const wasTraining = mac.training;
  mac.eval();
  noGrad(() =>
    questions.forEach((q, i) => {
      const qa: QaExample[] = [{ question: q.question, answer: q.answer }];
      const mem = ablationMemories(q, pool, K);
      scope(() => {
        const q0 = mac.encodeQuestions([q.question]);
        const withMemory = (docs: string[]): number => mac.answerLoss(qa, mac.modulate(q0, mac.amortize(docs))).item();
        sums.none += mac.answerLoss(qa).item();
        sums.own_alone += withMemory(mem.alone);
        sums.own_among_k += withMemory(mem.own);
        sums.unrelated_k += withMemory(mem.unrelated);
        const ctx = inContextModulation(mac, q.document);
        sums.in_context += mac.answerLoss(qa, ctx).item();
        ctx.prefix!.forEach(({ k, v }) => (k.dispose(), v.dispose()));
      });
      opts.onProgress?.(i + 1);
    }),
  );
  mac.train(wasTraining);
  const n = Math.max(1, questions.length);
  const r = (x: number): number => Math.round((x / n) * 1e4) / 1e4;
  const out = {
    k: K,
    questions: questions.length,
    none: r(sums.none),
    own_alone: r(sums.own_alone),
    own_among_k: r(sums.own_among_k),
    unrelated_k: r(sums.unrelated_k),
    in_context: r(sums.in_context),
  };
  return { ...out, content_gap: Math.round((out.unrelated_k - out.own_among_k) * 1e4) / 1e4 };
}
