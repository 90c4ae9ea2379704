import { describe, expect, it } from "vitest";
import { syntheticStream, tinyVocabulary } from "../data/synthetic.js";
import { MacLmError } from "../errors.js";
import { WordTokenizer } from "./index.js";

describe("WordTokenizer", () => {
  const tok = new WordTokenizer(["bako", "lives", "in", "tuzi", ".", "?", "where", "does", "live"]);

  it("numbers pad, eos, unk, then the words in order", () => {
    expect([tok.padId, tok.eosId, tok.unkId]).toEqual([0, 1, 2]);
    expect(tok.vocabSize).toBe(12);
    expect(tok.tokenToId("bako")).toBe(3);
    expect(tok.tokenToId("live")).toBe(11);
    expect(tok.idToToken(4)).toBe("lives");
    expect(tok.idToToken(1)).toBe("<eos>");
    expect(tok.idToToken(12)).toBeUndefined();
    expect(tok.tokenToId("nope")).toBeUndefined();
    expect([...tok.specialIds].sort()).toEqual([0, 1, 2]);
  });

  it("splits at whitespace and punctuation, lowercases, maps unknown words to <unk>", () => {
    expect(tok.encode("bako lives in tuzi .")).toEqual([3, 4, 5, 6, 7]);
    expect(tok.encode("  Where does BAKO live?\n")).toEqual([9, 10, 3, 11, 8]);
    expect(tok.tokenize("bako lives in zorvan.")).toEqual(["bako", "lives", "in", "<unk>", "."]);
    expect(tok.encode("bako lives in zorvan.")).toEqual([3, 4, 5, 2, 7]);
    expect(tok.encode("")).toEqual([]);
    // No special token is added either way.
    expect(tok.encode("bako", { addSpecialTokens: true })).toEqual([3]);
    expect(tok.encode("bako", { addSpecialTokens: false })).toEqual([3]);
  });

  it("decodes with single spaces, dropping special tokens on request", () => {
    expect(tok.decode([3, 4, 5, 6, 7])).toBe("bako lives in tuzi .");
    expect(tok.decode([6, 1, 0, 0])).toBe("tuzi <eos> <pad> <pad>");
    expect(tok.decode([6, 1, 0, 2], { skipSpecialTokens: true })).toBe("tuzi");
    expect(tok.decode([])).toBe("");
    expect(() => tok.decode([12])).toThrow(/token id 12 is outside the vocabulary of 12/);
    expect(() => tok.decode([1.5])).toThrow(MacLmError);
  });

  it("rejects vocabularies it could not round-trip", () => {
    expect(() => new WordTokenizer(["two words"])).toThrow(/"two words" is not a single word/);
    expect(() => new WordTokenizer(["end."])).toThrow(/not a single word/);
    expect(() => new WordTokenizer([""])).toThrow(/not a single word/);
    expect(() => new WordTokenizer(["a", "b", "a"])).toThrow(/"a" appears twice/);
    expect(() => new WordTokenizer(["<eos>"])).toThrow(/appears twice \(or is a special token\)/);
    expect(() => new WordTokenizer(["Bako"])).toThrow(/has capitals/);
    const cased = new WordTokenizer(["Bako", "bako"], { lowercase: false });
    expect(cased.encode("Bako bako BAKO")).toEqual([3, 4, 2]);
  });

  it("round-trips every text of a tiny synthetic stream without <unk>", () => {
    const words = tinyVocabulary();
    const t = new WordTokenizer(words);
    expect(t.vocabSize).toBe(words.length + 3);
    for (const split of ["train", "val", "test"] as const) {
      const s = syntheticStream({
        seed: 3,
        numDocs: 40,
        factsPerDoc: 4,
        questionsPerDoc: 2,
        split,
        vocabulary: "tiny",
      });
      const texts = [...s.documents.map((d) => d.text), ...s.questions.flatMap((q) => [q.question, ...q.answers])];
      for (const text of texts) {
        const ids = t.encode(text);
        expect(ids).not.toContain(t.unkId);
        expect(t.decode(ids)).toBe(text);
      }
    }
  });
});
