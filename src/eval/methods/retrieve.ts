/**
 * The retrieval baselines `bm25` and `dense` (mac-reference §6.2): adapting indexes the documents; answering puts
 * the top-k documents for each question in front of it (qaPrompt: best first, blank lines between) and lets the
 * frozen base LM answer (answerPrompts).
 *
 *   const method = await createRetrievalMethod("bm25", ctx, { k: 1 });
 *   await method.adapt(stream.docs);
 *   const answers = await method.answer(stream.questions);
 *   method.dispose();
 */
import { MacLmError } from "../../errors.js";
import type { StreamDoc, StreamQuestion } from "../stream.js";
import { answerPrompts, cutToTokens, qaPrompt } from "./answer.js";
import { type CreateRetrieverOptions, type Retriever, type RetrieverKind, createRetriever } from "./retrieval.js";
import type { MethodContext, ProgressFn, QaMethod } from "./types.js";

export { createRetriever, type Retriever, type RetrieverKind } from "./retrieval.js";

export interface RetrievalMethodOptions {
  /** Documents put in front of each question (default 1). */
  k?: number;
  /**
   * Each retrieved document is cut to its first maxContextTokens tokens of the base LM's tokenizer (default: not
   * cut), so that k long documents still fit the base LM's context.
   */
  maxContextTokens?: number;
}

function checkOptions(name: string, opts: RetrievalMethodOptions): void {
  const { k, maxContextTokens: m } = opts;
  if (k !== undefined && !(Number.isInteger(k) && k >= 1))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: k must be an integer >= 1, got ${k}`);
  if (m !== undefined && !(Number.isInteger(m) && m >= 1))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: maxContextTokens must be an integer >= 1, got ${m}`);
}

export class RetrievalMethod implements QaMethod {
  readonly k: number;
  readonly maxContextTokens: number | undefined;

  constructor(
    readonly name: RetrieverKind,
    private readonly ctx: MethodContext,
    readonly retriever: Retriever,
    opts: RetrievalMethodOptions = {},
  ) {
    checkOptions(name, opts);
    this.k = opts.k ?? 1;
    this.maxContextTokens = opts.maxContextTokens;
  }

  adapt(docs: readonly StreamDoc[], progress?: ProgressFn): Promise<void> {
    this.retriever.add(docs, progress);
    return Promise.resolve();
  }

  /** The documents each question retrieves, best first. */
  retrieve(questions: readonly StreamQuestion[]): StreamDoc[][] {
    return this.retriever.searchMany(
      questions.map((q) => q.question),
      this.k,
    );
  }

  /** The retriever's score of each named document for each question (Retriever.scoresOf). */
  scoresOf(questions: readonly StreamQuestion[], ids: readonly (readonly string[])[]): number[][] {
    return questions.map((q, i) => this.retriever.scoresOf(q.question, ids[i]!));
  }

  /** The texts put in front of each question: the retrieved documents, best first, each cut to maxContextTokens. */
  contexts(questions: readonly StreamQuestion[], retrieved = this.retrieve(questions)): string[][] {
    return retrieved.map((found) => found.map((d) => cutToTokens(this.ctx, d.text, this.maxContextTokens)));
  }

  /** The prompts answer() gives the base LM. */
  prompts(questions: readonly StreamQuestion[]): string[] {
    const contexts = this.contexts(questions);
    return questions.map((q, i) => qaPrompt(this.ctx, q.question, contexts[i]));
  }

  answer(questions: readonly StreamQuestion[], progress?: ProgressFn): Promise<string[]> {
    return answerPrompts(this.ctx, this.prompts(questions), { progress });
  }

  dispose(): void {
    this.retriever.dispose();
  }
}

export interface CreateRetrievalMethodOptions extends RetrievalMethodOptions, CreateRetrieverOptions {
  /** Use this retriever (it is disposed with the method) instead of creating one. */
  retriever?: Retriever;
}

export async function createRetrievalMethod(
  kind: RetrieverKind,
  ctx: MethodContext,
  opts: CreateRetrievalMethodOptions = {},
): Promise<RetrievalMethod> {
  if (opts.retriever && opts.retriever.kind !== kind)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `createRetrievalMethod: a ${opts.retriever.kind} retriever given for ${kind}`,
    );
  checkOptions(kind, opts);
  const retriever = opts.retriever ?? (await createRetriever(kind, opts));
  return new RetrievalMethod(kind, ctx, retriever, opts);
}
