import { describe, expect, it } from "vitest";
import { loadCausalLM } from "../../models/load.js";
import { Tensor, noGrad, scope } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import { expectClose } from "../../../test/helpers/numeric.js";
import { LLAMA_TINY } from "../../../test/mac/lm-mac.js";
import { SoftPromptModulation } from "./soft-prompt.js";

const ids = (xs: number[]): Tensor => Tensor.from(Int32Array.from(xs), [1, xs.length], "int32");

describe("SoftPromptModulation", () => {
  it("with e = the embeddings of tokens x, the LM reads its prefix exactly as x in its context", () => {
    const lm = loadCausalLM(LLAMA_TINY);
    const x = [5, 17, 9, 33];
    const q = [12, 40, 7, 3, 21];
    const C = lm.hiddenSize;
    const table = lm.namedParameters().find(([n]) => n.endsWith("embed_tokens.weight"))![1];
    const base = Tensor.zeros([x.length, C]);
    x.forEach((t, i) => base.data.set(table.data.subarray(t * C, (t + 1) * C), i * C));
    // gain 0: the latent contributes nothing, e = base exactly.
    const soft = new SoftPromptModulation(lm, 8, { numTokens: x.length, base, gain: 0, rng: new Rng(1) });
    noGrad(() =>
      scope(() => {
        const z = randn([1, x.length, 8], { rng: new Rng(2) });
        const withPrefix = lm.forward({ ids: ids(q), modulation: soft.forward(z) }); // (1, |q|, V)
        const inContext = lm.forward({ ids: ids([...x, ...q]) }); // (1, |x| + |q|, V)
        const V = lm.vocabSize;
        expectClose(Array.from(withPrefix.data), Array.from(inContext.data.subarray(x.length * V)), { atol: 1e-4 });
      }),
    );
    lm.dispose();
  });

  it("refuses a base of the wrong shape", () => {
    const lm = loadCausalLM(LLAMA_TINY);
    expect(() => new SoftPromptModulation(lm, 8, { numTokens: 3, base: Tensor.zeros([2, lm.hiddenSize]) })).toThrow(
      /base \[2, 32\] must be \(3, 32\)/,
    );
    lm.dispose();
  });
});
