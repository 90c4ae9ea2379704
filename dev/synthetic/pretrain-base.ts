/**
 * Pretrains the tiny "base LM" of the end-to-end MAC test (test/mac/e2e-synthetic.test.ts): a 2-layer GPT-2
 * (our GPT2LMHeadModel, n_embd 64) trained from scratch on syntheticStream's "tiny" language with the word
 * tokenizer, written as a Hugging Face GPT-2 folder (config.json + model.safetensors, float16) that loadCausalLM
 * (and transformers' GPT2LMHeadModel) read:
 *
 *   nice -n 5 npx tsx dev/synthetic/pretrain-base.ts [--steps 2000] [--out test/fixtures/models/gpt2-synthetic]
 *
 * About 5 minutes on two cores. Corpus: tiny streams with the PRETRAIN_SEEDS below (the MAC test trains on other
 * seeds and is tested on seed 2), each document giving "<document> <eos>" and, per question,
 * "<question> <answer> <eos>": the language and the closed-book question → answer format MAC uses.
 *
 * Names are renamed. A base LM must have seen the test split's name words, or it cannot produce them at all
 * (their tied embeddings stay at their random initialisation, whatever MAC tells it); and if every document's
 * names come from one split, as in syntheticStream, the base LM learns a "which split" direction in its
 * embeddings that a MAC trained on the train split cannot carry over to test names (measured: the oracle EM with
 * only the question's own document in memory fell from 85 % on training names to 44 % on test names). So every
 * stream's names are renamed one to one by names drawn in turn from a shuffled list of the whole name vocabulary:
 * every name occurs about equally often, names of all splits share documents, and the renamed facts are random
 * pairings that tell nothing about the MAC streams' facts. Asked a question without its document, the base LM
 * answers with a well-formed name (one word, then <eos>) and is right about never.
 *
 * Deterministic: seeded initialisation, corpus and batch order (the bytes depend on the engine's kernels too).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { syntheticStream, tinyVocabulary, type SyntheticSplit } from "../../src/data/synthetic.js";
import { generate } from "../../src/generate/index.js";
import { saveSafetensors } from "../../src/io/safetensors.js";
import { loadCausalLM } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/types.js";
import { GPT2_DEFAULTS, type GPT2Config } from "../../src/models/gpt2/config.js";
import { GPT2LMHeadModel } from "../../src/models/gpt2/model.js";
import { TRANSPOSED } from "../../src/models/gpt2/weights.js";
import {
  AdamW,
  Tensor,
  clipGradNorm,
  crossEntropy,
  grad,
  noGrad,
  permute,
  reshape,
  scope,
} from "../../src/tensor/index.js";
import { Rng } from "../../src/tensor/random.js";
import { WordTokenizer } from "../../src/tokenizers/word.js";

/** Seeds of the pretraining streams (the end-to-end test uses seeds 1000–1029 to train MAC and 2 to test it). */
export const PRETRAIN_SEEDS = [101, 102, 103, 104, 105, 106, 107, 108] as const;

const { values } = parseArgs({
  options: {
    steps: { type: "string", default: "2000" },
    batch: { type: "string", default: "32" },
    lr: { type: "string", default: "3e-3" },
    out: { type: "string", default: "test/fixtures/models/gpt2-synthetic" },
  },
});
const STEPS = Number(values.steps);
const BATCH = Number(values.batch);
const LR = Number(values.lr);

const tok = new WordTokenizer(tinyVocabulary());
const EOS = tok.eosId;

const config: GPT2Config = {
  ...GPT2_DEFAULTS,
  vocab_size: tok.vocabSize,
  n_positions: 64,
  n_embd: 64,
  n_layer: 2,
  n_head: 4,
  n_inner: 256,
  resid_pdrop: 0,
  embd_pdrop: 0,
  attn_pdrop: 0,
  bos_token_id: null,
  eos_token_id: EOS,
};

// ---- corpus ----------------------------------------------------------------------------------------------------

/**
 * Names and function words of the tiny language: the function words are the words of stream texts that are not
 * entity names; every other word of tinyVocabulary() is a name (of some split).
 */
