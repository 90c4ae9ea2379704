/**
 * SentencePiece models (spiece.model / tokenizer.model): a minimal protobuf reader for the fields a tokenizer
 * needs, and their translation to tokenizer.json form.
 *
 * ModelProto fields read (sentencepiece_model.proto): pieces = 1 (piece = 1, score = 2, type = 3: NORMAL 1,
 * UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6); trainer_spec = 2 (model_type = 3: UNIGRAM 1, BPE 2,
 * WORD 3, CHAR 4; byte_fallback = 35; unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43; unk_surface = 44);
 * normalizer_spec = 3 (name = 1, precompiled_charsmap = 2, add_dummy_prefix = 3, remove_extra_whitespaces = 4,
 * escape_whitespaces = 5; the last three default to true).
 */
import { MacLmError } from "../errors.js";
import { Charsmap } from "./charsmap.js";

export const enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export interface SentencePieceModel {
  pieces: { piece: string; score: number; type: number }[];
  modelType: "unigram" | "bpe" | "word" | "char";
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkSurface: string;
  normalizerName: string;
  charsmap: Uint8Array | null;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

class Proto {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    readonly where: string,
    readonly start = 0,
    readonly end = b.length,
  ) {
    this.pos = start;
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  fail(msg: string): never {
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${this.where}: not a valid SentencePiece model (${msg} at byte ${this.pos})`,
    );
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const byte = this.b[this.pos++]!;
      result += (byte & 0x7f) * mul;
      if ((byte & 0x80) === 0) return result;
      mul *= 128;
    }
    return this.fail("varint too long");
  }
  /** Signed int32 from a varint (negative int32s are encoded as 10-byte two's complement). */
  int32(): number {
    let v = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const byte = this.b[this.pos++]!;
      v |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if ((byte & 0x80) === 0) return Number(BigInt.asIntN(32, v));
    }
    return this.fail("varint too long");
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.end) this.fail(`length ${n} runs past the end`);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  float(): number {
    if (this.pos + 4 > this.end) this.fail("truncated float");
    const v = new DataView(this.b.buffer, this.b.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail(`unsupported wire type ${wire}`);
    if (this.pos > this.end) this.fail("field runs past the end");
  }
  sub(): Proto {
    const n = this.varint();
    if (this.pos + n > this.end) this.fail(`message length ${n} runs past the end`);
    const p = new Proto(this.b, this.where, this.pos, this.pos + n);
    this.pos += n;
    return p;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

export function parseSentencePieceModel(bytes: Uint8Array, where = "SentencePiece model"): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [],
    modelType: "unigram",
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: " \u2047 ",
    normalizerName: "",
    charsmap: null,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  const p = new Proto(bytes, where);
  while (!p.done) {
    const tag = p.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === 2) {
      const s = p.sub();
      const piece = { piece: "", score: 0, type: PieceType.Normal as number };
      while (!s.done) {
        const t = s.varint();
        const f = Math.floor(t / 8);
        if (f === 1 && (t & 7) === 2) piece.piece = utf8.decode(s.bytes());
        else if (f === 2 && (t & 7) === 5) piece.score = s.float();
        else if (f === 3 && (t & 7) === 0) piece.type = s.varint();
        else s.skip(t & 7);
      }
      m.pieces.push(piece);
    } else if (field === 2 && wire === 2) {
      const s = p.sub();
      while (!s.done) {
        const t = s.varint();
        const f = Math.floor(t / 8);
        const w = t & 7;
        if (w === 0 && f === 3) {
          const mt = s.varint();
          const names = { 1: "unigram", 2: "bpe", 3: "word", 4: "char" } as const;
          m.modelType = names[mt as 1 | 2 | 3 | 4] ?? s.fail(`unknown model_type ${mt}`);
        } else if (w === 0 && f === 35) m.byteFallback = s.varint() !== 0;
        else if (w === 0 && f === 40) m.unkId = s.int32();
        else if (w === 0 && f === 41) m.bosId = s.int32();
        else if (w === 0 && f === 42) m.eosId = s.int32();
        else if (w === 0 && f === 43) m.padId = s.int32();
        else if (w === 2 && f === 44) m.unkSurface = utf8.decode(s.bytes());
        else s.skip(w);
      }
    } else if (field === 3 && wire === 2) {
      const s = p.sub();
      while (!s.done) {
        const t = s.varint();
        const f = Math.floor(t / 8);
        const w = t & 7;
        if (w === 2 && f === 1) m.normalizerName = utf8.decode(s.bytes());
        else if (w === 2 && f === 2) m.charsmap = s.bytes().slice();
        else if (w === 0 && f === 3) m.addDummyPrefix = s.varint() !== 0;
        else if (w === 0 && f === 4) m.removeExtraWhitespaces = s.varint() !== 0;
        else if (w === 0 && f === 5) m.escapeWhitespaces = s.varint() !== 0;
        else s.skip(w);
      }
    } else p.skip(wire);
  }
  if (m.pieces.length === 0) p.fail("no pieces");
  if (m.unkId < 0 || m.unkId >= m.pieces.length) p.fail(`unk_id ${m.unkId} outside the ${m.pieces.length} pieces`);
  if (m.charsmap !== null && m.charsmap.length === 0) m.charsmap = null;
  return m;
}

// ---- SentencePiece's own behaviour (encode normalisation and decode) ---------------------------------------

const SPACE = "\u2581";

/**
 * SentencePiece's normalisation of `text` (Normalizer::Normalize): charsmap (longest match), then, with
 * remove_extra_whitespaces, no leading/trailing spaces and runs of spaces collapsed; spaces escaped as ▁; a ▁
 * prefix (add_dummy_prefix) unless the result is empty. User-defined pieces pass through untouched.
 */
export function sentencePieceNormalizer(m: SentencePieceModel): (text: string) => string {
  const charsmap = m.charsmap ? new Charsmap(m.charsmap) : null;
  const userDefined = m.pieces.filter((p) => p.type === PieceType.UserDefined).map((p) => p.piece);
  const udPattern = userDefined.length
    ? new RegExp(
        userDefined
          .sort((a, b) => b.length - a.length)
          .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join("|"),
        "gu",
      )
    : null;
  return (text: string): string => {
    // Charsmap on the stretches between user-defined pieces.
    let mapped = "";
    if (udPattern) {
      let last = 0;
      for (const match of text.matchAll(udPattern)) {
        const seg = text.slice(last, match.index);
        mapped += charsmap ? charsmap.normalizeSentencePiece(seg) : seg;
        mapped += match[0];
        last = match.index + match[0].length;
      }
      const rest = text.slice(last);
      mapped += charsmap ? charsmap.normalizeSentencePiece(rest) : rest;
    } else mapped = charsmap ? charsmap.normalizeSentencePiece(text) : text;
    if (m.removeExtraWhitespaces) mapped = mapped.replace(/^ +| +$/g, "").replace(/ {2,}/g, " ");
    if (mapped.length === 0) return "";
    if (m.escapeWhitespaces) mapped = mapped.replaceAll(" ", SPACE);
    if (m.addDummyPrefix) mapped = (m.escapeWhitespaces ? SPACE : " ") + mapped;
    return mapped;
  };
}

/** SentencePiece's DecodeIds: control pieces vanish, unknown becomes unk_surface, ▁ becomes a space, byte pieces
 * become bytes, and the dummy-prefix space of the first piece is dropped. */
export function sentencePieceDecoder(m: SentencePieceModel): (ids: readonly number[]) => string {
  return (ids) => {
    const bytes: number[] = [];
    let out = "";
    const flush = () => {
      if (bytes.length) out += new TextDecoder().decode(new Uint8Array(bytes.splice(0)));
    };
    let first = true;
    for (const id of ids) {
      const p = m.pieces[id];
      if (p === undefined)
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `decode: token id ${id} outside the vocabulary of ${m.pieces.length}`,
        );
      if (p.type === PieceType.Control || p.type === PieceType.Unused) continue;
      if (p.type === PieceType.Byte && /^<0x[0-9A-Fa-f]{2}>$/.test(p.piece)) {
        bytes.push(parseInt(p.piece.slice(3, 5), 16));
        first = false;
        continue;
      }
      flush();
      let s = p.type === PieceType.Unknown ? m.unkSurface : p.piece;
      if (first && m.addDummyPrefix && s.startsWith(SPACE)) s = s.slice(1);
      out += s.replaceAll(SPACE, " ");
      first = false;
    }
    flush();
    return out;
  };
}

// ---- tokenizer.json forms --------------------------------------------------------------------------------

/** Pieces that SentencePiece never produces from text get names text cannot contain, so the trie skips them. */
export const HIDDEN_PREFIX = "\uE000\uE001";

/**
 * The tokenizer.json equivalent of a SentencePiece unigram model as SentencePiece itself runs it: the
 * normaliser and decoder are supplied separately (sentencePieceNormalizer/Decoder); the json carries the
 * Unigram vocabulary (control/unknown/unused pieces hidden) and isolates user-defined pieces.
 */
export function sentencePieceTokenizerJson(m: SentencePieceModel, where: string): Record<string, unknown> {
  if (m.modelType !== "unigram")
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${where}: SentencePiece ${m.modelType} models are not supported (only unigram)`,
    );
  if (m.byteFallback) throw new MacLmError("MACLM_BAD_FILE", `${where}: SentencePiece byte fallback is not supported`);
  const userDefined = m.pieces.filter((p) => p.type === PieceType.UserDefined).map((p) => p.piece);
  const hidden = (t: number) =>
    t === PieceType.Control || t === PieceType.Unknown || t === PieceType.Unused || t === PieceType.Byte;
  return {
    version: "1.0",
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: userDefined.length
      ? {
          type: "Split",
          pattern: {
            Regex: userDefined
              .sort((a, b) => b.length - a.length)
              .map(escapeRegex)
              .join("|"),
          },
          behavior: "Isolated",
          invert: false,
        }
      : null,
    post_processor: null,
    decoder: null,
    model: {
      type: "Unigram",
      unk_id: m.unkId,
      byte_fallback: false,
      vocab: m.pieces.map((p) => [hidden(p.type) ? HIDDEN_PREFIX + p.piece : p.piece, p.score]),
    },
  };
}

/**
 * The tokenizer.json that transformers' T5Tokenizer builds from a spiece.model: Precompiled charsmap normaliser,
 * WhitespaceSplit + Metaspace pre-tokenizer, Unigram with `extraIds` sentinels <extra_id_{extraIds-1}> ..
 * <extra_id_0> appended, "$A </s>" post-processing, Metaspace decoder.
 */
export function t5TokenizerJson(m: SentencePieceModel, where: string, extraIds = 100): Record<string, unknown> {
  if (m.modelType !== "unigram")
    throw new MacLmError("MACLM_BAD_FILE", `${where}: a T5 spiece.model must be unigram, got ${m.modelType}`);
  const vocab: [string, number][] = m.pieces.map((p) => [p.piece, p.score]);
  for (let i = extraIds - 1; i >= 0; i--) vocab.push([`<extra_id_${i}>`, 0]);
  const eos = m.pieces[m.eosId]?.piece ?? "</s>";
  const added = (id: number, special: boolean) => ({
    id,
    content: vocab[id]![0],
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special,
  });
  const addedTokens = [];
  for (let id = 0; id < m.pieces.length; id++) {
    const t = m.pieces[id]!.type;
    if (t === PieceType.Control || t === PieceType.Unknown) addedTokens.push(added(id, true));
    else if (t === PieceType.UserDefined) addedTokens.push(added(id, false));
  }
  for (let id = m.pieces.length; id < vocab.length; id++) addedTokens.push(added(id, true));
  return {
    version: "1.0",
    added_tokens: addedTokens,
    normalizer: m.charsmap
      ? { type: "Precompiled", precompiled_charsmap: Buffer.from(m.charsmap).toString("base64") }
      : null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "WhitespaceSplit" },
        { type: "Metaspace", replacement: SPACE, prepend_scheme: "always", split: true },
      ],
    },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: eos, type_id: 0 } }],
      pair: [
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
        { Sequence: { id: "B", type_id: 0 } },
        { SpecialToken: { id: eos, type_id: 0 } },
      ],
      special_tokens: { [eos]: { id: eos, ids: [m.eosId], tokens: [eos] } },
    },
    decoder: { type: "Metaspace", replacement: SPACE, prepend_scheme: "always", split: true },
    model: { type: "Unigram", unk_id: m.unkId, byte_fallback: false, vocab },
  };
}

export const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
