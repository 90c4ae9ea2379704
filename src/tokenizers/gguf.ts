/**
 * Tokenizers from GGUF metadata (llama.cpp's tokenizer.ggml.* keys), as tokenizer.json equivalents.
 *
 * Supported: tokenizer.ggml.model "gpt2" (byte-level BPE: tokens, token_type, merges), with the pre-tokenizers
 * (tokenizer.ggml.pre) below, written the way llama.cpp's llama-vocab.cpp splits text for each name:
 *   smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b: each \p{N} alone, then GPT-2's regex
 *     (= HF's Digits(individual_digits) + ByteLevel, which is SmolLM2's own tokenizer.json);
 *   gpt-2, default, mpt, olmo, jais: GPT-2's regex (HF ByteLevel);
 *   llama-bpe, llama3, llama-v3, falcon3, pixtral, dbrx, smaug-bpe: Llama 3's regex;
 *   qwen2, deepseek-r1-qwen, megrez: Qwen2's regex.
 * Tokens typed CONTROL (3) become special added tokens, USER_DEFINED (4) plain added tokens (matched whole).
 * add_bos_token / add_eos_token decide what encode(addSpecialTokens) adds. Other tokenizer models ("llama"
 * SentencePiece, "t5", "bert") are refused with MACLM_BAD_FILE naming them.
 */
import { MacLmError } from "../errors.js";
import type { GgufValue } from "../io/gguf.js";
import { HfTokenizer, type Tokenizer } from "./tokenizer.js";

/** What tokenizerFromGguf needs of an open GGUF file (openGguf's result has it). */
export interface GgufMetadataSource {
  readonly path: string;
  readonly metadata: Readonly<Record<string, GgufValue>>;
}

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean) => ({
  type: "ByteLevel",
  add_prefix_space: false,
  trim_offsets: true,
  use_regex: useRegex,
});
const split = (regex: string) => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });

const PRE_TOKENIZERS: Record<string, () => unknown> = {};
for (const n of ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"])
  PRE_TOKENIZERS[n] = () => ({
    type: "Sequence",
    pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)],
  });
for (const n of ["gpt-2", "default", "mpt", "olmo", "jais"]) PRE_TOKENIZERS[n] = () => byteLevel(true);
for (const n of ["llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral", "dbrx", "smaug-bpe"])
  PRE_TOKENIZERS[n] = () => ({ type: "Sequence", pretokenizers: [split(LLAMA3_SPLIT), byteLevel(false)] });
for (const n of ["qwen2", "deepseek-r1-qwen", "megrez"])
  PRE_TOKENIZERS[n] = () => ({ type: "Sequence", pretokenizers: [split(QWEN2_SPLIT), byteLevel(false)] });

/** GGUF pre-tokenizer names tokenizerFromGguf understands. */
export const ggufPreTokenizers = (): string[] => Object.keys(PRE_TOKENIZERS);

function bad(src: GgufMetadataSource, msg: string): MacLmError {
  return new MacLmError("MACLM_BAD_FILE", `${src.path}: ${msg}`);
}

function get<T>(src: GgufMetadataSource, key: string, check: (v: GgufValue) => boolean, what: string): T | undefined {
  const v = src.metadata[key];
  if (v === undefined) return undefined;
  if (!check(v)) throw bad(src, `metadata ${key} should be ${what}`);
  return v as T;
}
const isStrings = (v: GgufValue) => Array.isArray(v) && v.every((x) => typeof x === "string");
const isId = (v: GgufValue) => typeof v === "number" && Number.isInteger(v) && v >= 0;

