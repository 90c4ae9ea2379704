/**
 * MAC on syntheticStream's "tiny" language, end to end (test/mac/e2e-synthetic.test.ts): the pretrained tiny GPT-2
 * fixture gpt2-synthetic (written by dev/synthetic/pretrain-base.ts) as the frozen base LM, the word tokenizer
 * everywhere, small BERT encoders trained from scratch in the amortizer, a cross-attention aggregator and a
 * P-tuning v2 prefix.
 *
 * What it takes for such a MAC to learn, from scratch, on two CPU cores in about a minute (each point was
 * measured; EM below is on a 64-document held-out stream):
 *  - The encoders' word embeddings are the base LM's (copied, frozen). Names are atomic words, and MAC is tested
 *    on names it never saw in training (the test split's): embeddings learnt only from the training stream would
 *    stay random for them, from which no network can tell which word of the base LM's vocabulary to produce.
 *    Sharing the base LM's table stands in for a pretrained encoder that knows the vocabulary (MAC's T5 does).
 *  - The question encoder is FROZEN at its random initialisation: a fixed random feature map of the question.
 *    Trained (lr 1e-3), it collapses within a few hundred steps to an output that does not depend on the question
 *    (spread across questions 0.05 against a norm of 11; trained from the second stage of the curriculum below:
 *    EM 0): its output enters the prefix through the aggregator's residual, where any question-dependent
 *    variation is noise to the answer until retrieval works, so the gradient removes it before retrieval can be
 *    learnt.
 *  - Symmetric start: the question encoder starts as an exact copy of the amortizer (same seed), the learned query
 *    tokens of both start at zero (so their outputs are pure content, not a constant plus a little content), and
 *    each aggregator block's to_q starts equal to its to_k, both scaled by 2 (sharper scores from the start). A
 *    question and its document then share features (the subject's name) that the scores reward from step one.
 *  - One latent token per entry (T = 1) and a wider aggregator (8 heads of 32, to_q = to_k × 2). After the first
 *    three stages below (1,200 steps): T = 1 with 4 heads of 16 and to_q = to_k: EM 41 %; with ×2: 66 %; with 8
 *    heads of 32 and ×2: 92 %. After the first two: T = 4, 2, 1: 28, 33, 52 %. A question's single token has to
 *    find one document's single token among N.
 *  - A curriculum over the memory (TRAIN_SCHEDULE): first each question sees only its own document (the network
 *    learns to carry the answer's name into the prefix: EM 95 % with its own document alone after 300 steps), in
 *    micro-batches of 16 questions; then its own and 7 other documents; then the whole micro-batch of 32 (it
 *    learns to find the document); then, on every other step, hierarchically in groups of 8 (HierarchyAwareMac;
 *    without it hierarchical EM is ~0); last at a lower learning rate (seed 2: EM 58 % → 81 % in 300 steps at
 *    3e-4). Without the first stage (MacTrainer's K = 4, 16, 32 from scratch) the loss does not move. MacTrainer's
 *    memory size alone as the curriculum (K = 1, 2, 4, 8, 16: 4,600 steps, with T = 4) reached EM 17 %: a K = 1
 *    micro-batch holds one question, so its steps cost as much as a K = 16 step for one sixteenth of the signal.
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
 * MacModel with a training-only option (answering, amortization and aggregation at test time are MacModel's):
 * trainGroupSize: the training loss aggregates hierarchically (groups of trainGroupSize) on every other call,
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
  /** Latent tokens per memory entry, T (default 1). */
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
      numSlots: opts.slots ?? 1,
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
  const aggregator = new Aggregator(d, { numBlocks: 2, numHeads: 8, headDim: 32, rng: new Rng(seed + 2) });
  for (const b of aggregator.cross_attention_list) {
    const w = b.attn.to_k.weight.data;
    for (let i = 0; i < w.length; i++) w[i] = 2 * w[i]!;
    b.attn.to_q.weight.data.set(w);
  }
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

/** One stage of the training curriculum: MacTrainer options (and the memory) that change between stages. */
export interface TrainStage {
  /** Rows (documents and their questions) per micro-batch: the memory size K unless memoryPerQuestion is set. */
  batchSize: number;
  steps: number;
  /** MacTrainer's memoryPerQuestion: the curriculum's small memories, one per question (0: the whole micro-batch). */
  memoryPerQuestion?: number;
  /** Hierarchy-aware training: aggregate in groups of this size on every other step (0: never). */
  trainGroupSize?: number;
  /** Learning rate (default 1e-3). */
  lr?: number;
}

/** The curriculum (see the module comment): 2,200 steps, about a minute on two cores. */
export const TRAIN_SCHEDULE: readonly TrainStage[] = [
  { batchSize: 16, memoryPerQuestion: 1, steps: 400 },
  { batchSize: 32, memoryPerQuestion: 8, steps: 700 },
  { batchSize: 32, steps: 400 },
  { batchSize: 32, steps: 300, trainGroupSize: 8 },
  { batchSize: 32, steps: 400, trainGroupSize: 8, lr: 3e-4 },
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
