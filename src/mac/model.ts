/**
 * MAC: a frozen base LM modulated by a memory of amortized contexts (Tack et al., NeurIPS 2024).
 *
 *   entry(doc)  = g_amort(doc)                          (T, d)   one forward pass, no gradient at adaptation
 *   q0(q)       = g_question(q)                         (T, d)
 *   z           = h_ψ(q0, bank)   (full, or hierarchical in groups of M)     (T, d)
 *   φ*          = modulation(z)  → prefix K/V for every layer (or LoRA deltas)
 *   answer      = generate(base LM | φ*, q)
 *
 * The trainable parts (amortizer, question encoder, aggregator, modulation) are this Module's parameters; the base
 * LM is held privately, frozen, and never saved with them.
 */
import { MacLmError } from "../errors.js";
import type { CausalLM, Modulation } from "../models/types.js";
import { Module } from "../nn/module.js";
import {
  Tensor,
  add,
  concat,
  crossEntropy,
  detach,
  indexSelect,
  mul,
  noGrad,
  reshape,
  scope,
} from "../tensor/index.js";
import type { Tokenizer } from "../tokenizers/index.js";
import { generate, type GenerateOptions } from "../generate/index.js";

import {
  type MemoryAggregator,
  type MemorySource,
  aggregateFull,
  aggregateHierarchical,
} from "./aggregate/hierarchical.js";
import { SelectAggregator } from "./aggregate/select.js";
import type { Amortizer } from "./amortize/amortizer.js";
import { encodeTexts } from "./amortize/text-batch.js";
import type { ModulationGenerator } from "./modulation/index.js";
import { TokensModulation } from "./modulation/tokens.js";
import { IGNORE_INDEX, type QaBatch, qaBatch } from "./qa-batch.js";
import { type TeacherTargets, distillLoss } from "./train/distill.js";

export interface MacParts {
  base: CausalLM;
  baseTokenizer: Tokenizer;
  amortizer: Amortizer;
  questionEncoder: Amortizer;
  aggregator: MemoryAggregator;
  modulation: ModulationGenerator;
}

export interface AggregationMode {
  /** Hierarchical aggregation with groups of M entries; omitted: full aggregation over the whole bank. */
  groupSize?: number;
}

export interface QaExample {
  question: string;
  answer: string;
}

/** What the self-supervised stage asks of the memory (the question encoder reads it in place of a question). */
export const RECONSTRUCT_INSTRUCTION = "Repeat the text you read.";

export class MacModel extends Module {
  amortizer: Amortizer;
  question_encoder: Amortizer;
  aggregator: MemoryAggregator;
  modulation: ModulationGenerator;
  readonly #base: CausalLM;
  readonly #baseTokenizer: Tokenizer;
  /** Longest question+answer sequence fed to the base LM (reference: 128). */
  maxQaLength = 128;
  /** How a question is put to the base LM ("{question}" is replaced; the reference uses the bare question). */
  qaTemplate = "{question}";

  /** The base-LM prompt for a question. */
  prompt(question: string): string {
    return this.qaTemplate.replace("{question}", question.trim());
  }

