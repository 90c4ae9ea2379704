/**
 * Tokenizers from a Hugging Face model folder, trying in order:
 *   tokenizer.json                 any HF tokenizer (BPE, WordPiece, Unigram), run as it says;
 *   vocab.json + merges.txt        GPT-2 style byte-level BPE;
 *   vocab.txt                      BERT WordPiece (do_lower_case etc. from tokenizer_config.json);
 *   spiece.model / tokenizer.model SentencePiece unigram: as transformers' T5Tokenizer builds it when the folder
 *                                  is a T5 one (tokenizer_config.json tokenizer_class T5*, or config.json
 *                                  model_type t5/mt5/umt5/longt5), otherwise as SentencePiece itself runs it.
 * Special tokens come from tokenizer_config.json / special_tokens_map.json, with each format's usual defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import {
  parseSentencePieceModel,
  PieceType,
  sentencePieceDecoder,
  sentencePieceNormalizer,
  sentencePieceTokenizerJson,
  t5TokenizerJson,
} from "./sentencepiece.js";
import { HfTokenizer, type SpecialTokenNames, type Tokenizer, type TokenizerKind } from "./tokenizer.js";
import { bertTokenizerJson, parseVocabTxt } from "./wordpiece.js";

type Json = Record<string, unknown>;

function readJson(path: string): Json | null {
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not a JSON object");
    return v as Json;
  } catch (e) {
    throw new MacLmError("MACLM_BAD_FILE", `${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
}

/** A special-token entry of tokenizer_config.json: a string or an AddedToken-like {content}. */
function tokenName(v: unknown): string | null | undefined {
  if (v === undefined) return undefined;
  if (v === null) return null;
  if (typeof v === "string") return v;
  if (typeof v === "object" && typeof (v as { content?: unknown }).content === "string")
    return (v as { content: string }).content;
  return undefined;
}

function specialNames(cfg: Json, map: Json, defaults: SpecialTokenNames): SpecialTokenNames {
  const pick = (k: string, d: string | null | undefined) =>
    tokenName(cfg[`${k}_token`]) ?? tokenName(map[`${k}_token`]) ?? d ?? null;
  return {
    bos: pick("bos", defaults.bos),
    eos: pick("eos", defaults.eos),
    pad: pick("pad", defaults.pad),
    unk: pick("unk", defaults.unk),
    cls: pick("cls", defaults.cls),
    sep: pick("sep", defaults.sep),
    mask: pick("mask", defaults.mask),
  };
}

/** Added tokens that transformers saved in tokenizer_config.json (added_tokens_decoder). */
function addedTokensFromConfig(cfg: Json): Json[] {
  const dec = cfg.added_tokens_decoder;
  if (dec === null || typeof dec !== "object") return [];
  return Object.entries(dec as Record<string, Json>).map(([id, t]) => ({
    id: Number(id),
    content: String(t.content),
    single_word: Boolean(t.single_word),
    lstrip: Boolean(t.lstrip),
    rstrip: Boolean(t.rstrip),
    normalized: t.normalized === undefined ? true : Boolean(t.normalized),
    special: Boolean(t.special),
  }));
}

const BERT_DEFAULTS: SpecialTokenNames = { unk: "[UNK]", cls: "[CLS]", sep: "[SEP]", pad: "[PAD]", mask: "[MASK]" };

