/**
 * BERT's WordPiece tokenizer from a vocab.txt (one token per line, id = line number), as the tokenizer.json that
 * transformers' BertTokenizer builds from it: BertNormalizer (clean text, CJK characters spaced out,
 * lowercasing and accent stripping when uncased), BertPreTokenizer (whitespace and punctuation splits),
 * WordPiece (greedy longest match, "##" continuation prefix, [UNK] for words over 100 characters or with no
 * match), "[CLS] $A [SEP]" post-processing and the WordPiece decoder.
 */
import { MacLmError } from "../errors.js";

export interface BertOptions {
  doLowerCase?: boolean;
  /** Default: the same as doLowerCase (HF's strip_accents = None). */
  stripAccents?: boolean | null;
  tokenizeChineseChars?: boolean;
  unkToken?: string;
  clsToken?: string;
  sepToken?: string;
  padToken?: string;
  maskToken?: string;
  maxInputCharsPerWord?: number;
}

/** Tokens of a vocab.txt, in id order. */
export function parseVocabTxt(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export function bertTokenizerJson(
  tokens: readonly string[],
  opts: BertOptions = {},
  where = "vocab.txt",
): Record<string, unknown> {
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  tokens.forEach((t, i) => (vocab[t] = i));
  const unk = opts.unkToken ?? "[UNK]";
  const cls = opts.clsToken ?? "[CLS]";
  const sep = opts.sepToken ?? "[SEP]";
  for (const t of [unk, cls, sep])
    if (!(t in vocab)) throw new MacLmError("MACLM_BAD_FILE", `${where}: special token ${t} is not in the vocabulary`);
  const specials = [opts.padToken ?? "[PAD]", unk, cls, sep, opts.maskToken ?? "[MASK]"].filter((t) => t in vocab);
  const lower = opts.doLowerCase ?? true;
  return {
    version: "1.0",
    added_tokens: specials.map((t) => ({
      id: vocab[t],
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: opts.tokenizeChineseChars ?? true,
      strip_accents: opts.stripAccents ?? null,
      lowercase: lower,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab[cls]], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab[sep]], tokens: [sep] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: unk,
      continuing_subword_prefix: "##",
      max_input_chars_per_word: opts.maxInputCharsPerWord ?? 100,
      vocab,
    },
  };
}
