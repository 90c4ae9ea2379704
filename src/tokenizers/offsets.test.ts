import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CharTokenizer } from "../../test/helpers/char-tokenizer.js";
import { type Tokenizer, WordTokenizer, tokenSpans, tokenizerFromHfDir } from "./index.js";

const FIX = join(import.meta.dirname, "..", "..", "test", "fixtures", "tokenizers");

/**
 * Properties every span list must have: starts and ends non-decreasing, no leading/trailing whitespace, every
 * non-whitespace character covered, spans overlapping only at a character split over byte tokens, and a token
 * that decodes to whole characters covering exactly them (whitespace removed).
 */
function checkSpans(tok: Tokenizer, text: string, caseless = false): [number, number][] {
  const ids = tok.encode(text, { addSpecialTokens: false });
  const spans = tokenSpans(tok, text, ids);
  expect(spans).toHaveLength(ids.length);
  const cover = new Array<number>(text.length).fill(0);
  let last: [number, number] = [0, 0];
  spans.forEach(([s, e], i) => {
    expect(s, `token ${i} starts before the previous one`).toBeGreaterThanOrEqual(last[0]);
    expect(e, `token ${i} ends before the previous one`).toBeGreaterThanOrEqual(last[1]);
    expect(e).toBeGreaterThanOrEqual(s);
    const piece = text.slice(s, e);
    if (e > s) expect(piece.trim(), `token ${i}: ${JSON.stringify(piece)}`).toBe(piece);
    const alone = tok.decode([ids[i]!]);
    if (s < last[1]) {
      // Overlap: only the one character that the previous token holds some bytes of.
      expect(last[1] - s, `token ${i} overlaps the previous one by more than a character`).toBeLessThanOrEqual(2);
      expect(tok.decode([ids[i - 1]!]).endsWith("\ufffd") || alone.startsWith("\ufffd")).toBe(true);
    }
    for (let k = s; k < e; k++) cover[k]!++;
    if (!alone.includes("\ufffd")) {
      const norm = (x: string): string => (caseless ? x.toLowerCase() : x).replace(/\s/g, "");
      expect(norm(piece), `token ${i} ${JSON.stringify(alone)}`).toBe(norm(alone));
    }
    last = [s, e];
  });
  for (let k = 0; k < text.length; k++)
    if (!/\s/.test(text[k]!))
      expect(cover[k], `character ${k} ${JSON.stringify(text[k])} not covered`).toBeGreaterThan(0);
  return spans;
}

describe("tokenSpans", () => {
  it("byte-level BPE: words, punctuation, accents, CJK and emoji split into byte tokens", () => {
    const tok = tokenizerFromHfDir(join(FIX, "tiny-bpe-hf"));
    const text = "Frédéric Chopin moved to Paris, in 1831!  東京 🎹 done.\nNext line";
    const spans = checkSpans(tok, text);
    // A character split over several byte tokens is covered by each of them (the emoji is 4 bytes here).
    const ids = tok.encode(text, { addSpecialTokens: false });
    const emojiAt = text.indexOf("🎹");
    const owners = ids.filter((_, i) => spans[i]![0] <= emojiAt && spans[i]![1] > emojiAt);
    expect(owners.length).toBeGreaterThan(1);
    expect(tok.decode(owners).trim()).toBe("🎹");
  });

  it("long documents (incremental decoding windows) give the same spans as short pieces", () => {
    const tok = tokenizerFromHfDir(join(FIX, "tiny-bpe-hf"));
    const text = Array.from({ length: 40 }, (_, i) => `Sentence ${i} about Zürich and Łódź.`).join(" ");
    checkSpans(tok, text);
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(tokenSpans(tok, text, ids, { window: 1 })).toEqual(tokenSpans(tok, text, ids, { window: 1000 }));
  });

  it("SentencePiece unigram", () => {
    checkSpans(tokenizerFromHfDir(join(FIX, "tiny-unigram")), "Hello world, this is a test of 2024 offsets.");
  });

  it("lowercasing word and character tokenizers", () => {
    const words = new WordTokenizer(["bako", "lives", "in", "tuzi", "."]);
    expect(checkSpans(words, "Bako  lives in Tuzi.", true)).toEqual([
      [0, 4],
      [6, 11],
      [12, 14],
      [15, 19],
      [19, 20],
    ]);
    const chars = new CharTokenizer();
    expect(checkSpans(chars, "Ab c", true)).toEqual([
      [0, 1],
      [1, 2],
      [2, 2],
      [3, 4],
    ]);
  });

  it("special tokens get empty spans", () => {
    const words = new WordTokenizer(["bako", "lives"]);
    const text = "bako lives";
    expect(tokenSpans(words, text, [words.eosId, ...words.encode(text), words.eosId])).toEqual([
      [0, 0],
      [0, 4],
      [5, 10],
      [10, 10],
    ]);
  });
});