export function tokenizerFromHfDir(dir: string): Tokenizer {
  const p = (f: string) => join(dir, f);
  const cfg = readJson(p("tokenizer_config.json")) ?? {};
  const map = readJson(p("special_tokens_map.json")) ?? {};
  const modelCfg = readJson(p("config.json")) ?? {};
  const cleanUp = { clean_up_tokenization_spaces: (cfg.clean_up_tokenization_spaces as boolean | undefined) ?? false };

  if (existsSync(p("tokenizer.json"))) {
    const json = readJson(p("tokenizer.json"))!;
    const model = (json.model ?? {}) as Json;
    const kinds: Record<string, TokenizerKind> = { BPE: "bpe", WordPiece: "wordpiece", Unigram: "unigram" };
    const kind = kinds[String(model.type)];
    if (kind === undefined)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `${p("tokenizer.json")}: tokenizer model ${JSON.stringify(model.type)} is not supported (BPE, WordPiece, Unigram)`,
      );
    const defaults: SpecialTokenNames =
      kind === "wordpiece" ? BERT_DEFAULTS : kind === "unigram" ? { eos: "</s>", pad: "<pad>", unk: "<unk>" } : {};
    return new HfTokenizer(
      json,
      { ...cfg, ...cleanUp },
      { kind, special: specialNames(cfg, map, defaults), source: p("tokenizer.json") },
    );
  }

  if (existsSync(p("vocab.json")) && existsSync(p("merges.txt"))) {
    const vocab = readJson(p("vocab.json"))!;
    const merges = readFileSync(p("merges.txt"), "utf8")
      .split("\n")
      .filter((l) => l.length > 0 && !l.startsWith("#version"))
      .map((l, i) => {
        const parts = l.split(" ");
        if (parts.length !== 2)
          throw new MacLmError(
            "MACLM_BAD_FILE",
            `${p("merges.txt")}: line ${i + 2} is not two tokens: ${JSON.stringify(l)}`,
          );
        return parts;
      });
    const eot = "<|endoftext|>" in vocab ? "<|endoftext|>" : null;
    const names = specialNames(cfg, map, { bos: eot, eos: eot, unk: eot });
    // Like transformers: the special tokens (GPT-2's <|endoftext|>) are matched whole in text.
    const added = addedTokensFromConfig(cfg);
    for (const name of [names.bos, names.eos, names.unk, names.pad])
      if (name && typeof vocab[name] === "number" && !added.some((t) => t.content === name))
        added.push({
          id: vocab[name],
          content: name,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        });
    const json = {
      version: "1.0",
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: {
        type: "ByteLevel",
        add_prefix_space: Boolean(cfg.add_prefix_space ?? false),
        trim_offsets: true,
        use_regex: true,
      },
      post_processor: null,
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    };
    return new HfTokenizer(
      json,
      { ...cfg, ...cleanUp },
      {
        kind: "bpe",
        special: names,
        source: p("vocab.json"),
      },
    );
  }

  if (existsSync(p("vocab.txt"))) {
    const tokens = parseVocabTxt(readFileSync(p("vocab.txt"), "utf8"));
    const names = specialNames(cfg, map, BERT_DEFAULTS);
    const json = bertTokenizerJson(
      tokens,
      {
        doLowerCase: (cfg.do_lower_case as boolean | undefined) ?? true,
        stripAccents: (cfg.strip_accents as boolean | null | undefined) ?? null,
        tokenizeChineseChars: (cfg.tokenize_chinese_chars as boolean | undefined) ?? true,
        unkToken: names.unk ?? "[UNK]",
        clsToken: names.cls ?? "[CLS]",
        sepToken: names.sep ?? "[SEP]",
        padToken: names.pad ?? "[PAD]",
        maskToken: names.mask ?? "[MASK]",
      },
      p("vocab.txt"),
    );
    // The WordPiece decoder already cleans up spaces before punctuation, as transformers does.
    return new HfTokenizer(json, { ...cfg, ...cleanUp }, { kind: "wordpiece", special: names, source: p("vocab.txt") });
  }

  const spm = ["spiece.model", "tokenizer.model"].map(p).find((f) => existsSync(f));
  if (spm !== undefined) {
    const m = parseSentencePieceModel(new Uint8Array(readFileSync(spm)), spm);
    const t5 =
      /^T5/.test(String(cfg.tokenizer_class ?? "")) ||
      ["t5", "mt5", "umt5", "longt5"].includes(String(modelCfg.model_type ?? ""));
    const pieceName = (id: number) => (id >= 0 && id < m.pieces.length ? m.pieces[id]!.piece : null);
    if (t5) {
      const extraIds = typeof cfg.extra_ids === "number" ? cfg.extra_ids : 100;
      const json = t5TokenizerJson(m, spm, extraIds);
      return new HfTokenizer(
        json,
        { ...cfg, ...cleanUp },
        {
          kind: "unigram",
          special: specialNames(cfg, map, {
            eos: pieceName(m.eosId),
            pad: pieceName(m.padId),
            unk: pieceName(m.unkId),
          }),
          source: spm,
        },
      );
    }
    const json = sentencePieceTokenizerJson(m, spm);
    const hiddenIds: number[] = [];
    const displayNames = new Map<number, string>();
    m.pieces.forEach((piece, id) => {
      const t = piece.type;
      if (t === PieceType.Control || t === PieceType.Unknown || t === PieceType.Unused || t === PieceType.Byte) {
        displayNames.set(id, piece.piece);
        if (t !== PieceType.Byte) hiddenIds.push(id);
      }
    });
    const idOrNull = (id: number) => (id >= 0 && id < m.pieces.length ? id : null);
    return new HfTokenizer(
      json,
      {},
      {
        kind: "unigram",
        specialIds: { bos: idOrNull(m.bosId), eos: idOrNull(m.eosId), pad: idOrNull(m.padId), unk: m.unkId },
        normalizer: sentencePieceNormalizer(m),
        decode: sentencePieceDecoder(m),
        extraSpecialIds: hiddenIds,
        displayNames,
        source: spm,
      },
    );
  }

  throw new MacLmError(
    "MACLM_BAD_FILE",
    `${dir}: no tokenizer found (looked for tokenizer.json, vocab.json + merges.txt, vocab.txt, spiece.model, tokenizer.model)`,
  );
}
