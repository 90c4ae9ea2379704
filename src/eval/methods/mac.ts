/**
 * MAC as a compared method: adaptation amortizes each document once (no gradients) into a durable memory bank;
 * answering encodes a batch of questions, aggregates them over the bank (full, or hierarchical in groups of M
 * streamed from disk), maps the latent to φ* and generates with the frozen base LM.
 *
 *   mac               full aggregation over the whole bank (the paper's evaluation)
 *   mac_hierarchical  hierarchical aggregation, groups of M entries (O(M·T) working memory)
 *   bm25_mac          the top-k BM25 documents in context AND what the memory gives the question: an extractive
 *                     memory's chosen window, read after the documents, next to the question (the layout chosen
 *                     on validation questions: results/eval/bm25-mac-design), in the prompt template chosen on
 *                     validation as BM25's is (ctx.promptTemplate; MAC's frame without one); a mixing memory's
 *                     φ*, modulating the LM as it reads the documents
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Mac } from "../../api/mac.js";
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
  /** The retrieved documents' texts for each question, best first. */
  contexts(questions: readonly StreamQuestion[]): string[][];
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
  name?: MethodName;
}

export function createMacMethod(mac: MacModel, ctx: MethodContext, o: MacMethodOptions = {}): QaMethod {
  const name: MethodName = o.name ?? (o.retrieval ? "bm25_mac" : o.groupSize ? "mac_hierarchical" : "mac");
  const ownDir = o.bankDir === undefined;
  const dir = o.bankDir ?? mkdtempSync(join(tmpdir(), "maclm-eval-bank-"));
  const api = Mac.fromModel(mac, { bank: dir, dtype: o.dtype ?? "float32" });
  const adaptBatch = o.adaptBatch ?? 8;

  /** The retrieved documents, then the window the memory chose, in the frame the memory's windows are read in. */
  const extractivePrompts = (questions: readonly StreamQuestion[], retrieval: ContextPrompter): string[] => {
    const frame = mac.contextFrame ?? { before: "", after: "\n\n" };
    const contexts = retrieval.contexts(questions);
    const windows: string[] = [];
    for (let i = 0; i < questions.length; i += ctx.batchSize)
      windows.push(
        ...api
          .chooseWindows(
            questions.slice(i, i + ctx.batchSize).map((q) => q.question),
            { hierarchical: o.groupSize },
          )
          .map((w) => w.text),
      );
    // With a prompt template chosen on validation (as every prompting method's), the documents and the window are
    // its contexts; without one, MAC's own frame.
    if (ctx.promptTemplate !== undefined)
      return questions.map((q, i) => qaPrompt(ctx, q.question, [...contexts[i]!, windows[i]!]));
    return questions.map((q, i) => {
      const context = [...contexts[i]!, windows[i]!].map((t) => t.trim()).join("\n\n");
      return `${frame.before}${context}${frame.after}${mac.prompt(q.question)}`;
    });
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
