/**
 * MAC as a compared method: adaptation amortizes each document once (no gradients) into a durable memory bank;
 * answering encodes a batch of questions, aggregates them over the bank (full, or hierarchical in groups of M
 * streamed from disk), maps the latent to φ* and generates with the frozen base LM.
 *
 *   mac               full aggregation over the whole bank (the paper's evaluation)
 *   mac_hierarchical  hierarchical aggregation, groups of M entries (O(M·T) working memory)
 *   bm25_mac          BM25 and the memory together. An extractive memory's window is read where the memory's
 *                     evidence wins — its window lies in BM25's first document (they agree: the window is the
 *                     part of the paragraph the question is about), or its document's fused score
 *                     BM25(d) + λ·memory(d) beats BM25's first's — else BM25's top-k documents are read (the rule
 *                     and λ chosen on validation questions: results/eval/bm25-mac-fusion). The window is read in
 *                     MAC's frame, as mac reads it; the documents in the template chosen on validation for them
 *                     (ctx.promptTemplate; MAC's frame without one). A mixing memory's φ* modulates the LM as it
 *                     reads BM25's documents.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Mac } from "../../api/mac.js";
import { MacLmError } from "../../errors.js";
import type { MacModel } from "../../mac/model.js";
import { releaseFreedMemory } from "../../tensor/index.js";
import type { StreamDoc, StreamQuestion } from "../stream.js";
import { answerPrompts, qaPrompt } from "./answer.js";
import type { MethodContext, MethodName, ProgressFn, QaMethod } from "./types.js";

/** What bm25_mac needs of a retrieval method (src/eval/methods/retrieve.ts RetrievalMethod): index, prompts. */
export interface ContextPrompter {
  adapt(docs: readonly StreamDoc[]): Promise<void>;
  /** The base-LM prompts with the retrieved documents in context. */
  prompts(questions: readonly StreamQuestion[]): string[];
  /** The retrieved documents for each question, best first. */
  retrieve(questions: readonly StreamQuestion[]): StreamDoc[][];
  /** The retrieved documents' texts for each question, best first (as prompts() puts them in context); given
   * `retrieved` (retrieve()'s result for these questions), without searching again. */
  contexts(questions: readonly StreamQuestion[], retrieved?: StreamDoc[][]): string[][];
  /** The retriever's score (higher is better) of each named document for each question. */
  scoresOf(questions: readonly StreamQuestion[], ids: readonly (readonly string[])[]): number[][];
  dispose(): void;
}

export interface MacMethodOptions {
  /** Hierarchical aggregation with groups of M entries; omitted: full aggregation. */
  groupSize?: number;
  /** Documents amortized per forward pass (default 8). */
  adaptBatch?: number;
  /** Bank storage (default float32). */
  dtype?: "float32" | "float16";
  /** Folder for the bank (default: a temporary folder, deleted by dispose()). */
  bankDir?: string;
  /** bm25_mac: retrieved documents go into the prompt (and the retriever indexes the same stream). */
  retrieval?: ContextPrompter;
  /**
   * bm25_mac over an extractive memory: λ, the weight of the memory's score of a document against the retriever's
   * (default 1, chosen on validation; 0: the memory's window is read only where it lies in the first document).
   */
  memoryWeight?: number;
  name?: MethodName;
}

