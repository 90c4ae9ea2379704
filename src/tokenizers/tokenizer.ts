/**
 * The tokenizer interface, and its implementation on top of tokenizers.js (@huggingface/tokenizers, a pure-JS
 * runtime for HF tokenizer.json files: BPE, WordPiece, Unigram and their normalisers/pre-tokenisers/decoders).
 *
 * Every loader in this folder produces a tokenizer.json-shaped object and hands it to HfTokenizer, with a few
 * corrections where tokenizers.js departs from HF `tokenizers` (the Rust reference):
 *  - Digits pre-tokenizer: tokenizers.js splits ASCII digits only; Rust splits every Unicode number (\p{N}).
 *    It is rewritten as Split(\p{N}) / Split(\p{N}+) with the Isolated behaviour, which is what Rust does.
 *  - Precompiled normaliser: tokenizers.js ignores the charsmap (it runs NFKC); ours applies it (charsmap.ts).
 * SentencePiece models loaded as SentencePiece runs them (not through an HF conversion) bring their own
 * normaliser and decoder (sentencepiece.ts), which replace tokenizers.js's.
 */
import * as tokenizersJs from "@huggingface/tokenizers";
import { MacLmError } from "../errors.js";
import { Charsmap } from "./charsmap.js";

// The package's .d.ts files use extension-less relative imports, which NodeNext resolution cannot follow, so
// the parts used here are typed locally.
interface TokenizersJsInstance {
  normalizer: unknown;
  encode(text: string, opts: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], opts: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_added_tokens_decoder(): Map<number, { special: boolean; content: string }>;
}
interface TokenizersJsModule {
  Tokenizer: new (json: object, config: object) => TokenizersJsInstance;
  PrecompiledNormalizer: abstract new (...args: never[]) => object;
  SequenceNormalizer: abstract new (...args: never[]) => object;
}
const {
  Tokenizer: TokenizersJs,
  PrecompiledNormalizer,
  SequenceNormalizer,
} = tokenizersJs as unknown as TokenizersJsModule;

export type TokenizerKind = "bpe" | "wordpiece" | "unigram";

export interface EncodeOptions {
  /** Add the model's special tokens (BOS, [CLS]/[SEP], </s>) as its post-processor says. Default true. */
  addSpecialTokens?: boolean;
}
export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/PAD/[CLS]/... and other special added tokens). Default false. */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Number of token ids (the embedding rows the model needs): max id + 1, added tokens included. */
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  /** BERT-style models: [CLS], [SEP], [MASK]. */
  readonly clsId: number | null;
  readonly sepId: number | null;
  readonly maskId: number | null;
  /** Ids that skipSpecialTokens drops. */
  readonly specialIds: ReadonlySet<number>;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The token strings of encode(text) (no special tokens added). */
  tokenize(text: string): string[];
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
}

export interface SpecialTokenNames {
  bos?: string | null;
  eos?: string | null;
  pad?: string | null;
  unk?: string | null;
  cls?: string | null;
  sep?: string | null;
  mask?: string | null;
}

export interface HfTokenizerOptions {
  kind: TokenizerKind;
  /** Special tokens by name (looked up in the vocabulary) ... */
  special?: SpecialTokenNames;
  /** ... or by id (wins over names). */
  specialIds?: { bos?: number | null; eos?: number | null; pad?: number | null; unk?: number | null };
  /** Where it came from, for error messages. */
  source: string;
  /** Replaces the normaliser (SentencePiece's own). */
  normalizer?: (text: string) => string;
  /** Replaces decoding (SentencePiece's own). */
  decode?: (ids: readonly number[]) => string;
  /** Extra ids that decode(skipSpecialTokens) drops. */
  extraSpecialIds?: readonly number[];
  /** Token strings to report for some ids (when the json renamed them). */
  displayNames?: ReadonlyMap<number, string>;
}

type Json = Record<string, unknown>;

/** Rewrites the parts of a tokenizer.json that tokenizers.js would run differently from HF tokenizers. */
export function fixTokenizerJson(json: Json): Json {
  const fixPre = (p: unknown): unknown => {
    if (p === null || typeof p !== "object") return p;
    const o = p as Json;
    if (o.type === "Digits")
      return {
        type: "Split",
        pattern: { Regex: o.individual_digits ? "\\p{N}" : "\\p{N}+" },
        behavior: "Isolated",
        invert: false,
      };
    if (o.type === "Sequence" && Array.isArray(o.pretokenizers))
      return { ...o, pretokenizers: o.pretokenizers.map(fixPre) };
    return o;
  };
  return { ...json, pre_tokenizer: fixPre(json.pre_tokenizer ?? null) };
}

