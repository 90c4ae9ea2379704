import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openGguf } from "../../io/gguf.js";
import { tokenizerFromGguf, tokenizerFromHfDir } from "../../tokenizers/index.js";
import { CharTokenizer } from "../../../test/helpers/char-tokenizer.js";
import { cachedFile } from "../../../test/helpers/model-cache.js";
import { salientSpans, salientTokenWeights } from "./salient.js";

const FIX = join(import.meta.dirname, "..", "..", "..", "test", "fixtures", "tokenizers");
const SENTENCE =
  "Frédéric Chopin was born in Żelazowa Wola in 1810 and moved to Paris on March 5, 1831 with 3 friends.";
const SMOL = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");

describe("salientSpans", () => {
  it("finds names and dates (not plain numbers) at their character offsets", () => {
    const spans = salientSpans(SENTENCE);
    expect(spans.map((s) => [s.category, s.text])).toEqual([
      ["names", "Frédéric Chopin"],
      ["names", "Żelazowa Wola"],
      ["dates", "1810"],
      ["names", "Paris"],
      ["dates", "March 5"],
      ["dates", "1831"],
    ]);
    for (const s of spans) expect(SENTENCE.slice(s.start, s.end)).toBe(s.text);
  });

  it("numbers only when asked; categories can be chosen", () => {
    expect(salientSpans(SENTENCE, { categories: ["numbers"] }).map((s) => s.text)).toEqual(["3"]);
    expect(salientSpans(SENTENCE, { categories: ["dates"] }).map((s) => s.text)).toEqual(["1810", "March 5", "1831"]);
    expect(salientSpans("In the 1830s, prices rose by 45%.", { categories: ["dates"] }).map((s) => s.text)).toEqual([
      "1830s",
    ]);
  });

  it("nothing salient in a sentence without names, dates or numbers", () => {
    expect(salientSpans("the cat sat on the mat and looked around.")).toEqual([]);
  });
});

describe("salientTokenWeights", () => {
  it("character tokens: weight 1 exactly on the characters of the spans", () => {
    const tok = new CharTokenizer();
    const text = "Chopin moved to Paris in 1831.";
    const { weights } = salientTokenWeights(tok, text, tok.encode(text));
    const marked = [...text].map((c, i) => (weights[i] ? c : "_")).join("");
    expect(marked).toBe("Chopin__________Paris____1831_");
  });

  const entityTokens = (
    tok: Parameters<typeof salientTokenWeights>[0] & { encode(t: string, o?: object): number[] },
  ): string => {
    const ids = tok.encode(SENTENCE, { addSpecialTokens: false });
    const { weights } = salientTokenWeights(tok, SENTENCE, ids);
    return tok.decode(ids.filter((_, i) => weights[i] === 1)).replace(/\s/g, "");
  };

  it("byte-level BPE: exactly the tokens of the entities", () => {
    expect(entityTokens(tokenizerFromHfDir(join(FIX, "tiny-bpe-hf")))).toBe(
      "FrédéricChopinŻelazowaWola1810ParisMarch51831",
    );
  });

  it.skipIf(!SMOL.present)(`SmolLM2's tokenizer: exactly the tokens of the entities${SMOL.skipNote}`, () => {
    expect(entityTokens(tokenizerFromGguf(openGguf(SMOL.path)))).toBe("FrédéricChopinŻelazowaWola1810ParisMarch51831");
  });
});