export function createMacMethod(mac: MacModel, ctx: MethodContext, o: MacMethodOptions = {}): QaMethod {
  const name: MethodName = o.name ?? (o.retrieval ? "bm25_mac" : o.groupSize ? "mac_hierarchical" : "mac");
  const memoryWeight = o.memoryWeight ?? 1;
  if (!(Number.isFinite(memoryWeight) && memoryWeight >= 0))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: memoryWeight must be a number >= 0, got ${memoryWeight}`);
  const ownDir = o.bankDir === undefined;
  const dir = o.bankDir ?? mkdtempSync(join(tmpdir(), "maclm-eval-bank-"));
  const api = Mac.fromModel(mac, { bank: dir, dtype: o.dtype ?? "float32" });
  const adaptBatch = o.adaptBatch ?? 8;

  const frame = mac.contextFrame ?? { before: "", after: "\n\n" };
  /** The LM reads `context` in MAC's frame, as the memory's windows are read. */
  const framed = (context: string, question: string): string =>
    `${frame.before}${context.trim()}${frame.after}${mac.prompt(question)}`;

  /** BM25 + MAC over an extractive memory: each question's prompt holds the memory's window or the documents. */
  const extractivePrompts = (questions: readonly StreamQuestion[], retrieval: ContextPrompter): string[] => {
    const out: string[] = [];
    for (let s = 0; s < questions.length; s += ctx.batchSize) {
      const batch = questions.slice(s, s + ctx.batchSize);
      const asked = batch.map((q) => q.question);
      const windows = api.chooseWindows(asked, { hierarchical: o.groupSize, documentScores: memoryWeight > 0 });
      const retrieved = retrieval.retrieve(batch);
      const contexts = retrieval.contexts(batch, retrieved);
      const pairs = batch.map((_, i) => [windows[i]!.id, retrieved[i]![0]?.id ?? windows[i]!.id]);
      const lexical = memoryWeight > 0 ? retrieval.scoresOf(batch, pairs) : null;
      batch.forEach((q, i) => {
        const [mine, first] = pairs[i]!;
        const memory = windows[i]!.documents;
        // The memory's evidence wins where the two agree, or where its fused score beats the first document's.
        const fused = (j: number): number =>
          lexical![i]![j]! + memoryWeight * (memory!.get(pairs[i]![j]!) ?? -Infinity);
        const readWindow = mine === first || (lexical !== null && fused(0) > fused(1));
        if (readWindow) out.push(framed(windows[i]!.text, q.question));
        else if (ctx.promptTemplate !== undefined) out.push(qaPrompt(ctx, q.question, contexts[i]!));
        else out.push(framed(contexts[i]!.map((t) => t.trim()).join("\n\n"), q.question));
      });
    }
    return out;
  };

  return {
    name,
    async adapt(docs: readonly StreamDoc[], progress?: ProgressFn): Promise<void> {
      for (let i = 0; i < docs.length; i += adaptBatch) {
        const batch = docs.slice(i, i + adaptBatch);
        await api.adapt(
          batch.map((d) => ({ id: d.id, text: d.text, meta: { article: d.article } })),
          { batchSize: adaptBatch, onExisting: "skip" },
        );
        releaseFreedMemory();
        progress?.(Math.min(docs.length, i + adaptBatch), docs.length);
      }
      await o.retrieval?.adapt(docs);
    },

    async answer(questions: readonly StreamQuestion[], progress?: ProgressFn): Promise<string[]> {
      if (api.stats().entries === 0)
        return answerPrompts(
          ctx,
          questions.map((q) => qaPrompt(ctx, q.question)),
          { progress },
        );
      if (o.retrieval && mac.selects)
        return answerPrompts(ctx, extractivePrompts(questions, o.retrieval), { progress });
      // Full aggregation reads the bank once per bank state; hierarchical streams it from disk for every batch.
      const prompts = o.retrieval ? o.retrieval.prompts(questions) : questions.map((q) => qaPrompt(ctx, q.question));
      return await answerPrompts(ctx, prompts, {
        progress,
        modulate: (start, end) =>
          api.modulation(
            questions.slice(start, end).map((q) => q.question),
            { hierarchical: o.groupSize },
          ),
      });
    },

    dispose(): void {
      void api.close();
      o.retrieval?.dispose();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The same frozen base LM with no adaptation at all. */
export function createNoneMethod(ctx: MethodContext): QaMethod {
  return {
    name: "none",
    async adapt(docs: readonly StreamDoc[], progress?: ProgressFn): Promise<void> {
      progress?.(docs.length, docs.length);
    },
    async answer(questions: readonly StreamQuestion[], progress?: ProgressFn): Promise<string[]> {
      return answerPrompts(
        ctx,
        questions.map((q) => qaPrompt(ctx, q.question)),
        { progress },
      );
    },
    dispose(): void {},
  };
}
