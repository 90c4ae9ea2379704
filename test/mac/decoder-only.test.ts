import { describe, expect, it } from "vitest";
import { DecoderOnlyAmortizer } from "../../src/mac/amortize/amortizer.js";
import { encodeTexts } from "../../src/mac/amortize/text-batch.js";
import { loadCausalLM } from "../../src/models/load.js";
import { Tensor, embedding, grad, scope } from "../../src/tensor/index.js";
import { CharTokenizer } from "../helpers/char-tokenizer.js";
import { expectClose } from "../helpers/numeric.js";

describe("appended input embeddings (decoder-only amortizer support)", () => {
  for (const name of ["gpt2-tiny", "llama-tiny"])
    it(`${name}: hidden(ids, appendEmbeds = embeddings of more ids) equals hidden(all ids)`, () => {
      const lm = loadCausalLM(`test/fixtures/models/${name}`);
      scope(() => {
        const ids = Tensor.from([5, 9, 13, 2, 7, 11, 3, 8], [2, 4], "int32");
        const extra = Tensor.from([4, 6, 10, 12], [2, 2], "int32");
        const all = Tensor.from([5, 9, 13, 2, 4, 6, 7, 11, 3, 8, 10, 12], [2, 6], "int32");
        const table = lm.namedParameters().find(([n]) => /(wte|embed_tokens)\.weight$/.test(n))![1];
        const a = lm.hidden({ ids, appendEmbeds: embedding(extra, table) });
        const b = lm.hidden({ ids: all });
        expect(a.shape).toEqual([2, 6, lm.hiddenSize]);
        expectClose(a.data, b.data, { rtol: 1e-5, atol: 1e-6 });
        expect(() => lm.hidden({ ids, appendEmbeds: Tensor.zeros([2, 2, lm.hiddenSize + 1]) })).toThrow(/appendEmbeds/);
      });
      lm.dispose();
    });
});

describe("DecoderOnlyAmortizer", () => {
  it("reads documents with T appended memory tokens; gradients reach the tokens and heads, not the frozen LM", () => {
    const lm = loadCausalLM("test/fixtures/models/gpt2-tiny");
    const tok = new CharTokenizer();
    const amort = new DecoderOnlyAmortizer(lm, tok, { numSlots: 3, outDim: 16, maxLength: 20, seed: 1 });
    scope(() => {
      const out = amort.forwardTexts(["abc def", "a much longer document"]);
      expect(out.shape).toEqual([2, 3, 16]);
      const params = amort.trainableParameters();
      expect(params.map(([n]) => n)).toContain("memory_tokens");
      expect(params.some(([n]) => n.startsWith("lm."))).toBe(false);
      const gs = grad(
        out,
        params.map(([, t]) => t),
        { gradOutput: Tensor.full(out.shape, 1) },
      );
      const mt = gs[params.findIndex(([n]) => n === "memory_tokens")]!;
      expect(mt.toArray().some((x) => x !== 0)).toBe(true);
      // Each text is read alone: its entry does not depend on what it is batched with.
      const alone = amort.forward(encodeTexts(tok, ["abc def"], { maxLength: 20 }));
      expectClose(alone.data, out.data.subarray(0, alone.size), { rtol: 1e-4, atol: 1e-5 });
    });
    amort.dispose();
  });
});
