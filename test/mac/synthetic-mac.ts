/**
 * MAC on syntheticStream's "tiny" language, end to end (test/mac/e2e-synthetic.test.ts): the pretrained tiny GPT-2
 * fixture gpt2-synthetic (written by dev/synthetic/pretrain-base.ts) as the frozen base LM, the word tokenizer
 * everywhere, small BERT encoders trained from scratch in the amortizer, a cross-attention aggregator and a
 * P-tuning v2 prefix.
 *
 * What it takes for such a MAC to learn, from scratch, on two CPU cores in about a minute (each point was measured:
 * without it, exact match on the held-out stream stays at or near 0):
 *  - The encoders' word embeddings are the base LM's (copied, frozen). Names are atomic words, and MAC is tested
 *    on names it never saw in training (the test split's): embeddings learnt only from the training stream would
 *    stay random for them, from which no network can tell which word of the base LM's vocabulary to produce.
 *    Sharing the base LM's table stands in for a pretrained encoder that knows the vocabulary (MAC's T5 does).
 *  - The question encoder is FROZEN at its random initialisation: a fixed random feature map of the question.
 *    Trained (lr 1e-3), it collapses within a few hundred steps to an output that does not depend on the question
 *    (spread across questions 0.05 against a norm of 11): its output enters the prefix through the aggregator's
 *    residual, where any question-dependent variation is noise to the answer until retrieval works, so the
 *    gradient removes it before retrieval can be learnt.
 *  - Symmetric start: the question encoder starts as an exact copy of the amortizer (same seed), the learned query
 *    tokens of both start at zero (so their outputs are pure content, not a constant plus a little content), and
 *    each aggregator block's to_q starts equal to its to_k. A question and its document then share features (the
 *    subject's name) that the aggregator's scores reward from the first step.
 *  - A curriculum over the memory size K (trainSchedule below): K = 1 first (only the question's own document: the
 *    network learns to carry the answer's name into the prefix), then K = 2, 4, … (it learns to find the
 *    document). From scratch with K = 8 the loss does not move in 3000 steps: neither part can be learnt while
 *    the other is missing.
 */
import { Aggregator } from "../../src/mac/aggregate/aggregator.js";
import type { MemorySource } from "../../src/mac/aggregate/hierarchical.js";
import { EncoderQueriesAmortizer } from "../../src/mac/amortize/amortizer.js";
import { type AggregationMode, MacModel } from "../../src/mac/model.js";
import { createModulation, type ModulationKind } from "../../src/mac/modulation/index.js";
import type { TrainExample } from "../../src/mac/train/trainer.js";
import { syntheticStream, type SyntheticSplit } from "../../src/data/synthetic.js";
import { tinyVocabulary } from "../../src/data/synthetic.js";
import { BERT_DEFAULTS } from "../../src/models/bert/config.js";
import { BertModel } from "../../src/models/bert/model.js";
import type { GPT2LMHeadModel } from "../../src/models/gpt2/model.js";
import { loadCausalLM } from "../../src/models/load.js";
import type { Modulation } from "../../src/models/types.js";
import type { Tensor } from "../../src/tensor/index.js";
import { Rng } from "../../src/tensor/random.js";
import { WordTokenizer } from "../../src/tokenizers/word.js";

export const GPT2_SYNTHETIC = "test/fixtures/models/gpt2-synthetic";

/**
 * MacModel whose training loss can aggregate hierarchically (groups of trainGroupSize) on every other call, and
 * over the whole memory otherwise: the reference's hierarchy_aware option (mac-reference 1.5, off there).
 */
export class HierarchyAwareMac extends MacModel {
  trainGroupSize = 0;
  #calls = 0;

