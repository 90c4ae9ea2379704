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
 *
 * memoryAblation() also answers every question under every condition (the decoding the caller gives, e.g. greedy
 * as `mac-lm eval` answers), so that F1 can be compared across conditions: in_context answers continue the same
 * token sequence the teacher reads (the document's contextIds, then the question's prompt), with no memory.
 * Each document the memories use is amortized once and its entry reused by every question and condition.
 */
import { MacLmError } from "../errors.js";
import { type GenerateOptions, generate } from "../generate/index.js";
import type { Modulation } from "../models/types.js";
import { Tensor, concat, indexSelect, nextTurn, noGrad, releaseFreedMemory, scope } from "../tensor/index.js";
import type { MacModel, QaExample } from "./model.js";
import { contextIds } from "./train/distill.js";
import { amortizeDocuments } from "./windows.js";

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
 * (deterministic: a fixed stride through the pool, skipping the own document), and K unrelated documents. The
 * stride is coprime with the pool's size, so every other document of the pool is reachable: fewer than K
 * distractors only when the pool has fewer than K other documents.
 */
export function ablationMemories(
  q: AblationQuestion,
  pool: readonly string[],
  K: number,
): { alone: string[]; own: string[]; unrelated: string[] } {
  const others: string[] = [];
  const start = Math.max(0, pool.indexOf(q.document));
  const stride = [7, 11, 13].find((s) => pool.length % s !== 0) ?? 1; // primes: coprime unless they divide it
  for (let j = 1; others.length < K && j <= pool.length; j++) {
    const d = pool[(start + j * stride) % pool.length]!;
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

/** One question's ablation: its answer loss (nats per answer token) and, if asked for, its answer per condition. */
export interface AblationRecord {
  loss: Record<AblationCondition, number>;
  answer?: Record<AblationCondition, string>;
}

export interface AblationOptions {
  /** Documents in the memories own_among_k and unrelated_k (default 8). */
  k?: number;
  /** Answer every question under every condition with these generation options (EOS: the base tokenizer's). */
  generate?: GenerateOptions;
  /** Questions per generate() call (default 8). */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * The memory entries of documents, each amortized once (no gradients) as adaptation stores it — window by window
 * (windows.ts), so a document may own several entries — gathered into per-condition memories.
 */
class EntryCache {
  readonly #rows = new Map<string, { start: number; count: number }>();
  readonly #all: Tensor; // (N, T, d)

  constructor(mac: MacModel, docs: readonly string[]) {
    const distinct = [...new Set(docs)];
    this.#all = noGrad(() =>
      scope(() => {
        const amortized = amortizeDocuments(mac, distinct);
        let start = 0;
        amortized.forEach((a, i) => {
          this.#rows.set(distinct[i]!, { start, count: a.entries.dim(0) });
          start += a.entries.dim(0);
        });
        return concat(
          amortized.map((a) => a.entries),
          0,
        );
      }),
    );
  }

  /** Entries a list of documents holds. */
  size(docs: readonly string[]): number {
    return docs.reduce((n, d) => n + this.#rows.get(d)!.count, 0);
  }

  /** (n, T, d) for one list of documents, or (B, n, T, d) for B lists holding the same number n of entries. */
  gather(docs: readonly string[] | readonly (readonly string[])[]): Tensor {
    const lists = (typeof docs[0] === "string" ? [docs] : docs) as readonly (readonly string[])[];
    const n = this.size(lists[0]!);
    if (lists.some((l) => this.size(l) !== n))
      throw new MacLmError("MACLM_BAD_ARGUMENT", "memory ablation: memories of different sizes cannot be stacked");
    const idx = Tensor.zeros(typeof docs[0] === "string" ? [n] : [lists.length, n], "int32");
    lists.forEach((l, b) => {
      let j = 0;
      for (const d of l) {
        const { start, count } = this.#rows.get(d)!;
        for (let r = 0; r < count; r++) idx.data[b * n + j++] = start + r;
      }
    });
    return indexSelect(this.#all, idx);
  }

  dispose(): void {
    this.#all.dispose();
  }
}

/** The answer losses of one question under each condition (no gradients; the entries from `cache`). */
function questionLosses(
  mac: MacModel,
  cache: EntryCache,
  q: AblationQuestion,
  mem: ReturnType<typeof ablationMemories>,
): Record<AblationCondition, number> {
  const qa: QaExample[] = [{ question: q.question, answer: q.answer }];
  return scope(() => {
    const q0 = mac.encodeQuestions([q.question]);
    const withMemory = (docs: string[]): number => mac.answerLoss(qa, mac.modulate(q0, cache.gather(docs))).item();
    const ctx = inContextModulation(mac, q.document);
    const loss = {
      none: mac.answerLoss(qa).item(),
      own_alone: withMemory(mem.alone),
      own_among_k: withMemory(mem.own),
      unrelated_k: withMemory(mem.unrelated),
      in_context: mac.answerLoss(qa, ctx).item(),
    };
    ctx.prefix!.forEach(({ k, v }) => (k.dispose(), v.dispose()));
    return loss;
  });
}

/**
 * The answers of a batch of questions under each condition, decoded as MacModel.answer() and the benchmark's
 * methods decode (special tokens removed, trimmed). The memories of a condition are stacked into one
 * (B, n, T, d) tensor, so every question aggregates over its own memory in one batched generation.
 */
function batchAnswers(
  mac: MacModel,
  cache: EntryCache,
  qs: readonly AblationQuestion[],
  mems: readonly ReturnType<typeof ablationMemories>[],
  opts: GenerateOptions,
): Record<AblationCondition, string>[] {
  const tok = mac.baseTokenizer;
  const prompts = qs.map((q) => tok.encode(mac.prompt(q.question), { addSpecialTokens: false }));
  const run = (ids: number[][], modulation?: Modulation): string[] =>
    generate(mac.base, ids, { eosTokenId: tok.eosId, ...opts, modulation }).sequences.map((s) =>
      tok.decode(s, { skipSpecialTokens: true }).trim(),
    );
  const withMemory = (lists: string[][]): string[] => {
    // Memories of different sizes (a question whose document is not in the pool) cannot be stacked: one by one.
    if (lists.some((l) => cache.size(l) !== cache.size(lists[0]!)))
      return lists.flatMap((l, i) =>
        scope(() => run([prompts[i]!], mac.modulate(mac.encodeQuestions([qs[i]!.question]), cache.gather(l)))),
      );
    return scope(() => run(prompts, mac.modulate(mac.encodeQuestions(qs.map((q) => q.question)), cache.gather(lists))));
  };
  const answers: Record<AblationCondition, string[]> = {
    none: scope(() => run(prompts)),
    own_alone: withMemory(mems.map((m) => m.alone)),
    own_among_k: withMemory(mems.map((m) => m.own)),
    unrelated_k: withMemory(mems.map((m) => m.unrelated)),
    in_context: scope(() => run(qs.map((q, i) => [...contextIds(mac, q.document), ...prompts[i]!]))),
  };
  return qs.map((_, i) => ({
    none: answers.none[i]!,
    own_alone: answers.own_alone[i]!,
    own_among_k: answers.own_among_k[i]!,
    unrelated_k: answers.unrelated_k[i]!,
    in_context: answers.in_context[i]!,
  }));
}

/** Mean losses per condition (rounded to 1e-4 nats) and the content gap. */
export function summarizeAblation(K: number, records: readonly AblationRecord[]): MemoryAblation {
  const n = Math.max(1, records.length);
  const mean = (c: AblationCondition): number =>
    Math.round((records.reduce((s, r) => s + r.loss[c], 0) / n) * 1e4) / 1e4;
  const out = {
    k: K,
    questions: records.length,
    none: mean("none"),
    own_alone: mean("own_alone"),
    own_among_k: mean("own_among_k"),
    unrelated_k: mean("unrelated_k"),
    in_context: mean("in_context"),
  };
  return { ...out, content_gap: Math.round((out.unrelated_k - out.own_among_k) * 1e4) / 1e4 };
}

/** The model in eval mode and the entries of every document the questions' memories use, for `body`. */
function prepare(
  mac: MacModel,
  questions: readonly AblationQuestion[],
  pool: readonly string[],
  K: number,
): { cache: EntryCache; mems: ReturnType<typeof ablationMemories>[]; restore: () => void } {
  if (!(Number.isInteger(K) && K >= 1) || new Set(pool).size < 2)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `memory ablation: needs K >= 1 (got ${K}) and a pool of at least 2 documents (got ${new Set(pool).size})`,
    );
  const mems = questions.map((q) => ablationMemories(q, pool, K));
  const wasTraining = mac.training;
  mac.eval();
  const cache = new EntryCache(
    mac,
    mems.flatMap((m) => [...m.own, ...m.unrelated]),
  );
  return {
    cache,
    mems,
    restore: () => {
      cache.dispose();
      mac.train(wasTraining);
    },
  };
}

/** Answer losses under each condition for each question (nats per answer token), without gradients. */
export function ablationLosses(
  mac: MacModel,
  questions: readonly AblationQuestion[],
  pool: readonly string[],
  opts: { k?: number; onProgress?: (done: number) => void } = {},
): MemoryAblation {
  const K = opts.k ?? 8;
  const { cache, mems, restore } = prepare(mac, questions, pool, K);
  try {
    const records = noGrad(() =>
      questions.map((q, i) => {
        const r = { loss: questionLosses(mac, cache, q, mems[i]!) };
        opts.onProgress?.(i + 1);
        return r;
      }),
    );
    return summarizeAblation(K, records);
  } finally {
    restore();
  }
}

/**
 * The ablation with each question's losses and (with opts.generate) its answers under every condition, in batches
 * of opts.batchSize questions; yields to the event loop between batches (see nextTurn) so that long runs keep
 * their memory bounded.
 */
export async function memoryAblation(
  mac: MacModel,
  questions: readonly AblationQuestion[],
  pool: readonly string[],
  opts: AblationOptions = {},
): Promise<{ summary: MemoryAblation; records: AblationRecord[] }> {
  const K = opts.k ?? 8;
  const B = opts.batchSize ?? 8;
  const { cache, mems, restore } = prepare(mac, questions, pool, K);
  try {
    const records: AblationRecord[] = [];
    opts.onProgress?.(0, questions.length);
    for (let i = 0; i < questions.length; i += B) {
      const qs = questions.slice(i, i + B);
      noGrad(() => {
        const answers = opts.generate ? batchAnswers(mac, cache, qs, mems.slice(i, i + B), opts.generate) : null;
        qs.forEach((q, j) =>
          records.push({
            loss: questionLosses(mac, cache, q, mems[i + j]!),
            ...(answers ? { answer: answers[j]! } : {}),
          }),
        );
      });
      await nextTurn();
      releaseFreedMemory();
      opts.onProgress?.(records.length, questions.length);
    }
    return { summary: summarizeAblation(K, records), records };
  } finally {
    restore();
  }
}
