/**
 * A tiny MAC of the content-carrying recipe for tests: the llama-tiny fixture as the frozen base LM, read by itself
 * as the amortizer ("lm-queries": CausalLMEncoder + learned-query decoders) and modulated by soft tokens
 * ("soft-prompt"), float64 where gradients are checked.
 */
import { Aggregator } from "../../src/mac/aggregate/aggregator.js";
import { EncoderQueriesAmortizer } from "../../src/mac/amortize/amortizer.js";
import { CausalLMEncoder } from "../../src/mac/amortize/lm-encoder.js";
import { MacModel } from "../../src/mac/model.js";
import { SoftPromptModulation } from "../../src/mac/modulation/soft-prompt.js";
import { loadCausalLM } from "../../src/models/load.js";
import { Rng } from "../../src/tensor/random.js";
import { CharTokenizer } from "../helpers/char-tokenizer.js";

export const LLAMA_TINY = "test/fixtures/models/llama-tiny";

export function lmSoftMac(opts: { seed?: number; slots?: number } = {}): MacModel {
  const seed = opts.seed ?? 1;
  const T = opts.slots ?? 3;
  const base = loadCausalLM(LLAMA_TINY);
  const tok = new CharTokenizer();
  const reader = new CausalLMEncoder(base);
  const amort = (s: number): EncoderQueriesAmortizer =>
    new EncoderQueriesAmortizer(reader, tok, {
      numSlots: T,
      outDim: base.hiddenSize,
      maxLength: 64,
      decoderLayers: 2,
      decoderHeads: 4,
      dropout: 0,
      seed: s,
    });
  const mac = new MacModel({
    base,
    baseTokenizer: tok,
    amortizer: amort(seed),
    questionEncoder: amort(seed + 1),
    aggregator: new Aggregator(base.hiddenSize, { numBlocks: 1, numHeads: 2, headDim: 8, rng: new Rng(seed + 2) }),
    modulation: new SoftPromptModulation(base, base.hiddenSize, { numTokens: T, rng: new Rng(seed + 3), gain: 0.5 }),
  });
  mac.maxQaLength = 40;
  mac.qaTemplate = "q: {question} a:";
  return mac;
}
