/**
 * Online fine-tuning baselines (mac-reference 6.1; CaMeLS's weighted_train): the base LM is fine-tuned on the
 * stream, one document after another, with a per-token weighted language-modelling loss, and answers with the
 * weights it has reached.
 *
 *   uniform        weight 1 on every token;
 *   salient_spans  weight 1 on the tokens overlapping a name or date (salient.ts), 0 elsewhere; a document with no
 *                  salient token is skipped (no optimiser step, Adam's state untouched) and counted.
 *
 * One Adam step (AdamW with weight decay 0, betas 0.9/0.999, eps 1e-8) per document in stream order (docsPerStep 1),
 * gradients clipped to a global norm of 750, the optimiser state kept across the whole stream; documents truncated
 * to maxLength tokens (encoded as the tokenizer does by default, like the reference's HF tokenizer call); dropout
 * off. The loss of a document of T tokens with target weights w_t (the weight of the token predicted at t):
 *
 *   L = Σ_{t<T-1} w_{t+1} · CE(logits_t, id_{t+1}) / D,  D by `normalization`:
 *     "positions"  (default) T − 1, the document's own predicted positions: with uniform weights this is the plain
 *                  mean LM loss, and a salient document's gradient shrinks with its share of salient tokens, as in
 *                  the reference;
 *     "max_length" maxLength − 1: the reference exactly (it pads every document to 1024 and takes .mean() over all
 *                  1023 positions, so short documents take proportionally smaller steps);
 *     "weights"    Σ w: a weighted mean (every salient token counts as much as in a fully salient document).
 * With Adam the overall scale matters little; the choice sets how documents are weighted against each other.
 *
 * The model in MethodContext is frozen and shared by the other methods: this method never touches it. It owns a
 * trainable copy from a loader (e.g. baseLoader(name) → loadBase's model), unfreezes it, and disposes it (and the
 * optimiser's m and v: 2 more copies) on dispose(). Native memory: each step runs in its own scope and ends with
 * releaseFreedMemory(), as MAC's trainer does.
 */
import { MacLmError } from "../../errors.js";
import { loadBase } from "../../mac/build.js";
import type { CausalLM } from "../../models/types.js";
import {
  AdamW,
  Tensor,
  affine,
  accumulateGrads,
  crossEntropy,
  grad,
  mul,
  nextTurn,
  noGrad,
  optimizerStep,
  releaseFreedMemory,
  scope,
  sum,
} from "../../tensor/index.js";
import { scoreAll } from "../../data/qa-metrics.js";
import type { QaStream, StreamDoc, StreamQuestion } from "../stream.js";
import { type PromptTemplate, answerPrompts, qaPrompt } from "./answer.js";
import { type ValidationSample, validationSample } from "./prompts.js";
import { type SalientOptions, salientTokenWeights } from "./salient.js";
import type { MethodContext, ProgressFn, QaMethod } from "./types.js";

export type FinetuneKind = "uniform" | "salient_spans";
export type LossNormalization = "positions" | "max_length" | "weights";

export interface FinetuneOptions {
  /** Adam learning rate. Default 1e-4 (the reference's eval.yaml). */
  lr?: number;
  /** Documents are truncated to this many tokens. Default 1024 (the reference). */
  maxLength?: number;
  /** Global gradient-norm clipping. Default 750 (the reference). */
  clip?: number;
  /** See the module comment. Default "positions". */
  normalization?: LossNormalization;
  /** Documents per optimiser step (their losses averaged; adapt() steps on a remainder at its end). Default 1. */
  docsPerStep?: number;
  /** salient_spans: which spans count. */
  salient?: SalientOptions;
}

/** Builds the trainable copy of the base LM (a fresh model each call, never the shared frozen one). */
export type ModelLoader = () => CausalLM | Promise<CausalLM>;

/**
 * A loader of the named base LM from the model cache (src/mac/build.ts loadBase), e.g. "smollm2-135m-instruct",
 * with the checkpoint's base adapter merged when it has one (the LM every method shares).
 */
export const baseLoader =
  (name: string, opts: { cacheDir?: string; baseAdapter?: string | null } = {}): ModelLoader =>
  async () =>
    (await loadBase(name, opts)).model;