function tinyWords(): { names: string[]; functionWords: Set<string> } {
  const s = syntheticStream({
    seed: 0,
    numDocs: 60,
    factsPerDoc: 6,
    questionsPerDoc: 4,
    split: "train",
    vocabulary: "tiny",
  });
  const entities = new Set(s.documents.flatMap((d) => d.entities));
  const texts = [...s.documents.map((d) => d.text), ...s.questions.map((q) => q.question)];
  const functionWords = new Set(texts.flatMap((t) => t.split(" ")).filter((w) => !entities.has(w)));
  return { names: tinyVocabulary().filter((w) => !functionWords.has(w)), functionWords };
}

function corpus(): number[][] {
  const seqs: number[][] = [];
  const { names, functionWords } = tinyWords();
  // Every stream's names are renamed one to one by names drawn in turn from a shuffled list of the whole name
  // vocabulary (reshuffled when used up): each name occurs about as often as any other, and names of every split
  // share documents, so nothing the base LM learns tells the splits' names apart.
  const rng = new Rng(5);
  let pool: string[] = [];
  const draw = (): string => {
    if (pool.length === 0) pool = rng.shuffle([...names]);
    return pool.pop()!;
  };
  PRETRAIN_SEEDS.forEach((seed, i) => {
    for (const split of ["train", "test"] as SyntheticSplit[]) {
      const factsPerDoc = 2 + (i % 3); // 2, 3, 4
      const s = syntheticStream({
        seed,
        numDocs: 240,
        factsPerDoc,
        questionsPerDoc: factsPerDoc,
        split,
        vocabulary: "tiny",
      });
      const rename = new Map<string, string>();
      const relabel = (text: string): string =>
        text
          .split(" ")
          .map((w) => {
            if (functionWords.has(w)) return w;
            if (!rename.has(w)) rename.set(w, draw());
            return rename.get(w)!;
          })
          .join(" ");
      const byDoc = new Map(s.documents.map((d) => [d.id, relabel(d.text)]));
      seqs.push(...s.documents.map((d) => [...tok.encode(byDoc.get(d.id)!), EOS]));
      for (const q of s.questions)
        seqs.push([...tok.encode(relabel(q.question)), ...tok.encode(relabel(q.answers[0]!)), EOS]);
    }
  });
  return seqs;
}

function batchOf(seqs: readonly number[][]): { ids: Tensor; mask: Tensor; targets: Tensor } {
  const B = seqs.length;
  const L = Math.max(...seqs.map((s) => s.length));
  const ids = Tensor.full([B, L], tok.padId, "int32");
  const mask = Tensor.zeros([B, L]);
  const targets = Tensor.full([B, L], -100, "int32");
  seqs.forEach((s, b) => {
    for (let t = 0; t < s.length; t++) {
      ids.data[b * L + t] = s[t]!;
      mask.data[b * L + t] = 1;
      if (t + 1 < s.length) targets.data[b * L + t] = s[t + 1]!;
    }
  });
  return { ids, mask, targets };
}

// ---- evaluation ------------------------------------------------------------------------------------------------

/**
 * On a fresh test-split stream: the next-token loss on its documents (how well the base LM knows the language),
 * how often a closed-book greedy answer has the right form (one name, then <eos>), and how often it is right
 * (it cannot know: about chance).
 */
function evaluate(model: CausalLM): { docLoss: number; wellFormed: number; em: number } {
  const s = syntheticStream({
    seed: 999,
    numDocs: 60,
    factsPerDoc: 3,
    questionsPerDoc: 2,
    split: "test",
    vocabulary: "tiny",
  });
  const docLoss = noGrad(() =>
    scope(() => {
      const b = batchOf(s.documents.map((d) => [...tok.encode(d.text), EOS]));
      const logits = model.forward({ ids: b.ids, attentionMask: b.mask });
      return crossEntropy(reshape(logits, [-1, config.vocab_size]), b.targets.reshapeView([-1])).item();
    }),
  );
  const fn = tinyWords().functionWords;
  let wellFormed = 0;
  let em = 0;
  for (const q of s.questions) {
    const out = generate(model, [tok.encode(q.question)], { maxNewTokens: 4, eosTokenId: EOS }).sequences[0]!;
    const word = tok.idToToken(out[0]!)!;
    if (out.length === 2 && out[1] === EOS && !fn.has(word) && out[0]! > tok.unkId) wellFormed++;
    if (word === q.answers[0]) em++;
  }
  const n = s.questions.length;
  return { docLoss, wellFormed: (100 * wellFormed) / n, em: (100 * em) / n };
}

