/**
 * A word-level Tokenizer over a fixed vocabulary, for closed-vocabulary text such as syntheticStream's "tiny"
 * documents ("bako lives in tuzi ."): one id per word, no sub-word pieces.
 *
 *   const tok = new WordTokenizer(tinyVocabulary());
 *   tok.encode("Where does bako live?")   // [id("where"), id("does"), id("bako"), id("live"), id("?")]
 *
 * Ids: 0 <pad>, 1 <eos>, 2 <unk>, then the words in the order given (vocabSize = words + 3).
 * Encoding: lowercased (unless lowercase: false), then split into words at whitespace, with the punctuation marks
 * . , ? ! ; : as words of their own; a word outside the vocabulary becomes <unk>. No special token is ever added
 * (like GPT-2's tokenizer, addSpecialTokens changes nothing): callers append <eos> themselves.
 * Decoding joins the words with single spaces (the tiny texts' own spelling: "bako lives in tuzi ."); with
 * skipSpecialTokens, <pad>, <eos> and <unk> are dropped (Hugging Face drops every special token, <unk> included).
 *
 * kind is "wordpiece": a word-level vocabulary is a WordPiece vocabulary without continuation pieces (the
 * Tokenizer interface has no word-level kind; nothing branches on it).
 */
import { MacLmError } from "../errors.js";
import type { DecodeOptions, EncodeOptions, Tokenizer } from "./tokenizer.js";

export interface WordTokenizerOptions {
  /** Lowercase the text before splitting (default true). */
  lowercase?: boolean;
}

const SPECIAL = ["<pad>", "<eos>", "<unk>"] as const;
const WORD = /[^\s.,?!;:]+|[.,?!;:]/g;

export class WordTokenizer implements Tokenizer {
  readonly kind = "wordpiece" as const;
  readonly vocabSize: number;
  readonly bosId = null;
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  readonly clsId = null;
  readonly sepId = null;
  readonly maskId = null;
  readonly specialIds: ReadonlySet<number> = new Set([0, 1, 2]);
  readonly lowercase: boolean;
  readonly #tokens: readonly string[];
  readonly #ids: ReadonlyMap<string, number>;

  constructor(words: readonly string[], opts: WordTokenizerOptions = {}) {
    this.lowercase = opts.lowercase ?? true;
    const ids = new Map<string, number>(SPECIAL.map((s, i) => [s, i]));
    for (const w of words) {
      if (typeof w !== "string" || w.length === 0 || (w.match(WORD)?.length ?? 0) !== 1 || w.match(WORD)![0] !== w)
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `WordTokenizer: vocabulary entry ${JSON.stringify(w)} is not a single word (no whitespace; punctuation . , ? ! ; : only on its own)`,
        );
      if (this.lowercase && w !== w.toLowerCase())
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `WordTokenizer: vocabulary entry ${JSON.stringify(w)} has capitals, which a lowercasing tokenizer never produces`,
        );
      if (ids.has(w))
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `WordTokenizer: vocabulary entry ${JSON.stringify(w)} appears twice (or is a special token)`,
        );
      ids.set(w, ids.size);
    }
    this.#ids = ids;
    this.#tokens = [...ids.keys()];
    this.vocabSize = this.#tokens.length;
  }

  tokenize(text: string): string[] {
    if (typeof text !== "string")
      throw new MacLmError("MACLM_BAD_ARGUMENT", `WordTokenizer.tokenize: expected a string, got ${typeof text}`);
    const words = (this.lowercase ? text.toLowerCase() : text).match(WORD) ?? [];
    return words.map((w) => (this.#ids.has(w) ? w : SPECIAL[this.unkId]));
  }

  /** Word ids; addSpecialTokens is accepted for the interface and adds nothing (see the module comment). */
  encode(text: string, _opts: EncodeOptions = {}): number[] {
    return this.tokenize(text).map((w) => this.#ids.get(w)!);
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const words: string[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `WordTokenizer.decode: token id ${id} is outside the vocabulary of ${this.vocabSize}`,
        );
      if (opts.skipSpecialTokens && this.specialIds.has(id)) continue;
      words.push(this.#tokens[id]!);
    }
    return words.join(" ");
  }

  idToToken(id: number): string | undefined {
    return this.#tokens[id];
  }

  tokenToId(token: string): number | undefined {
    return this.#ids.get(token);
  }
}