/** The tokenizer.json equivalent of a GGUF file's tokenizer metadata, and the special token ids. */
export function tokenizerJsonFromGguf(src: GgufMetadataSource): {
  json: Record<string, unknown>;
  special: { bos: number | null; eos: number | null; pad: number | null; unk: number | null };
} {
  const model = get<string>(src, "tokenizer.ggml.model", (v) => typeof v === "string", "a string");
  if (model === undefined) throw bad(src, "no tokenizer in this file (metadata tokenizer.ggml.model is missing)");
  if (model !== "gpt2")
    throw bad(src, `tokenizer.ggml.model "${model}" is not supported (supported: "gpt2", byte-level BPE)`);
  const tokens = get<string[]>(src, "tokenizer.ggml.tokens", isStrings, "an array of strings");
  const merges = get<string[]>(src, "tokenizer.ggml.merges", isStrings, "an array of strings");
  if (tokens === undefined || tokens.length === 0) throw bad(src, "metadata tokenizer.ggml.tokens is missing or empty");
  if (merges === undefined)
    throw bad(src, "metadata tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)");
  const types = src.metadata["tokenizer.ggml.token_type"];
  if (types !== undefined && (!(types instanceof Int32Array) || types.length !== tokens.length))
    throw bad(src, `metadata tokenizer.ggml.token_type should be ${tokens.length} int32s`);
  const pre = get<string>(src, "tokenizer.ggml.pre", (v) => typeof v === "string", "a string") ?? "default";
  const preTokenizer = PRE_TOKENIZERS[pre];
  if (preTokenizer === undefined)
    throw bad(src, `tokenizer.ggml.pre "${pre}" is not supported (supported: ${ggufPreTokenizers().join(", ")})`);

  const idOf = (key: string): number | null => {
    const v = get<number>(src, key, isId, "a token id");
    if (v === undefined) return null;
    if (v >= tokens.length) throw bad(src, `metadata ${key} = ${v} is outside the ${tokens.length} tokens`);
    return v;
  };
  const bos = idOf("tokenizer.ggml.bos_token_id");
  const eos = idOf("tokenizer.ggml.eos_token_id");
  const pad = idOf("tokenizer.ggml.padding_token_id");
  const unk = idOf("tokenizer.ggml.unknown_token_id");
  const addBos = get<boolean>(src, "tokenizer.ggml.add_bos_token", (v) => typeof v === "boolean", "a bool") ?? false;
  const addEos = get<boolean>(src, "tokenizer.ggml.add_eos_token", (v) => typeof v === "boolean", "a bool") ?? false;

  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  const addedTokens = [];
  if (types !== undefined)
    for (let i = 0; i < tokens.length; i++) {
      const ty = types[i]!;
      if (ty === 3 || ty === 4)
        addedTokens.push({
          id: i,
          content: tokens[i]!,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: ty === 3,
        });
    }
  const single: unknown[] = [];
  const specialTokens: Record<string, unknown> = {};
  const addSpecial = (id: number) => {
    const t = tokens[id]!;
    single.push({ SpecialToken: { id: t, type_id: 0 } });
    specialTokens[t] = { id: t, ids: [id], tokens: [t] };
  };
  if (addBos && bos !== null) addSpecial(bos);
  single.push({ Sequence: { id: "A", type_id: 0 } });
  if (addEos && eos !== null) addSpecial(eos);
  const json = {
    version: "1.0",
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizer(),
    post_processor: {
      type: "TemplateProcessing",
      single,
      pair: [...single, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: specialTokens,
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map((m, i) => {
        const parts = m.split(" ");
        if (parts.length !== 2)
          throw bad(src, `merge #${i} ${JSON.stringify(m)} is not two tokens separated by a space`);
        return parts;
      }),
    },
  };
  return { json, special: { bos, eos, pad, unk } };
}

/** A Tokenizer from a GGUF file's metadata (see the module comment for what is supported). */
export function tokenizerFromGguf(src: GgufMetadataSource): Tokenizer {
  const { json, special } = tokenizerJsonFromGguf(src);
  return new HfTokenizer(
    json,
    { clean_up_tokenization_spaces: false },
    { kind: "bpe", specialIds: special, source: src.path },
  );
}