  constructor(parts: MacParts) {
    super();
    if (parts.amortizer.outDim !== parts.base.hiddenSize || parts.questionEncoder.outDim !== parts.base.hiddenSize)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `MacModel: amortizer width ${parts.amortizer.outDim} / question encoder width ${parts.questionEncoder.outDim} must equal the base LM's hidden size ${parts.base.hiddenSize}`,
      );
    if (parts.amortizer.numSlots !== parts.questionEncoder.numSlots)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        "MacModel: amortizer and question encoder must have the same number of slots T",
      );
    this.amortizer = parts.amortizer;
    this.question_encoder = parts.questionEncoder;
    this.aggregator = parts.aggregator;
    this.modulation = parts.modulation;
    this.#base = parts.base;
    this.#baseTokenizer = parts.baseTokenizer;
    this.#base.freeze();
  }

  get base(): CausalLM {
    return this.#base;
  }

  get baseTokenizer(): Tokenizer {
    return this.#baseTokenizer;
  }

  /**
   * The text the memory's window is read between (the extractive memory's frame), or null: a document placed in
   * the LM's context (the ablation's ceiling, the distillation teacher) is read in the same frame.
   */
  get contextFrame(): { before: string; after: string } | null {
    return this.modulation instanceof TokensModulation ? this.modulation.frame : null;
  }

  /** Whether the aggregator chooses one entry per question (the extractive memory) rather than mixing them. */
  get selects(): boolean {
    return this.aggregator instanceof SelectAggregator;
  }

  /**
   * The extractive memory's score of every entry of `memory` for each question of q0 (B, T, d): B rows of N, in
   * bank order — all entries at once, or groups streamed in bank order (an entry's score does not depend on the
   * others, so groups give the same scores). Under noGrad.
   */
  entryScores(q0: Tensor, memory: MemorySource): Float32Array[] {
    const agg = this.aggregator;
    if (!(agg instanceof SelectAggregator))
      throw new MacLmError("MACLM_BAD_ARGUMENT", "this model's aggregator mixes entries, it does not score them");
    const B = q0.dim(0);
    const parts: Float32Array[][] = Array.from({ length: B }, () => []);
    const streamed = !(memory instanceof Tensor);
    const groups: Iterable<Tensor> = streamed ? memory : [memory];
    noGrad(() => {
      for (const group of groups) {
        scope(() => {
          const s = agg.scores(q0, group); // (B, n)
          const n = s.dim(1);
          for (let b = 0; b < B; b++) parts[b]!.push(s.f32.slice(b * n, (b + 1) * n));
        });
        if (streamed) group.dispose(); // one group in memory at a time, as hierarchical aggregation holds it
      }
    });
    return parts.map((p) => {
      const row = new Float32Array(p.reduce((n, x) => n + x.length, 0));
      let at = 0;
      for (const x of p) {
        row.set(x, at);
        at += x.length;
      }
      return row;
    });
  }

  get numSlots(): number {
    return this.amortizer.numSlots;
  }

  /** Caches frozen-encoder states per text in both networks (training revisits the same documents and questions). */
  cacheFrozenEncoders(on = true): void {
    for (const net of [this.amortizer, this.question_encoder])
      (net as Amortizer & { enableCache?: (on: boolean) => void }).enableCache?.(on);
  }

  /** Memory entries (N, T, d) for documents: the amortizer's forward, differentiable unless under noGrad(). */
  amortize(documents: readonly string[]): Tensor {
    return runTexts(this.amortizer, documents);
  }

  /** Question query tokens (B, T, d). */
  encodeQuestions(questions: readonly string[]): Tensor {
    return runTexts(this.question_encoder, questions);
  }

  /** φ* for each question: aggregate its query tokens over the memory, then map the latent to a modulation. */
  modulate(q0: Tensor, memory: Tensor | MemorySource, mode: AggregationMode = {}): Modulation {
    const z =
      mode.groupSize !== undefined
        ? aggregateHierarchical(this.aggregator, q0, memory, mode.groupSize)
        : aggregateFull(this.aggregator, q0, memory as Tensor);
    return this.modulation.forward(z);
  }

  /**
   * MAC's training loss for a batch: every question attends to all K documents' entries (its own among them);
   * cross-entropy over the answer tokens (+EOS) only, averaged over tokens. `gradDocs` documents (the first ones:
   * the questions' own, as in the reference) carry gradients, the rest are encoded without (backpropagation dropout).
   *
   * With `memoryPerQuestion` = m (1 ≤ m < K), question i attends instead to a memory of its own: documents
   * i, i+1, …, i+m−1 (mod K) — its own and m − 1 distractors (rows are shuffled). m = 1 is the curriculum's first
   * stage, where a question sees only its own document: it makes the networks carry a document's content into φ*
   * before they have to find the right document among many (test/mac/synthetic-mac.ts: without it the loss does
   * not move; results/training/README.md: trained at K = 8 from the start, the SQuAD checkpoint ignored content).
   */
  loss(
    documents: readonly string[],
    qa: readonly QaExample[],
    opts: { gradDocs?: number; memoryPerQuestion?: number } = {},
  ): Tensor {
    return this.lossTerms(documents, qa, opts).loss;
  }

  /**
   * The training loss and its parts. With `teacher` (one TeacherTargets per question, train/distill.ts), the loss is
   * answer NLL + distillWeight · the context-distillation cross-entropy on the question and answer tokens.
   */
  lossTerms(
    documents: readonly string[],
    qa: readonly QaExample[],
    opts: {
      gradDocs?: number;
      memoryPerQuestion?: number;
      teacher?: readonly TeacherTargets[];
      distillWeight?: number;
    } = {},
  ): { loss: Tensor; nll: Tensor; kl?: () => number } {
    const K = documents.length;
    const keep = Math.min(K, opts.gradDocs ?? K);
    const m = opts.memoryPerQuestion ?? 0;
    if (!Number.isInteger(m) || m < 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `MacModel.loss: memoryPerQuestion ${m} must be an integer ≥ 0`);
    if (m > 0 && qa.length > K)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `MacModel.loss: ${qa.length} questions but ${K} documents`);
    const parts: Tensor[] = [];
    if (keep > 0) parts.push(this.amortize(documents.slice(0, keep)));
    if (keep < K) parts.push(noGrad(() => detach(this.amortize(documents.slice(keep)))));
    let memory = parts.length === 1 ? parts[0]! : concat(parts, 0); // (K, T, d)
    if (m > 0 && m < K) {
      const B = qa.length;
      const idx = Tensor.zeros([B, m], "int32");
      for (let i = 0; i < B; i++) for (let j = 0; j < m; j++) idx.data[i * m + j] = (i + j) % K;
      memory = indexSelect(memory, idx); // (B, m, T, d): one memory per question
    }
    const q0 = this.encodeQuestions(qa.map((e) => e.question)); // (B, T, d)
    const modulation = this.modulate(q0, memory);
    const { logits, batch } = this.qaForward(qa, modulation);
    const nll = crossEntropy(reshape(logits, [-1, logits.dim(2)]), batch.targets.reshapeView([-1]));
    if (!opts.teacher) return { loss: nll, nll };
    if (opts.teacher.length !== qa.length)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `MacModel.loss: ${opts.teacher.length} teacher targets for ${qa.length} questions`,
      );
    const d = distillLoss(logits, opts.teacher);
    const w = opts.distillWeight ?? 1;
    return { loss: add(nll, mul(d.loss, Tensor.scalar(w))), nll, kl: d.kl };
  }

  /** The base LM's logits (B, L, V) on question ⧺ answer rows (qa-batch.ts) under a modulation (or none). */
  qaForward(qa: readonly QaExample[], modulation?: Modulation): { logits: Tensor; batch: QaBatch } {
    const batch = qaBatch(
      this.#baseTokenizer,
      qa.map((e) => this.prompt(e.question)),
      qa.map((e) => e.answer),
      { maxLength: this.maxQaLength },
    );
    const P = modulation?.prefix?.[0]?.k.dim(1) ?? 0;
    const attentionMask = P > 0 ? prefixMask(batch.mask, P) : batch.mask;
    return { logits: this.#base.forward({ ids: batch.ids, attentionMask, modulation }), batch };
  }

  /**
   * The self-supervised objective: the base LM's next-token loss on the first `maxTokens` tokens of each text, with
   * φ* from a memory of one document per text (`memory[i]`, default the text itself) queried by `instruction`, or
   * with no memory (`memory: null`). Reproducing a document from its own memory entry rewards carrying its content
   * on every token, where an answer rewards it on a few; the gain of the own document over an unrelated one is the
   * gate before question answering (MAC's code logs it as text_gain_from_base).
   */
  textLoss(
    texts: readonly string[],
    opts: { memory?: readonly string[] | null; instruction?: string; maxTokens?: number } = {},
  ): Tensor {
    const maxTokens = opts.maxTokens ?? 64;
    const tok = this.#baseTokenizer;
    const rows = texts.map((t) => tok.encode(t.trim(), { addSpecialTokens: false }).slice(0, maxTokens));
    const L = Math.max(2, ...rows.map((r) => r.length));
    const B = rows.length;
    const ids = Tensor.full([B, L], tok.padId ?? tok.eosId ?? 0, "int32");
    const mask = Tensor.zeros([B, L]);
    const targets = Tensor.full([B, L], IGNORE_INDEX, "int32");
    rows.forEach((r, b) => {
      r.forEach((t, j) => {
        ids.data[b * L + j] = t;
        mask.data[b * L + j] = 1;
        if (j > 0) targets.data[b * L + j - 1] = t;
      });
    });
    let modulation: Modulation | undefined;
    if (opts.memory !== null) {
      const docs = opts.memory ?? texts;
      if (docs.length !== B)
        throw new MacLmError("MACLM_BAD_ARGUMENT", `MacModel.textLoss: ${docs.length} memories for ${B} texts`);
      const entries = this.amortize(docs); // (B, T, d)
      const memory = reshape(entries, [B, 1, entries.dim(1), entries.dim(2)]); // one entry per text
      const q0 = this.encodeQuestions(texts.map(() => opts.instruction ?? RECONSTRUCT_INSTRUCTION)); // (B, T, d)
      modulation = this.modulate(q0, memory);
    }
    const P = modulation?.prefix?.[0]?.k.dim(1) ?? 0;
    const logits = this.#base.forward({ ids, attentionMask: P > 0 ? prefixMask(mask, P) : mask, modulation });
    return crossEntropy(reshape(logits, [-1, logits.dim(2)]), targets.reshapeView([-1]));
  }

  /** Token-averaged answer cross-entropy of the base LM under a modulation (or none). */
  answerLoss(qa: readonly QaExample[], modulation?: Modulation): Tensor {
    const { logits, batch } = this.qaForward(qa, modulation);
    return crossEntropy(reshape(logits, [-1, logits.dim(2)]), batch.targets.reshapeView([-1]));
  }

  /** Memory entries for documents, in batches, without gradients (online adaptation: one forward pass each). */
  amortizeBatched(documents: readonly string[], batchSize = 8): Tensor[] {
    const out: Tensor[] = [];
    noGrad(() => {
      for (let i = 0; i < documents.length; i += batchSize) out.push(this.amortize(documents.slice(i, i + batchSize)));
    });
    return out;
  }

  /** Answers questions from a memory (one at a time, as the reference evaluates), with φ* applied. */
  answer(
    questions: readonly string[],
    memory: Tensor | MemorySource | null,
    opts: GenerateOptions & AggregationMode = {},
  ): string[] {
    const tok = this.#baseTokenizer;
    return noGrad(() =>
      questions.map((q) =>
        scope(() => {
          const modulation = memory === null ? undefined : this.modulate(this.encodeQuestions([q]), memory, opts);
          const prompt = tok.encode(this.prompt(q), { addSpecialTokens: false });
          const out = generate(this.#base, [prompt], { eosTokenId: tok.eosId, ...opts, modulation });
          return tok.decode(out.sequences[0]!, { skipSpecialTokens: true }).trim();
        }),
      ),
    );
  }
}

const runTexts = (net: Amortizer, texts: readonly string[]): Tensor =>
  net.forwardTexts
    ? net.forwardTexts(texts)
    : net.forward(encodeTexts(net.tokenizer, texts, { maxLength: net.maxLength }));

/** (B, L) mask → (B, P + L) with the P prefix positions attended. */
export function prefixMask(mask: Tensor, P: number): Tensor {
  const [B, L] = mask.shape as [number, number];
  const out = Tensor.full([B, P + L], 1);
  for (let b = 0; b < B; b++) out.data.set(mask.data.subarray(b * L, (b + 1) * L), b * (P + L) + P);
  return out;
}
