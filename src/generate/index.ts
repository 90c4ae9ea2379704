/**
 * Text generation over any CausalLM (src/models/types.ts): greedy search, beam search and diverse (group) beam
 * search with Hugging Face's semantics. MAC answers questions with diverse beam search (12 beams, 4 groups,
 * diversity penalty 10, early stopping, at most 16 new tokens): MAC_DECODING.
 *
 *   const out = generate(model, [promptIds], { ...MAC_DECODING, modulation });
 *   out.sequences[0]   // new token ids, ending with EOS if the model emitted one
 */
import type { CausalLM } from "../models/types.js";
import type { Tokenizer } from "../tokenizers/index.js";
import { beamSearch } from "./beam.js";
import type { GenerateOptions, GenerateOutput } from "./common.js";
import { greedySearch } from "./greedy.js";

export { type GenerateOptions, type GenerateOutput, leftPad, logSoftmaxRow } from "./common.js";
export { greedySearch, greedyTokens } from "./greedy.js";
export { beamSearch, BeamHypotheses, topK } from "./beam.js";

/** MAC's evaluation decoding (mac-reference §3.2): diverse beam search 12/4, penalty 10, early stopping, ≤16 tokens. */
export const MAC_DECODING: Readonly<GenerateOptions> = Object.freeze({
  maxNewTokens: 16,
  numBeams: 12,
  numBeamGroups: 4,
  diversityPenalty: 10,
  earlyStopping: true,
  lengthPenalty: 1,
});

/** Greedy search when numBeams is 1 (the default), else (diverse) beam search. */
export function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): GenerateOutput {
  return (opts.numBeams ?? 1) === 1 ? greedySearch(model, prompts, opts) : beamSearch(model, prompts, opts);
}

export interface GenerateTextOptions extends GenerateOptions {
  /** Add the tokenizer's special tokens (e.g. BOS) to the prompt, as HF tokenizers do by default. Default true. */
  addSpecialTokens?: boolean;
}

export interface GeneratedText {
  /** The continuation, special tokens removed. */
  text: string;
  ids: number[];
  score: number | null;
}

/** Tokenizes `prompt`, generates, decodes the new tokens (numReturnSequences results). */
export function generateText(
  model: CausalLM,
  tokenizer: Tokenizer,
  prompt: string,
  opts: GenerateTextOptions = {},
): GeneratedText[] {
  const ids = tokenizer.encode(prompt, { addSpecialTokens: opts.addSpecialTokens ?? true });
  const eosTokenId = opts.eosTokenId !== undefined ? opts.eosTokenId : (model.eosTokenId ?? tokenizer.eosId);
  const out = generate(model, [ids], { ...opts, eosTokenId });
  return out.sequences.map((seq, i) => ({
    text: tokenizer.decode(seq, { skipSpecialTokens: true }),
    ids: seq,
    score: out.scores?.[i] ?? null,
  }));
}
