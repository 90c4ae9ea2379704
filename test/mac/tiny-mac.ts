/**
 * A tiny MAC for tests: the gpt2-tiny parity fixture as the frozen base LM (vocab 96, n_positions 32), character
 * tokenizers, and tiny randomly initialised BERT encoders in the amortizer and the question encoder.
 */
import { Aggregator } from "../../src/mac/aggregate/aggregator.js";
import { EncoderQueriesAmortizer } from "../../src/mac/amortize/amortizer.js";
import { MacModel } from "../../src/mac/model.js";
import { createModulation, type ModulationKind } from "../../src/mac/modulation/index.js";
import { BERT_DEFAULTS } from "../../src/models/bert/config.js";
import { BertModel } from "../../src/models/bert/model.js";
import { loadCausalLM } from "../../src/models/load.js";
import { Rng } from "../../src/tensor/random.js";
import { CharTokenizer } from "../helpers/char-tokenizer.js";

export const GPT2_TINY = "test/fixtures/models/gpt2-tiny";

export function tinyMac(
  opts: { seed?: number; modulation?: ModulationKind; slots?: number; trainEncoder?: boolean } = {},
): MacModel {
  const seed = opts.seed ?? 1;
  const base = loadCausalLM(GPT2_TINY);
  const tok = new CharTokenizer();
  const encConfig = {
    ...BERT_DEFAULTS,
    vocab_size: tok.vocabSize,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 64,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
  };
  const amort = (s: number): EncoderQueriesAmortizer =>
    new EncoderQueriesAmortizer(new BertModel(encConfig, { seed: s, pooler: false }), tok, {
      numSlots: opts.slots ?? 3,
      outDim: base.hiddenSize,
      maxLength: 64,
      decoderLayers: 1,
      decoderHeads: 2,
      dropout: 0,
      trainEncoder: opts.trainEncoder ?? true,
      seed: s,
    });
  const d = base.hiddenSize;
  const mac = new MacModel({
    base,
    baseTokenizer: tok,
    amortizer: amort(seed),
    questionEncoder: amort(seed + 1),
    aggregator: new Aggregator(d, { numBlocks: 1, numHeads: 2, headDim: 8, rng: new Rng(seed + 2) }),
    modulation: createModulation(base, d, {
      kind: opts.modulation ?? "prefix",
      numPrefixTokens: 2,
      hidden: 16,
      rng: new Rng(seed + 3),
    }),
  });
  mac.maxQaLength = 28;
  return mac;
}

export const TINY_EXAMPLES = [
  { docId: "d0", document: "zorva lives in mirefall.", question: "where does zorva live?", answers: ["mirefall"] },
  { docId: "d1", document: "quent is a baker.", question: "what is quent?", answers: ["a baker"] },
  { docId: "d2", document: "lumo was born in 1843.", question: "when was lumo born?", answers: ["1843"] },
  { docId: "d3", document: "brisk owns a red boat.", question: "what does brisk own?", answers: ["a red boat"] },
  { docId: "d4", document: "tavi sings in oslar.", question: "where does tavi sing?", answers: ["oslar"] },
  { docId: "d5", document: "nemo founded kelt co.", question: "what did nemo found?", answers: ["kelt co"] },
];
