/**
 * Base-LM inputs for question answering, as MAC trains them (mac-reference 2.1): the raw question immediately
 * followed by " " + answer + EOS (no space after a prompt ending in whitespace), right-padded; the loss covers only
 * the answer tokens and EOS.
 *
 *   ids     int32 (B, L)     question ⧺ answer ⧺ EOS ⧺ pad
 *   mask    float32 (B, L)   1 on real tokens
 *   targets int32 (B, L)     targets[t] = ids[t+1] where ids[t+1] is an answer token or EOS, else -100
 *
 * Truncation keeps the whole answer and drops the question's start (the reference crops from the left too;
 * its negative-padding edge case that cuts answer tokens is not reproduced).
 */
import { MacLmError } from "../errors.js";
import { Tensor } from "../tensor/index.js";
import type { Tokenizer } from "../tokenizers/index.js";

export const IGNORE_INDEX = -100;

export interface QaBatch {
  ids: Tensor;
  mask: Tensor;
  targets: Tensor;
  /** Answer tokens (EOS included) per row, for token-weighted averages. */
  answerTokens: number;
}

/** One question+answer row's tokens: the (left-cropped) question, then the answer tokens and EOS. */
export interface QaRow {
  q: number[];
  a: number[];
}

/** The token rows of qaBatch, unpadded (the distillation teacher reads the same tokens after the document). */
export function qaRows(
  tokenizer: Tokenizer,
  questions: readonly string[],
  answers: readonly string[],
  opts: { maxLength: number; maxAnswerTokens?: number },
): QaRow[] {
  if (questions.length !== answers.length || questions.length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `qaBatch: ${questions.length} questions and ${answers.length} answers`);
  const eos = tokenizer.eosId;
  if (eos === null) throw new MacLmError("MACLM_BAD_ARGUMENT", "qaBatch: the base tokenizer has no EOS token");
  return questions.map((q, i) => {
    // A prompt that ends in whitespace (a chat template's "assistant\n") keeps it and the answer follows directly;
    // otherwise the answer follows after a space.
    const prompt = q.trimStart();
    const open = /\s$/.test(prompt);
    const qIds = tokenizer.encode(open ? prompt : prompt.trimEnd(), { addSpecialTokens: false });
    let aIds = tokenizer.encode((open ? "" : " ") + answers[i]!.trim(), { addSpecialTokens: false });
    if (opts.maxAnswerTokens !== undefined) aIds = aIds.slice(0, opts.maxAnswerTokens);
    aIds = [...aIds, eos];
    const room = Math.max(1, opts.maxLength - aIds.length);
    return { q: qIds.slice(Math.max(0, qIds.length - room)), a: aIds };
  });
}

export function qaBatch(
  tokenizer: Tokenizer,
  questions: readonly string[],
  answers: readonly string[],
  opts: { maxLength: number; maxAnswerTokens?: number },
): QaBatch {
  const rows = qaRows(tokenizer, questions, answers, opts);
  const pad = tokenizer.padId ?? tokenizer.eosId!;
  const L = Math.max(...rows.map((r) => r.q.length + r.a.length));
  const B = rows.length;
  const ids = Tensor.full([B, L], pad, "int32");
  const mask = Tensor.zeros([B, L]);
  const targets = Tensor.full([B, L], IGNORE_INDEX, "int32");
  let answerTokens = 0;
  rows.forEach(({ q, a }, b) => {
    const seq = [...q, ...a];
    for (let t = 0; t < seq.length; t++) {
      ids.data[b * L + t] = seq[t]!;
      mask.data[b * L + t] = 1;
    }
    // Position t predicts token t+1: the answer tokens start at q.length.
    for (let t = q.length - 1; t < seq.length - 1; t++) targets.data[b * L + t] = seq[t + 1]!;
    answerTokens += a.length;
  });
  return { ids, mask, targets, answerTokens };
}