// ---- training --------------------------------------------------------------------------------------------------

const seqs = corpus();
const maxLen = Math.max(...seqs.map((s) => s.length));
if (maxLen > config.n_positions)
  throw new Error(`a corpus sequence has ${maxLen} tokens > n_positions ${config.n_positions}`);
console.log(`corpus: ${seqs.length} sequences, longest ${maxLen} tokens; vocabulary ${tok.vocabSize}`);

const model = new GPT2LMHeadModel(config, { seed: 7 });
model.train();
const params = model.parameters();
const opt = new AdamW(params, { lr: LR, weightDecay: 0 });
const rng = new Rng(11);
let order: number[] = [];
let cursor = 0;
const t0 = Date.now();
let lossAvg = 0;
for (let step = 0; step < STEPS; step++) {
  const rows: number[][] = [];
  while (rows.length < BATCH) {
    if (cursor >= order.length) {
      order = rng.shuffle([...seqs.keys()]);
      cursor = 0;
    }
    rows.push(seqs[order[cursor++]!]!);
  }
  // Linear warm-up over 100 steps, then linear decay to 10 %.
  opt.lr = LR * Math.min((step + 1) / 100, 1 - (0.9 * step) / STEPS);
  scope(() => {
    const b = batchOf(rows);
    const logits = model.forward({ ids: b.ids, attentionMask: b.mask });
    const loss = crossEntropy(reshape(logits, [-1, config.vocab_size]), b.targets.reshapeView([-1]));
    const grads = grad(loss, params);
    clipGradNorm(grads, 1);
    opt.step(grads);
    lossAvg = step === 0 ? loss.item() : 0.98 * lossAvg + 0.02 * loss.item();
  });
  if ((step + 1) % 200 === 0 || step + 1 === STEPS)
    console.log(
      `step ${step + 1}/${STEPS}  loss ${lossAvg.toFixed(3)}  lr ${opt.lr.toExponential(2)}  ${((Date.now() - t0) / 1000).toFixed(0)} s`,
    );
}
opt.dispose();
model.eval();

// ---- save as a Hugging Face GPT-2 folder -----------------------------------------------------------------------

const out = values.out!;
mkdirSync(out, { recursive: true });
noGrad(() =>
  scope(() => {
    const tensors: Record<string, Tensor> = {};
    for (const [name, t] of model.namedParameters())
      tensors[name] = TRANSPOSED.some((s) => name.endsWith(`.${s}`)) ? permute(t, [1, 0]) : t; // Conv1D: (in, out)
    saveSafetensors(join(out, "model.safetensors"), tensors, { format: "pt" }, { dtype: "float16" });
  }),
);
const hfConfig = {
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  activation_function: config.activation_function,
  vocab_size: config.vocab_size,
  n_positions: config.n_positions,
  n_embd: config.n_embd,
  n_layer: config.n_layer,
  n_head: config.n_head,
  n_inner: config.n_inner,
  resid_pdrop: config.resid_pdrop,
  embd_pdrop: config.embd_pdrop,
  attn_pdrop: config.attn_pdrop,
  layer_norm_epsilon: config.layer_norm_epsilon,
  scale_attn_weights: true,
  scale_attn_by_inverse_layer_idx: false,
  tie_word_embeddings: true,
  bos_token_id: null,
  eos_token_id: EOS,
  pad_token_id: tok.padId,
  torch_dtype: "float16",
  mac_lm_note:
    "tiny base LM for test/mac/e2e-synthetic.test.ts; word tokenizer over tinyVocabulary() (pad 0, eos 1, unk 2); written by dev/synthetic/pretrain-base.ts",
};
writeFileSync(join(out, "config.json"), JSON.stringify(hfConfig, null, 2) + "\n");

const show = (e: ReturnType<typeof evaluate>): string =>
  `document loss ${e.docLoss.toFixed(3)}, closed-book answers well formed ${e.wellFormed.toFixed(0)} %, right ${e.em.toFixed(1)} %`;
console.log(`held-out test-split stream: ${show(evaluate(model))}`);
const reloaded = loadCausalLM(out);
console.log(`reloaded from ${out} (float16): ${show(evaluate(reloaded))}`);
console.log(`wrote ${out} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
reloaded.dispose();
model.dispose();
