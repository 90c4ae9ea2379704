import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MacLmError } from "../errors.js";
import { openGguf } from "../io/gguf.js";
import { cachedFile } from "../../test/helpers/model-cache.js";
import { Charsmap } from "./charsmap.js";
import { parseSentencePieceModel } from "./sentencepiece.js";
import { type Tokenizer, tokenizerFromGguf, tokenizerFromHfDir, tokenizerJsonFromGguf } from "./index.js";

const FIX = join(import.meta.dirname, "..", "..", "test", "fixtures", "tokenizers");
const tmp = mkdtempSync(join(tmpdir(), "maclm-tok-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case {
  text: string;
  ids: number[];
  idsWithSpecial?: number[];
  decoded?: string;
  decodedSkipSpecial?: string;
}
const load = <T>(name: string): T => JSON.parse(readFileSync(join(FIX, name), "utf8")) as T;

/** Checks encode (with and without special tokens) and decode (with and without skipping) against HF. */
function checkCases(tok: Tokenizer, cases: Case[], label: string): void {
  for (const c of cases) {
    const what = `${label}: ${JSON.stringify(c.text.slice(0, 60))}`;
    expect(tok.encode(c.text, { addSpecialTokens: false }), `${what} ids`).toEqual(c.ids);
    expect(tok.encode(c.text), `${what} ids with special tokens`).toEqual(c.idsWithSpecial ?? c.ids);
    if (c.decoded !== undefined) {
      expect(tok.decode(c.ids), `${what} decoded`).toBe(c.decoded);
      expect(
        tok.decode(c.idsWithSpecial ?? c.ids, { skipSpecialTokens: true }),
        `${what} decoded, special skipped`,
      ).toBe(c.decodedSkipSpecial ?? c.decoded);
    }
  }
}

function withMeta(path: string, over: Record<string, unknown>) {
  const g = openGguf(path);
  return { path: g.path, metadata: { ...g.metadata, ...over } as typeof g.metadata };
}

function expectBadFile(f: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, "expected a MacLmError").toBeInstanceOf(MacLmError);
  expect((err as MacLmError).code).toBe("MACLM_BAD_FILE");
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

// ---- byte-level BPE ---------------------------------------------------------------------------------------

describe("byte-level BPE from GGUF metadata (tiny model, vs HF tokenizers)", () => {
  const doc = load<{ file: string; vocabSize: number; variants: Record<string, Case[]> }>("tiny-bpe.json");
  const path = join(FIX, doc.file);

  for (const variant of ["smollm", "smollm+bos", "gpt-2", "llama-bpe", "qwen2"]) {
    it(`pre-tokenizer ${variant}`, () => {
      const [pre, bos] = variant.split("+");
      const tok = tokenizerFromGguf(
        withMeta(path, { "tokenizer.ggml.pre": pre, "tokenizer.ggml.add_bos_token": bos === "bos" }),
      );
      expect(tok.kind).toBe("bpe");
      expect(tok.vocabSize).toBe(doc.vocabSize);
      checkCases(tok, doc.variants[variant]!, variant);
    });
  }

  it("special token ids and metadata", () => {
    const tok = tokenizerFromGguf(openGguf(path));
    expect([tok.bosId, tok.eosId, tok.padId, tok.unkId]).toEqual([1, 2, 2, 0]);
    expect(tok.idToToken(1)).toBe("<|im_start|>");
    expect(tok.tokenToId("<|im_end|>")).toBe(2);
    expect([...tok.specialIds].sort()).toEqual([0, 1, 2]);
    expect(tok.tokenize("Hello world")).toEqual(tok.encode("Hello world").map((id) => tok.idToToken(id)));
    expect(tok.decode([])).toBe("");
  });

  it("vocab.json + merges.txt folder (GPT-2 style)", () => {
    const tok = tokenizerFromHfDir(join(FIX, "tiny-bpe-hf"));
    expect(tok.vocabSize).toBe(doc.vocabSize);
    checkCases(tok, doc.variants["hf-dir"]!, "hf-dir");
  });

  it("refuses what it cannot run, naming the file and the value", () => {
    expectBadFile(
      () => tokenizerFromGguf(withMeta(path, { "tokenizer.ggml.model": "llama" })),
      "tiny-bpe.gguf",
      'tokenizer.ggml.model "llama" is not supported',
    );
    expectBadFile(
      () => tokenizerFromGguf(withMeta(path, { "tokenizer.ggml.pre": "made-up" })),
      'tokenizer.ggml.pre "made-up" is not supported',
    );
    expectBadFile(
      () => tokenizerFromGguf(withMeta(path, { "tokenizer.ggml.model": undefined })),
      "no tokenizer in this file",
    );
    expectBadFile(() => tokenizerFromGguf(withMeta(path, { "tokenizer.ggml.merges": undefined })), "merges is missing");
    expectBadFile(
      () => tokenizerFromGguf(withMeta(path, { "tokenizer.ggml.bos_token_id": 10_000 })),
      "bos_token_id = 10000 is outside",
    );
    expectBadFile(
      () => tokenizerFromGguf(withMeta(path, { "tokenizer.ggml.token_type": new Int32Array(3) })),
      "token_type should be",
    );
    const tok = tokenizerFromGguf(openGguf(path));
    expect(() => tok.decode([doc.vocabSize])).toThrow(/token id 600 is outside the vocabulary of 600/);
    expect(() => tok.decode([-1])).toThrow(/outside the vocabulary/);
  });

  it("the smollm pre-tokenizer splits every Unicode number (\\p{N}) alone, as HF tokenizers and llama.cpp do", () => {
    const { json } = tokenizerJsonFromGguf(openGguf(path));
    expect(JSON.stringify(json.pre_tokenizer)).toContain('"Digits"');
    // "²³" (U+00B2 U+00B3, category No) is "Â²Â³" in the byte alphabet. Give the vocabulary the merges that would
    // join it into one token: only a pre-tokenizer that keeps the two numbers apart prevents that.
    const g = openGguf(path);
    const tokens = [...g.strings("tokenizer.ggml.tokens")];
    const added = ["Â²", "Â³", "Â²Â³", "12"];
    const merges = [...g.strings("tokenizer.ggml.merges"), "Â ²", "Â ³", "Â² Â³", "1 2"];
    const types = Int32Array.from([...(g.metadata["tokenizer.ggml.token_type"] as Int32Array), ...added.map(() => 1)]);
    const meta = (pre: string) => ({
      "tokenizer.ggml.tokens": [...tokens, ...added],
      "tokenizer.ggml.merges": merges,
      "tokenizer.ggml.token_type": types,
      "tokenizer.ggml.pre": pre,
    });
    const smol = tokenizerFromGguf(withMeta(path, meta("smollm")));
    expect(smol.tokenize("²³")).toEqual(["Â²", "Â³"]);
    expect(smol.tokenize("12")).toEqual(["1", "2"]);
    const gpt2 = tokenizerFromGguf(withMeta(path, meta("gpt-2")));
    expect(gpt2.tokenize("²³")).toEqual(["Â²Â³"]);
    expect(gpt2.tokenize("12")).toEqual(["12"]);
    expect(smol.decode(smol.encode("²³ 12"))).toBe("²³ 12");
  });
});

// ---- WordPiece --------------------------------------------------------------------------------------------

describe("WordPiece (BERT uncased, vs transformers)", () => {
  const doc = load<{ dir: string; vocabSize: number; cases: Case[] }>("wordpiece-mini.json");

  it("vocab.txt folder: lowercasing, accents, punctuation, CJK, [UNK], long words, special tokens", () => {
    const tok = tokenizerFromHfDir(join(FIX, doc.dir));
    expect(tok.kind).toBe("wordpiece");
    expect(tok.vocabSize).toBe(doc.vocabSize);
    expect(tok.clsId).toBe(tok.tokenToId("[CLS]"));
    expect(tok.sepId).toBe(tok.tokenToId("[SEP]"));
    expect(tok.maskId).toBe(tok.tokenToId("[MASK]"));
    expect(tok.padId).toBe(0);
    checkCases(tok, doc.cases, "wordpiece-mini");
  });
});

// ---- SentencePiece unigram --------------------------------------------------------------------------------

interface SpmCase {
  text: string;
  ids: number[];
  pieces: string[];
  decoded: string;
  t5Ids?: number[];
  t5Decoded?: string;
  t5DecodedWithSpecial?: string;
}

describe("SentencePiece unigram (tiny model with a custom charsmap)", () => {
  const doc = load<{ dir: string; vocabSize: number; t5VocabSize: number; eosId: number; cases: SpmCase[] }>(
    "tiny-unigram.json",
  );
  const model = join(FIX, doc.dir, "spiece.model");

  it("parses the model proto", () => {
    const m = parseSentencePieceModel(new Uint8Array(readFileSync(model)), model);
    expect(m.pieces.length).toBe(doc.vocabSize);
    expect(m.modelType).toBe("unigram");
    expect([m.padId, m.eosId, m.unkId, m.bosId]).toEqual([0, 1, 2, -1]);
    expect(m.charsmap).not.toBeNull();
    expect(m.pieces[3]!.piece).toBe("<sep>");
    expect(new Charsmap(m.charsmap!).normalizeSentencePiece("ＦＵＬＬ ｗｉｄｔｈ … ﬁ")).toBe("FULL width ... fi");
  });

  it("as SentencePiece runs it: ids, pieces and decoding equal sentencepiece's", () => {
    const dir = join(tmp, "plain-spm");
    freshDir(dir);
    copyFileSync(model, join(dir, "spiece.model"));
    const tok = tokenizerFromHfDir(dir);
    expect(tok.kind).toBe("unigram");
    expect(tok.vocabSize).toBe(doc.vocabSize);
    expect([tok.padId, tok.eosId, tok.unkId, tok.bosId]).toEqual([0, 1, 2, null]);
    for (const c of doc.cases) {
      const what = JSON.stringify(c.text.slice(0, 60));
      expect(tok.encode(c.text), `${what} ids`).toEqual(c.ids);
      expect(tok.tokenize(c.text), `${what} pieces`).toEqual(c.pieces);
      expect(tok.decode(c.ids), `${what} decoded`).toBe(c.decoded);
    }
  });

  it("as transformers' T5Tokenizer builds it (tokenizer_config says T5): </s> appended, sentinels added", () => {
    const tok = tokenizerFromHfDir(join(FIX, doc.dir));
    expect(tok.vocabSize).toBe(doc.t5VocabSize);
    expect(tok.eosId).toBe(doc.eosId);
    expect(tok.tokenToId("<extra_id_0>")).toBe(doc.t5VocabSize - 1);
    for (const c of doc.cases) {
      const what = JSON.stringify(c.text.slice(0, 60));
      expect(tok.encode(c.text), `${what} ids`).toEqual(c.t5Ids);
      expect(tok.decode(c.t5Ids!, { skipSpecialTokens: true }), `${what} decoded`).toBe(c.t5Decoded);
      expect(tok.decode(c.t5Ids!), `${what} decoded with special tokens`).toBe(c.t5DecodedWithSpecial);
    }
  });

  it("rejects broken models and empty folders", () => {
    const bytes = readFileSync(model);
    expectBadFile(
      () => parseSentencePieceModel(new Uint8Array(bytes.subarray(0, 100)), "cut.model"),
      "cut.model",
      "not a valid SentencePiece model",
    );
    expectBadFile(() => parseSentencePieceModel(new Uint8Array(0), "empty.model"), "no pieces");
    const empty = join(tmp, "empty");
    freshDir(empty);
    expectBadFile(() => tokenizerFromHfDir(empty), "no tokenizer found");
    writeFileSync(join(empty, "tokenizer.json"), "{ not json");
    expectBadFile(() => tokenizerFromHfDir(empty), "tokenizer.json: cannot read");
  });
});

function freshDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

// ---- real models from the cache ---------------------------------------------------------------------------

describe("real tokenizers (model cache)", () => {
  const smolDoc = load<{ file: string; vocabSize: number; cases: (Case & { transformersGgufIds?: number[] })[] }>(
    "smollm2.json",
  );
  const smol = cachedFile(smolDoc.file);
  it.skipIf(!smol.present)(`SmolLM2-135M-Instruct from its GGUF equals HF tokenizers${smol.skipNote}`, () => {
    const tok = tokenizerFromGguf(openGguf(smol.path));
    expect(tok.vocabSize).toBe(smolDoc.vocabSize);
    expect([tok.bosId, tok.eosId, tok.padId, tok.unkId]).toEqual([1, 2, 2, 0]);
    expect(tok.idToToken(1)).toBe("<|im_start|>");
    checkCases(tok, smolDoc.cases, "smollm2");
  });

  const minilmDoc = load<{ dir: string; vocabSize: number; cases: Case[] }>("minilm.json");
  const minilm = cachedFile(minilmDoc.dir, "tokenizer.json");
  it.skipIf(!minilm.present)(
    `all-MiniLM-L6-v2: tokenizer.json and vocab.txt both equal transformers${minilm.skipNote}`,
    () => {
      const dir = join(minilm.path, "..");
      const fromJson = tokenizerFromHfDir(dir);
      expect(fromJson.vocabSize).toBe(minilmDoc.vocabSize);
      checkCases(fromJson, minilmDoc.cases, "minilm tokenizer.json");
      const vocabOnly = join(tmp, "minilm-vocab");
      freshDir(vocabOnly);
      copyFileSync(join(dir, "vocab.txt"), join(vocabOnly, "vocab.txt"));
      copyFileSync(join(dir, "tokenizer_config.json"), join(vocabOnly, "tokenizer_config.json"));
      const fromVocab = tokenizerFromHfDir(vocabOnly);
      expect(fromVocab.vocabSize).toBe(minilmDoc.vocabSize);
      checkCases(fromVocab, minilmDoc.cases, "minilm vocab.txt");
    },
  );

  const spmDoc = load<{ file: string; vocabSize: number; cases: SpmCase[] }>("spm-test-model.json");
  const spm = cachedFile(...spmDoc.file.split("/"));
  it.skipIf(!spm.present)(
    `sentencepiece's test_model.model (nmt_nfkc charsmap) equals sentencepiece${spm.skipNote}`,
    () => {
      const dir = join(tmp, "spm-test");
      freshDir(dir);
      copyFileSync(spm.path, join(dir, "spiece.model"));
      const tok = tokenizerFromHfDir(dir);
      expect(tok.vocabSize).toBe(spmDoc.vocabSize);
      for (const c of spmDoc.cases) {
        const what = JSON.stringify(c.text.slice(0, 60));
        expect(tok.encode(c.text), `${what} ids`).toEqual(c.ids);
        expect(tok.decode(c.ids), `${what} decoded`).toBe(c.decoded);
      }
    },
  );
});
