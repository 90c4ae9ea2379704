/**
 * What every compared method implements (mac-lm eval): adapt to more of the stream, in order, then answer questions
 * with whatever it has adapted to so far. Adaptation is incremental so that knowledge retention can be measured by
 * answering the first documents' questions again as the stream grows.
 */
import type { GenerateOptions } from "../../generate/index.js";
import type { CausalLM } from "../../models/types.js";
import type { Tokenizer } from "../../tokenizers/index.js";
import type { StreamDoc, StreamQuestion } from "../stream.js";

export type MethodName =
  | "none"
  | "mac"
  | "mac_hierarchical"
  | "uniform"
  | "salient_spans"
  | "camels"
  | "bm25"
  | "dense"
  | "oracle_context"
  | "bm25_mac";

/** What methods share: the frozen base LM, its tokenizer and how answers are decoded. */
/** The prompt templates of the methods that prompt the base LM (answer.ts qaPrompt lays them out). */
export const PROMPT_TEMPLATES = ["plain", "chat"] as const;
export type PromptTemplate = (typeof PROMPT_TEMPLATES)[number];

export interface MethodContext {
  base: CausalLM;
  tokenizer: Tokenizer;
  /** How a question is put to the base LM: "{question}" is replaced (MAC's configured qaTemplate). */
  qaTemplate: string;
  /** How prompts are laid out (answer.ts qaPrompt): "plain" (default: qaTemplate after the context) or "chat". */
  promptTemplate?: PromptTemplate;
  /** Greedy by default; MAC_DECODING for the paper's diverse beam search. eosTokenId is the tokenizer's. */
  decoding: GenerateOptions;
  /** Questions answered per batch where a method can batch. */
  batchSize: number;
  /** Seed for anything random (fine-tuning order is the stream's; dropout off). */
  seed: number;
}

export interface ProgressFn {
  (done: number, total: number): void;
}

export interface QaMethod {
  readonly name: MethodName;
  /** Adapts to the next documents of the stream (appends; never forgets what it was given before by itself). */
  adapt(docs: readonly StreamDoc[], progress?: ProgressFn): Promise<void>;
  /** Answers each question with the current state; one answer string (trimmed, special tokens removed) each. */
  answer(questions: readonly StreamQuestion[], progress?: ProgressFn): Promise<string[]>;
  /** Settings and statistics for the report (JSON scalars), read after the run. */
  info?(): Record<string, number | string | boolean | null>;
  /** Frees native memory (weights copies, indexes). */
  dispose(): void;
}