/** Points every Precompiled normaliser of a built tokenizers.js tokenizer at our charsmap implementation. */
function patchPrecompiled(normalizer: unknown, source: string): void {
  if (normalizer instanceof PrecompiledNormalizer) {
    const b64 = (normalizer as { config?: { precompiled_charsmap?: string } }).config?.precompiled_charsmap;
    if (typeof b64 !== "string" || b64.length === 0) return;
    const map = Charsmap.fromBase64(b64, `${source}: precompiled_charsmap`);
    (normalizer as unknown as { normalize: (t: string) => string }).normalize = (t) => map.normalizeHfPrecompiled(t);
  } else if (normalizer instanceof SequenceNormalizer) {
    for (const n of (normalizer as unknown as { normalizers: unknown[] }).normalizers) patchPrecompiled(n, source);
  }
}

export class HfTokenizer implements Tokenizer {
  readonly kind: TokenizerKind;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  readonly clsId: number | null;
  readonly sepId: number | null;
  readonly maskId: number | null;
  readonly specialIds: ReadonlySet<number>;
  readonly source: string;
  private readonly tok: TokenizersJsInstance;
  private readonly customDecode: ((ids: readonly number[]) => string) | undefined;
  private readonly displayNames: ReadonlyMap<number, string> | undefined;
  private readonly displayIds: ReadonlyMap<string, number> | undefined;
  private readonly cleanUp: boolean;

  constructor(json: Json, config: Json, opts: HfTokenizerOptions) {
    this.kind = opts.kind;
    this.source = opts.source;
    try {
      this.tok = new TokenizersJs(fixTokenizerJson({ added_tokens: [], ...json }), { ...config });
    } catch (e) {
      throw new MacLmError("MACLM_BAD_FILE", `${opts.source}: cannot build the tokenizer (${(e as Error).message})`, {
        cause: e,
      });
    }
    patchPrecompiled(this.tok.normalizer, opts.source);
    if (opts.normalizer) {
      const f = opts.normalizer;
      (this.tok as unknown as { normalizer: (t: string) => string }).normalizer = f;
    }
    this.customDecode = opts.decode;
    this.displayNames = opts.displayNames;
    this.displayIds = opts.displayNames ? new Map([...opts.displayNames].map(([id, name]) => [name, id])) : undefined;
    this.cleanUp = (config.clean_up_tokenization_spaces as boolean | undefined) ?? false;
    const model = (this.tok as unknown as { model: { vocab: unknown[] } }).model;
    this.vocabSize = model.vocab.length;
    const byName = (name: string | null | undefined): number | null => {
      if (name === null || name === undefined) return null;
      return this.tok.token_to_id(name) ?? null;
    };
    const s = opts.special ?? {};
    const ids = opts.specialIds ?? {};
    this.bosId = ids.bos !== undefined ? ids.bos : byName(s.bos);
    this.eosId = ids.eos !== undefined ? ids.eos : byName(s.eos);
    this.padId = ids.pad !== undefined ? ids.pad : byName(s.pad);
    this.unkId = ids.unk !== undefined ? ids.unk : byName(s.unk);
    this.clsId = byName(s.cls);
    this.sepId = byName(s.sep);
    this.maskId = byName(s.mask);
    const special = new Set<number>(opts.extraSpecialIds ?? []);
    for (const [id, t] of this.tok.get_added_tokens_decoder()) if (t.special) special.add(id);
    this.specialIds = special;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string")
      throw new MacLmError("MACLM_BAD_ARGUMENT", `encode: expected a string, got ${typeof text}`);
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  tokenize(text: string): string[] {
    return this.encode(text, { addSpecialTokens: false }).map((id) => this.idToToken(id)!);
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `decode: token id ${id} is outside the vocabulary of ${this.vocabSize} (${this.source})`,
        );
    const kept = opts.skipSpecialTokens ? ids.filter((id) => !this.specialIds.has(id)) : [...ids];
    if (kept.length === 0) return "";
    if (this.customDecode) return this.customDecode(kept);
    return this.tok.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUp });
  }

  idToToken(id: number): string | undefined {
    return this.displayNames?.get(id) ?? this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.displayIds?.get(token) ?? this.tok.token_to_id(token);
  }
}
