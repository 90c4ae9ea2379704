/**
 * `oracle_context`: the question's own paragraph in the frozen base LM's context — BM25 with a perfect retriever,
 * through the same prompt machinery (qaPrompt, answerPrompts, the same token budget per document). The ceiling of
 * the retrieval methods and the in-context reference for MAC: what the LM answers when it reads the right document.
 * A question whose document has not been adapted to yet is asked without a context.
 */
import { MacLmError } from "../../errors.js";
import type { StreamDoc, StreamQuestion } from "../stream.js";
import { answerPrompts, cutToTokens, qaPrompt } from "./answer.js";
import type { MethodContext, ProgressFn, QaMethod } from "./types.js";

export interface OracleContextOptions {
  /** Each document is cut to its first maxContextTokens base-LM tokens (default: not cut). */
  maxContextTokens?: number;
}

export class OracleContextMethod implements QaMethod {
  readonly name = "oracle_context" as const;
  readonly #docs = new Map<string, string>();
  #disposed = false;

  constructor(
    private readonly ctx: MethodContext,
    readonly opts: OracleContextOptions = {},
  ) {
    const m = opts.maxContextTokens;
    if (m !== undefined && !(Number.isInteger(m) && m >= 1))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `oracle_context: maxContextTokens must be an integer >= 1, got ${m}`);
  }

  adapt(docs: readonly StreamDoc[], progress?: ProgressFn): Promise<void> {
    this.#check("adapt");
    for (const d of docs) if (!this.#docs.has(d.id)) this.#docs.set(d.id, d.text);
    progress?.(docs.length, docs.length);
    return Promise.resolve();
  }

  /** The prompts answer() gives the base LM: each question after its own document (when adapted to). */
  prompts(questions: readonly StreamQuestion[]): string[] {
    this.#check("prompts");
    return questions.map((q) => {
      const doc = this.#docs.get(q.docId);
      return qaPrompt(
        this.ctx,
        q.question,
        doc === undefined ? [] : [cutToTokens(this.ctx, doc, this.opts.maxContextTokens)],
      );
    });
  }

  answer(questions: readonly StreamQuestion[], progress?: ProgressFn): Promise<string[]> {
    return answerPrompts(this.ctx, this.prompts(questions), { progress });
  }

  dispose(): void {
    this.#disposed = true;
    this.#docs.clear();
  }

  #check(op: string): void {
    if (this.#disposed) throw new MacLmError("MACLM_DISPOSED", `oracle_context: ${op} after dispose()`);
  }
}