export interface StepInfo {
  docId: string;
  /** Tokens after truncation. */
  tokens: number;
  /** Sum of the target weights (predicted positions with weight 1). */
  weight: number;
  /** The weighted loss before the update (NaN when skipped). */
  loss: number;
  gradNorm: number;
  skipped: boolean;
  ms: number;
}

export interface FinetuneStats {
  docs: number;
  steps: number;
  /** Documents without any weighted token (salient_spans: no salient span), not trained on. */
  skippedDocs: number;
  /** Documents longer than maxLength. */
  truncatedDocs: number;
  tokens: number;
  weightedTokens: number;
  meanLoss: number;
  msPerDoc: number;
}

const DEFAULTS = { lr: 1e-4, maxLength: 1024, clip: 750, normalization: "positions", docsPerStep: 1 } as const;

export class FinetuneMethod implements QaMethod {
  readonly opt: AdamW;
  readonly o: Required<Omit<FinetuneOptions, "salient">> & Pick<FinetuneOptions, "salient">;
  private readonly params: Tensor[];
  private readonly ctxOwn: MethodContext;
  /** The prompt template answer() uses (settable: the validation tries every template on one adapted state). */
  promptTemplate: PromptTemplate;
  private pending: { doc: StreamDoc; ids: number[]; weights: Float32Array }[] = [];
  private s = { docs: 0, steps: 0, skipped: 0, truncated: 0, tokens: 0, weighted: 0, lossSum: 0, losses: 0, ms: 0 };
  private disposed = false;