  override modulate(q0: Tensor, memory: Tensor | MemorySource, mode: AggregationMode = {}): Modulation {
    if (mode.groupSize === undefined && this.training && this.trainGroupSize > 0 && this.#calls++ % 2 === 1)
      return super.modulate(q0, memory, { groupSize: this.trainGroupSize });
    return super.modulate(q0, memory, mode);
  }
}

export interface SyntheticMacOptions {
  seed?: number;
  /** Latent tokens per memory entry, T (default 4). */
  slots?: number;
  modulation?: ModulationKind;
  /** Base LM folder (default: the committed fixture). */
  basePath?: string;
}

/** The MAC of the end-to-end test, set up as the module comment says. */
export function syntheticMac(opts: SyntheticMacOptions = {}): HierarchyAwareMac {
  const seed = opts.seed ?? 1;
  const base = loadCausalLM(opts.basePath ?? GPT2_SYNTHETIC, { freeze: true });
  const tok = new WordTokenizer(tinyVocabulary());
  const d = base.hiddenSize;
  const wte = (base as GPT2LMHeadModel).transformer.wte.weight;
  const encConfig = {
    ...BERT_DEFAULTS,
    vocab_size: tok.vocabSize,
    hidden_size: d,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    intermediate_size: 2 * d,
    max_position_embeddings: 64,
    hidden_dropout_prob: 0,
    attention_probs_dropout_prob: 0,
    layer_norm_eps: 1e-5,
    pad_token_id: tok.padId,
  };
  const amortizer = (): EncoderQueriesAmortizer => {
    const bert = new BertModel(encConfig, { seed, pooler: false });
    const w = bert.embeddings.word_embeddings.weight;
    w.data.set(wte.data);
    w.requiresGrad = false;
    const a = new EncoderQueriesAmortizer(bert, tok, {
      numSlots: opts.slots ?? 4,
      outDim: d,
      maxLength: 48,
      decoderLayers: 1,
      decoderHeads: 4,
      dropout: 0,
      trainEncoder: true,
      seed,
    });
    a.queries.data.fill(0);
    return a;
  };
  const aggregator = new Aggregator(d, { numBlocks: 2, numHeads: 4, headDim: 16, rng: new Rng(seed + 2) });
  for (const b of aggregator.cross_attention_list) b.attn.to_q.weight.data.set(b.attn.to_k.weight.data);
  const mac = new HierarchyAwareMac({
    base,
    baseTokenizer: tok,
    amortizer: amortizer(),
    questionEncoder: amortizer(),
    aggregator,
    modulation: createModulation(base, d, {
      kind: opts.modulation ?? "prefix",
      numPrefixTokens: 2,
      hidden: 2 * d,
      rng: new Rng(seed + 3),
    }),
  });
  mac.question_encoder.freeze();
  mac.maxQaLength = 16;
  return mac;
}

/** One stage of the training curriculum: MacTrainer options that change between stages. */
export interface TrainStage {
  /** Memory size K (documents per micro-batch). */
  batchSize: number;
  steps: number;
  keepRatio?: number;
  /** Hierarchy-aware training: aggregate in groups of this size on every other step (0: never). */
  trainGroupSize?: number;
}

/** The curriculum over K (see the module comment); about a minute on two cores. */
export const TRAIN_SCHEDULE: readonly TrainStage[] = [
  { batchSize: 1, steps: 1000 },
  { batchSize: 2, steps: 800 },
  { batchSize: 4, steps: 800 },
  { batchSize: 8, steps: 1000 },
  { batchSize: 16, steps: 1000, keepRatio: 0.5 },
  { batchSize: 32, steps: 1000, keepRatio: 0.25 },
];

export interface SyntheticSet {
  examples: TrainExample[];
  documents: { id: string; text: string; entities: string[] }[];
}

/** Tiny streams (one per seed) as MAC rows: one row per question, with its document. */
export function syntheticExamples(
  split: SyntheticSplit,
  seeds: readonly number[],
  numDocs: number,
  factsPerDoc: number,
  questionsPerDoc: number,
): SyntheticSet {
  const out: SyntheticSet = { examples: [], documents: [] };
  for (const seed of seeds) {
    const s = syntheticStream({ seed, numDocs, factsPerDoc, questionsPerDoc, split, vocabulary: "tiny" });
    const text = new Map(s.documents.map((d) => [d.id, d.text]));
    out.examples.push(
      ...s.questions.map((q) => ({
        docId: q.docId,
        document: text.get(q.docId)!,
        question: q.question,
        answers: q.answers,
      })),
    );
    out.documents.push(...s.documents.map((d) => ({ id: d.id, text: d.text, entities: d.entities })));
  }
  return out;
}
