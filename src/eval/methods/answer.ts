/**
 * Answering with the base LM, shared by every method: prompts in batches of ctx.batchSize (left-padded by
 * generate()), decoded without special tokens and trimmed. An optional per-batch modulation function gives MAC's
 * φ* (prefix/LoRA) for the questions of a batch.
 */
import { generate } from "../../generate/index.js";
import type { Modulation } from "../../models/types.js";
import { nextTurn, noGrad, releaseFreedMemory, scope } from "../../tensor/index.js";
import { type MethodContext, PROMPT_TEMPLATES, type ProgressFn, type PromptTemplate } from "./types.js";

/**
 * The prompt templates a prompting baseline's template is chosen among, on validation documents (methods/prompts.ts):
 *   plain  the context documents (if any), a blank line between each, then MAC's qaTemplate ("Question: …\nAnswer:")
 *          — what MAC was trained with;
 *   chat   SmolLM2-Instruct's chat template (ChatML): a system turn asking for a short answer, a user turn with the
 *          context and the question, then the assistant's turn, as a user of the instruct model would prompt it.
 */
export { PROMPT_TEMPLATES, type PromptTemplate };

/** The chat template's system instructions, with and without context documents. */
export const CHAT_INSTRUCTIONS = {
  context: "Answer the question with a short phrase copied from the context.",
  bare: "Answer the question with a short phrase.",
} as const;

/** The prompt for a question, optionally preceded by context documents (retrieval methods), in ctx's template. */
export function qaPrompt(
  ctx: Pick<MethodContext, "qaTemplate" | "promptTemplate">,
  question: string,
  contexts: readonly string[] = [],
): string {
  const context = contexts.map((c) => c.trim()).join("\n\n");
  if (ctx.promptTemplate === "chat") {
    const system = contexts.length === 0 ? CHAT_INSTRUCTIONS.bare : CHAT_INSTRUCTIONS.context;
    const user = `${contexts.length === 0 ? "" : `Context: ${context}\n\n`}Question: ${question.trim()}`;
    return `<|im_start|>system\n${system}<|im_end|>\n<|im_start|>user\n${user}<|im_end|>\n` + "<|im_start|>assistant\n";
  }
  const q = ctx.qaTemplate.replace("{question}", question.trim());
  return contexts.length === 0 ? q : `${context}\n\n${q}`;
}

/** `text` cut to its first maxTokens tokens of the base LM's tokenizer (unchanged when it fits, or no limit). */
export function cutToTokens(ctx: Pick<MethodContext, "tokenizer">, text: string, maxTokens?: number): string {
  if (maxTokens === undefined) return text;
  const ids = ctx.tokenizer.encode(text, { addSpecialTokens: false });
  if (ids.length <= maxTokens) return text;
  return ctx.tokenizer.decode(ids.slice(0, maxTokens), { skipSpecialTokens: true });
}

export async function answerPrompts(
  ctx: MethodContext,
  prompts: readonly string[],
  opts: { modulate?: (start: number, end: number) => Modulation | undefined; progress?: ProgressFn } = {},
): Promise<string[]> {
  const tok = ctx.tokenizer;
  const out: string[] = [];
  for (let i = 0; i < prompts.length; i += ctx.batchSize) {
    const end = Math.min(prompts.length, i + ctx.batchSize);
    noGrad(() =>
      scope(() => {
        const ids = prompts.slice(i, end).map((p) => tok.encode(p, { addSpecialTokens: false }));
        const modulation = opts.modulate?.(i, end);
        const res = generate(ctx.base, ids, { eosTokenId: tok.eosId, ...ctx.decoding, modulation });
        for (const seq of res.sequences) out.push(tok.decode(seq, { skipSpecialTokens: true }).trim());
      }),
    );
    // Without these, RSS grew ~250 MB per batch of 16 SmolLM2 generations (measured), to 12 GB over 917 questions.
    await nextTurn();
    releaseFreedMemory();
    opts.progress?.(end, prompts.length);
  }
  return out;
}