  /** Takes ownership of `model` (a trainable copy, not ctx.base): it is unfrozen here and disposed by dispose(). */
  constructor(
    readonly name: FinetuneKind,
    readonly ctx: MethodContext,
    readonly model: CausalLM,
    opts: FinetuneOptions = {},
  ) {
    if (model === ctx.base)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${name}: the model to fine-tune is the shared frozen base LM; pass a copy of its own (ModelLoader)`,
      );
    this.o = { ...DEFAULTS, ...opts };
    if (!(this.o.lr > 0)) throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: lr ${this.o.lr} must be > 0`);
    if (!Number.isInteger(this.o.maxLength) || this.o.maxLength < 2)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: maxLength ${this.o.maxLength} must be an integer >= 2`);
    if (!Number.isInteger(this.o.docsPerStep) || this.o.docsPerStep < 1)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: docsPerStep ${this.o.docsPerStep} must be an integer >= 1`);
    model.unfreeze();
    model.eval();
    // A tied LM head shares its tensor with the embedding: list every parameter once.
    this.params = [...new Set(model.parameters())];
    this.opt = new AdamW(this.params, { lr: this.o.lr, weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8 });
    this.ctxOwn = { ...ctx, base: model };
    this.promptTemplate = ctx.promptTemplate ?? "plain";
  }

  /** Token ids of a document, truncated to maxLength. */
  encode(text: string): { ids: number[]; truncated: boolean } {
    const ids = this.ctx.tokenizer.encode(text);
    return ids.length > this.o.maxLength
      ? { ids: ids.slice(0, this.o.maxLength), truncated: true }
      : { ids, truncated: false };
  }

  /** Per-token weights of a document (length = ids.length); position t's loss uses the weight of token t + 1. */
  tokenWeights(text: string, ids: readonly number[]): Float32Array {
    if (this.name === "uniform") return new Float32Array(ids.length).fill(1);
    return salientTokenWeights(this.ctx.tokenizer, text, ids, this.o.salient).weights;
  }

  /** The weighted loss of one document (scalar, recorded for autograd); see the module comment. */
  documentLoss(ids: readonly number[], weights: Float32Array): Tensor {
    const T = ids.length;
    if (T < 2 || weights.length !== T)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${this.name}: documentLoss needs >= 2 tokens and one weight per token, got ${T} tokens, ${weights.length} weights`,
      );
    const targets = new Int32Array(T).fill(-100);
    const w = new Float32Array(T);
    let wSum = 0;
    for (let t = 0; t < T - 1; t++) {
      targets[t] = ids[t + 1]!;
      w[t] = weights[t + 1]!;
      wSum += w[t]!;
    }
    const denom =
      this.o.normalization === "positions"
        ? T - 1
        : this.o.normalization === "max_length"
          ? this.o.maxLength - 1
          : wSum;
    const logits = this.model.forward({ ids: Tensor.from(Int32Array.from(ids), [1, T], "int32") }); // (1, T, V)
    const ce = crossEntropy(logits, Tensor.from(targets, [1, T], "int32"), { reduction: "none" }); // (1, T)
    return affine(sum(mul(ce, Tensor.from(w, [1, T], logits.dtype))), 1 / Math.max(denom, 1e-12));
  }

  /** Queues one document; trains when docsPerStep documents are queued (or at flush()). */
  private push(doc: StreamDoc): StepInfo | null {
    const t0 = performance.now();
    const { ids, truncated } = this.encode(doc.text);
    const weights = ids.length >= 2 ? this.tokenWeights(doc.text, ids) : new Float32Array(ids.length);
    const weight = weights.subarray(1).reduce((a, b) => a + b, 0);
    this.s.docs++;
    this.s.tokens += ids.length;
    this.s.weighted += weight;
    if (truncated) this.s.truncated++;
    if (weight === 0) {
      this.s.skipped++;
      this.s.ms += performance.now() - t0;
      return { docId: doc.id, tokens: ids.length, weight, loss: NaN, gradNorm: 0, skipped: true, ms: 0 };
    }
    this.pending.push({ doc, ids, weights });
    this.s.ms += performance.now() - t0;
    if (this.pending.length >= this.o.docsPerStep) return this.flush();
    return null;
  }

  /** One optimiser step on the queued documents (their losses averaged). Returns null when none are queued. */
  flush(): StepInfo | null {
    if (this.pending.length === 0) return null;
    const t0 = performance.now();
    const batch = this.pending;
    this.pending = [];
    let lossSum = 0;
    let gradNorm = 0;
    scope(() => {
      let acc: Tensor[] | null = null;
      for (const item of batch) {
        const grads = scope(() => {
          const loss = this.documentLoss(item.ids, item.weights);
          lossSum += loss.item();
          return grad(loss, this.params);
        });
        acc = accumulateGrads(acc, grads);
      }
      // A non-finite norm (overflow) leaves the weights and Adam's state alone.
      gradNorm = optimizerStep(this.opt, acc!, { microBatches: batch.length, clip: this.o.clip });
    });
    releaseFreedMemory();
    const ms = performance.now() - t0;
    this.s.steps++;
    this.s.lossSum += lossSum;
    this.s.losses += batch.length;
    this.s.ms += ms;
    const last = batch[batch.length - 1]!;
    return {
      docId: last.doc.id,
      tokens: batch.reduce((a, b) => a + b.ids.length, 0),
      weight: batch.reduce((a, b) => a + b.weights.subarray(1).reduce((x, y) => x + y, 0), 0),
      loss: lossSum / batch.length,
      gradNorm,
      skipped: false,
      ms,
    };
  }

  /** Trains on one document now (with docsPerStep > 1 it may only be queued: then null). */
  step(doc: StreamDoc): StepInfo | null {
    this.checkLive();
    return this.push(doc);
  }

  async adapt(docs: readonly StreamDoc[], progress?: ProgressFn): Promise<void> {
    this.checkLive();
    for (const [i, d] of docs.entries()) {
      this.push(d);
      if (i === docs.length - 1) this.flush();
      progress?.(i + 1, docs.length);
      await nextTurn(); // lets freed tensors' finalizers run (see nextTurn)
    }
  }

  async answer(questions: readonly StreamQuestion[], progress?: ProgressFn): Promise<string[]> {
    this.checkLive();
    const prompts = questions.map((q) => qaPrompt({ ...this.ctxOwn, promptTemplate: this.promptTemplate }, q.question));
    return answerPrompts(this.ctxOwn, prompts, { progress });
  }

  /** The weighted loss of a document under the current weights, without training (diagnostics, tests). */
  evalLoss(text: string): number {
    const { ids } = this.encode(text);
    const w = this.tokenWeights(text, ids);
    return noGrad(() => scope(() => this.documentLoss(ids, w).item()));
  }

  stats(): FinetuneStats {
    const s = this.s;
    return {
      docs: s.docs,
      steps: s.steps,
      skippedDocs: s.skipped,
      truncatedDocs: s.truncated,
      tokens: s.tokens,
      weightedTokens: s.weighted,
      meanLoss: s.losses > 0 ? s.lossSum / s.losses : NaN,
      msPerDoc: s.docs > 0 ? s.ms / s.docs : 0,
    };
  }

  /** What the report may print next to the scores. */
  info(): Record<string, number | string> {
    const st = this.stats();
    return {
      lr: this.o.lr,
      max_length: this.o.maxLength,
      clip: this.o.clip,
      loss_normalization: this.o.normalization,
      docs_per_step: this.o.docsPerStep,
      optimizer_steps: st.steps,
      skipped_docs: st.skippedDocs,
      truncated_docs: st.truncatedDocs,
      weighted_token_fraction: st.tokens > 0 ? st.weightedTokens / st.tokens : 0,
      mean_train_loss: st.meanLoss,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.opt.dispose();
    this.model.dispose();
    // The allocator caches freed large blocks (up to 1 GiB) for the next step's same-sized gradients: give them back.
    releaseFreedMemory({ cache: true });
  }

  private checkLive(): void {
    if (this.disposed) throw new MacLmError("MACLM_DISPOSED", `${this.name}: the method was disposed`);
  }
}

/** A fine-tuning method with its own trainable copy of the base LM from `load`. */
export async function createFinetuneMethod(
  kind: FinetuneKind,
  ctx: MethodContext,
  load: ModelLoader,
  opts: FinetuneOptions = {},
): Promise<FinetuneMethod> {
  const model = await load();
  try {
    return new FinetuneMethod(kind, ctx, model, opts);
  } catch (e) {
    if (model !== ctx.base) model.dispose();
    throw e;
  }
}

export interface LrCandidateResult {
  lr: number;
  /** The prompt template the validation questions were asked with. */
  template: PromptTemplate;
  f1: number;
  em: number;
  /** Training loss averaged over the validation documents. */
  meanLoss: number;
  /** Adapting (once per lr) and answering with this template. */
  seconds: number;
}

export interface LrSelection {
  lr: number;
  template: PromptTemplate;
  /** One per (lr, template), lr-major. */
  results: LrCandidateResult[];
  docs: number;
  questions: number;
}

export interface SelectLrOptions extends ValidationSample {
  ctx: MethodContext;
  load: ModelLoader;
  /** Everything but lr. */
  options?: Omit<FinetuneOptions, "lr">;
  /** Prompt templates tried on each adapted state (default: ctx's template). */
  templates?: readonly PromptTemplate[];
  progress?: (lr: number, phase: "adapt" | "answer", done: number, total: number) => void;
}

/**
 * The learning rate and prompt template with the best F1 (SQuAD F1, max over references) on validation questions
 * after adapting a fresh copy of the base LM to validation documents with each candidate rate, then answering with
 * each template (the same adapted state: a template costs only its answering). Ties go to the earlier candidate.
 * Cost: candidates × (a model load + maxDocs steps + templates × answering maxQuestions).
 */
export async function selectLearningRate(
  kind: FinetuneKind,
  val: QaStream,
  candidates: readonly number[],
  o: SelectLrOptions,
): Promise<LrSelection> {
  if (candidates.length === 0 || candidates.some((lr) => !(lr > 0)))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `selectLearningRate: candidates [${candidates.join(", ")}] must be > 0`);
  const templates = o.templates ?? [o.ctx.promptTemplate ?? "plain"];
  if (templates.length === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", "selectLearningRate: no prompt templates");
  const { docs, questions } = validationSample("selectLearningRate", val, o);
  const results: LrCandidateResult[] = [];
  for (const lr of candidates) {
    let t0 = performance.now();
    const m = await createFinetuneMethod(kind, o.ctx, o.load, { ...o.options, lr });
    try {
      await m.adapt(docs, (d, n) => o.progress?.(lr, "adapt", d, n));
      for (const template of templates) {
        m.promptTemplate = template;
        const preds = await m.answer(questions, (d, n) => o.progress?.(lr, "answer", d, n));
        const sc = scoreAll(
          preds,
          questions.map((q) => q.answers),
        );
        results.push({
          lr,
          template,
          f1: sc.f1,
          em: sc.em,
          meanLoss: m.stats().meanLoss,
          seconds: (performance.now() - t0) / 1000,
        });
        t0 = performance.now();
      }
    } finally {
      m.dispose();
    }
  }
  let best = results[0]!;
  for (const r of results) if (r.f1 > best.f1) best = r;
  return { lr: best.lr, template: best.template, results, docs: docs.length, questions: questions.length };
}
