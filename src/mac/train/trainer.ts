/**
 * MAC's offline training (mac-reference 2): amortizer, question encoder, aggregator and modulation trained end to
 * end on (document, question, answer) triples with the frozen base LM's answer loss.
 *
 * One optimizer step = gradAccum micro-batches of batchSize rows. In each micro-batch every kept question attends
 * to all batchSize documents (its own among them, the others as distractors). Backpropagation dropout (keepRatio ρ):
 * only the first round(ρ·batchSize) rows keep their question, and only their documents carry gradients — the
 * others are encoded without, which bounds activation memory while the memory size stays batchSize.
 * Adam(W) with linear warm-up then a constant rate, global-norm clipping; seeded; exact resume from checkpoints.
 *
 * Row order: epoch e visits the rows in the permutation Rng(seed + e); the cursor counts rows consumed, so a
 * resumed run continues the same sequence.
 */
import { MacLmError } from "../../errors.js";
import { dropoutState, setDropoutState } from "../../nn/layers.js";
import {
  AdamW,
  type Tensor,
  accumulateGrads,
  concat,
  grad,
  noGrad,
  optimizerStep,
  releaseFreedMemory,
  scope,
} from "../../tensor/index.js";
import { Rng } from "../../tensor/random.js";
import { scoreAll, type QaScores } from "../../data/qa-metrics.js";
import type { MacModel } from "../model.js";
import { type MemoryAblation, ablationLosses } from "../ablation.js";
import { type TrainState, latestCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { WindowLossStore, selectionLoss } from "./select.js";
import { amortizeDocuments } from "../windows.js";
import { TeacherStore, teacherTargets } from "./distill.js";

export interface TrainExample {
  docId: string;
  document: string;
  question: string;
  answers: string[];
}

export interface TrainOptions {
  /** Optimizer steps to reach (a resumed run continues up to this). */
  steps: number;
  /** Rows (documents) per micro-batch: the memory size K seen in training. */
  batchSize: number;
  /** Backpropagation dropout keep ratio ρ ∈ (0, 1]. */
  keepRatio?: number;
  /**
   * Curriculum: each question's memory is its own document and memoryPerQuestion − 1 others of the micro-batch
   * instead of all batchSize (MacModel.loss); 0 (default): all. Train with 1 first, then resume with 0.
   */
  memoryPerQuestion?: number;
  gradAccum?: number;
  lr?: number;
  warmupSteps?: number;
  weightDecay?: number;
  clip?: number;
  seed?: number;
  /** Keep the base LM's dropout active during training (the reference does). */
  baseDropout?: boolean;
  checkpointDir?: string;
  checkpointEvery?: number;
  evalEvery?: number;
  /** Validation questions scored (greedy) at each evaluation. */
  evalQuestions?: number;
  /** Hierarchical groups for evaluation aggregation (undefined: full). */
  evalGroupSize?: number;
  /**
   * Context distillation (distill.ts): weight of the cross-entropy to the in-context teacher's top-k next-token
   * distribution on the question and answer tokens, added to the answer loss; 0 (default): answer loss only.
   */
  distillWeight?: number;
  /** k of the teacher's top-k (default 32). */
  distillTopK?: number;
  /** SQLite file caching the teacher's targets across runs and resumes (default: in memory only). */
  teacherStore?: string;
  /** Validation questions of the memory ablation (ablation.ts) at each evaluation; 0: none. */
  ablationQuestions?: number;
  /** K of the memory ablation (default 8). */
  ablationK?: number;
  /**
   * Visit each document's questions consecutively (documents in a seeded order): with memoryPerQuestion 1 a batch
   * then reads each document once for several questions (its states and the teacher's context are computed once).
   * Not for distractor stages: a batch's other rows would often be the same document.
   */
  groupByDocument?: boolean;
  /**
   * "qa" (default): the answer loss (+ distillation). "reconstruct": the self-supervised stage — each document of
   * the micro-batch is reproduced (its first textTokens tokens) from a memory of itself (MacModel.textLoss); its
   * validation reports the text loss with the own document, an unrelated one and none.
   * "select": the extractive memory's selection (train/select.ts) — each question chooses among the windows of
   * the micro-batch's documents, trained towards the frozen LM's own answer loss with each window.
   */
  objective?: "qa" | "reconstruct" | "select";
  /** τ of the select objective's target distribution (nats, default 0.5). */
  selectTau?: number;
  /** SQLite file caching the select objective's LM losses across runs and resumes (default: in memory only). */
  windowLossStore?: string;
  /** Tokens of each document reproduced in the reconstruct stage (default 64). */
  textTokens?: number;
}

/** Validation of the reconstruct stage: text loss (nats/token) with the own document's memory, another's, none. */
export interface TextAblation {
  docs: number;
  none: number;
  own: number;
  unrelated: number;
  /** unrelated − own: what the memory carries of its own document. */
  gain: number;
}

export type TrainEvent =
  | {
      kind: "step";
      step: number;
      steps: number;
      loss: number;
      /** Answer NLL and distillation KL (nats/token) when distilling; the selection's KL (select objective). */
      nll?: number;
      kl?: number;
      lr: number;
      gradNorm: number;
      ms: number;
      rssMb: number;
    }
  | {
      kind: "eval";
      step: number;
      loss: number;
      scores?: QaScores;
      noMemory?: QaScores;
      ablation?: MemoryAblation;
      text?: TextAblation;
    }
  | { kind: "checkpoint"; step: number; path: string }
  | { kind: "resume"; step: number; path: string };

/** The shortest reference answer, capitalised, as the reference trains on (mac-reference 4.1). */
export const trainingAnswer = (answers: readonly string[]): string => {
  const a = answers.reduce((x, y) => (y.trim().length < x.trim().length ? y : x), answers[0] ?? "").trim();
  return a.charAt(0).toUpperCase() + a.slice(1);
};

export class MacTrainer {
  readonly opt: AdamW;
  state: TrainState;
  /** When releaseFreedMemory() last ran (performance.now() ms). */
  #lastTrim = -Infinity;
  readonly #teacher: TeacherStore | null;
  readonly #windowLosses: WindowLossStore | null;
  private readonly o: Required<
    Omit<TrainOptions, "checkpointDir" | "evalGroupSize" | "teacherStore" | "windowLossStore">
  > &
    Pick<TrainOptions, "checkpointDir" | "evalGroupSize" | "teacherStore" | "windowLossStore">;

  constructor(
    readonly model: MacModel,
    readonly train: readonly TrainExample[],
    readonly val: readonly TrainExample[],
    opts: TrainOptions,
  ) {
    if (train.length < opts.batchSize)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `train: ${train.length} examples, fewer than batchSize ${opts.batchSize}`,
      );
    this.o = {
      keepRatio: 1,
      memoryPerQuestion: 0,
      gradAccum: 1,
      lr: 1e-4,
      warmupSteps: 0,
      weightDecay: 0,
      clip: 1,
      seed: 0,
      baseDropout: false,
      checkpointEvery: 100,
      evalEvery: 0,
      evalQuestions: 64,
      distillWeight: 0,
      distillTopK: 32,
      ablationQuestions: 0,
      ablationK: 8,
      groupByDocument: false,
      objective: "qa",
      textTokens: 64,
      selectTau: 0.5,
      ...opts,
    };
    this.#teacher =
      this.o.distillWeight > 0 ? new TeacherStore(this.o.teacherStore ?? ":memory:", model.qaTemplate) : null;
    this.#windowLosses =
      this.o.objective === "select"
        ? new WindowLossStore(
            this.o.windowLossStore ?? ":memory:",
            // What the LM's losses depend on besides the texts: the prompt, the window size, the frame around it.
            JSON.stringify([model.qaTemplate, model.amortizer.maxLength, model.contextFrame]),
          )
        : null;
    if (!(this.o.keepRatio > 0 && this.o.keepRatio <= 1))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `train: keepRatio ${this.o.keepRatio} must be in (0, 1]`);
    const m = this.o.memoryPerQuestion;
    if (!Number.isInteger(m) || m < 0 || m > opts.batchSize)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `train: memoryPerQuestion ${m} must be an integer in [0, batchSize ${opts.batchSize}]`,
      );
    this.opt = new AdamW(
      model.trainableParameters().map(([, t]) => t),
      { lr: this.o.lr, weightDecay: this.o.weightDecay },
    );
    setDropoutState(this.o.seed * 1_000_003);
    this.state = {
      step: 0,
      cursor: 0,
      dropoutSeed: dropoutState(),
      optimizer: { lr: this.o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: [], step: [] },
      history: [],
      evals: [],
    };
  }

  /** Resumes from the newest checkpoint in checkpointDir, if any. */
  resume(): string | null {
    if (!this.o.checkpointDir) return null;
    const path = latestCheckpoint(this.o.checkpointDir);
    if (!path) return null;
    this.state = loadCheckpoint(path, this.model, this.opt);
    setDropoutState(this.state.dropoutSeed);
    return path;
  }

  /** The epoch's row order: a seeded permutation of the rows, or of the documents with their rows kept together. */
  private permutation(epoch: number): number[] {
    const rng = new Rng(this.o.seed * 7919 + epoch);
    if (!this.o.groupByDocument) return rng.shuffle([...Array(this.train.length).keys()]);
    const byDoc = new Map<string, number[]>();
    this.train.forEach((e, i) => byDoc.set(e.docId, [...(byDoc.get(e.docId) ?? []), i]));
    return rng.shuffle([...byDoc.values()]).flat();
  }

  /** Rows for the micro-batch starting at the cursor (epoch permutations, seeded). */
  private rows(count: number): TrainExample[] {
    const n = this.train.length;
    const out: TrainExample[] = [];
    let perm: number[] = [];
    let permEpoch = -1;
    for (let i = 0; i < count; i++) {
      const pos = this.state.cursor + i;
      const epoch = Math.floor(pos / n);
      if (epoch !== permEpoch) {
        perm = this.permutation(epoch);
        permEpoch = epoch;
      }
      out.push(this.train[perm[pos % n]!]!);
    }
    this.state.cursor += count;
    return out;
  }

  private lrAt(step: number): number {
    const w = this.o.warmupSteps;
    return w > 0 && step < w ? (this.o.lr * (step + 1)) / w : this.o.lr;
  }

  /** One optimizer step; returns the mean micro-batch loss (and its parts) and the gradient norm before clipping. */
  step(): { loss: number; nll?: number; kl?: number; gradNorm: number } {
    const { batchSize: K, keepRatio, gradAccum } = this.o;
    const keep = Math.max(1, Math.round(K * keepRatio));
    const params = this.model.trainableParameters().map(([, t]) => t);
    this.model.train(true);
    this.model.base.train(this.o.baseDropout);
    let lossSum = 0;
    let nllSum = 0;
    let klSum = 0;
    let gradNorm = 0;
    scope(() => {
      let acc: ReturnType<typeof grad> | null = null;
      for (let a = 0; a < gradAccum; a++) {
        const rows = this.rows(K);
        if (this.o.objective === "select") {
          const examples = rows.map((r) => ({
            document: r.document,
            question: r.question,
            answer: trainingAnswer(r.answers),
          }));
          acc = accumulateGrads(
            acc,
            scope(() => {
              const t = selectionLoss(
                this.model,
                rows.map((r) => r.document),
                examples,
                { tau: this.o.selectTau, store: this.#windowLosses ?? undefined },
              );
              lossSum += t.loss.item();
              klSum += t.kl;
              return grad(t.loss, params);
            }),
          );
          continue;
        }
        if (this.o.objective === "reconstruct") {
          const docs = [...new Set(rows.map((r) => r.document))];
          acc = accumulateGrads(
            acc,
            scope(() => {
              const loss = this.model.textLoss(docs, { maxTokens: this.o.textTokens });
              lossSum += loss.item();
              return grad(loss, params);
            }),
          );
          continue;
        }
        const qa = rows.slice(0, keep).map((r) => ({ question: r.question, answer: trainingAnswer(r.answers) }));
        const teacher = this.#teacher?.fetch(
          qa.map((e, i) => ({ ...e, document: rows[i]!.document })),
          this.o.distillTopK,
          (missing) => teacherTargets(this.model, missing, this.o.distillTopK),
        );
        const grads = scope(() => {
          const t = this.model.lossTerms(
            rows.map((r) => r.document),
            qa,
            {
              gradDocs: keep,
              memoryPerQuestion: this.o.memoryPerQuestion,
              teacher,
              distillWeight: this.o.distillWeight,
            },
          );
          lossSum += t.loss.item();
          nllSum += t.nll.item();
          klSum += t.kl?.() ?? 0;
          return grad(t.loss, params);
        });
        acc = accumulateGrads(acc, grads);
      }
      gradNorm = optimizerStep(this.opt, acc!, {
        microBatches: gradAccum,
        clip: this.o.clip,
        lr: this.lrAt(this.state.step),
      });
    });
    this.state.step++;
    this.state.dropoutSeed = dropoutState();
    // Kernel scratch buffers sized by the (varying) sequence lengths fragment glibc's arenas; without trimming a
    // long run's resident memory grows by megabytes per step (an earlier run was OOM-killed at 11 GB). At most once
    // a second: a trim costs milliseconds plus the page faults of re-growing the heap, ~20 % of the tiny steps
    // (~30 ms) of test/mac/e2e-synthetic.test.ts, far more when the heap is large; real models' steps take seconds
    // and still trim every step.
    const now = performance.now();
    if (now - this.#lastTrim >= 1000) {
      releaseFreedMemory();
      this.#lastTrim = now;
    }
    if (this.#windowLosses) return { loss: lossSum / gradAccum, kl: klSum / gradAccum, gradNorm };
    return this.#teacher
      ? { loss: lossSum / gradAccum, nll: nllSum / gradAccum, kl: klSum / gradAccum, gradNorm }
      : { loss: lossSum / gradAccum, gradNorm };
  }

  /** The reconstruct stage's validation on up to 32 validation documents (each one's "unrelated" is the next one). */
  textAblation(): TextAblation {
    const m = this.model;
    const docs = [...new Set(this.val.map((e) => e.document))];
    const n = Math.min(32, docs.length);
    const sample = Array.from({ length: n }, (_, i) => docs[Math.floor((i * docs.length) / n)]!);
    const other = sample.map((_, i) => sample[(i + 1) % n]!);
    m.eval();
    const mean = (memory: readonly string[] | null): number =>
      noGrad(() => {
        let s = 0;
        for (let i = 0; i < n; i += 8)
          s +=
            scope(() =>
              m
                .textLoss(sample.slice(i, i + 8), {
                  memory: memory && memory.slice(i, i + 8),
                  maxTokens: this.o.textTokens,
                })
                .item(),
            ) * Math.min(8, n - i);
        return Math.round((s / n) * 1e4) / 1e4;
      });
    const r = { docs: n, none: mean(null), own: mean(sample), unrelated: mean(other) };
    return { ...r, gain: Math.round((r.unrelated - r.own) * 1e4) / 1e4 };
  }

  /**
   * Validation: answer loss with the memory of the validation documents, greedy EM/F1 on a sample (evalQuestions),
   * and the memory ablation with its content gap (ablationQuestions).
   */
  evaluate(): { loss: number; scores?: QaScores; ablation?: MemoryAblation } {
    const m = this.model;
    const docs = [...new Set(this.val.map((e) => e.document))];
    let ablation: MemoryAblation | undefined;
    if (this.o.ablationQuestions > 0) {
      const n = Math.min(this.o.ablationQuestions, this.val.length);
      const stride = this.val.length / n;
      const sample = Array.from({ length: n }, (_, i) => this.val[Math.floor(i * stride)]!);
      ablation = ablationLosses(
        m,
        sample.map((e) => ({ document: e.document, question: e.question, answer: trainingAnswer(e.answers) })),
        docs,
        { k: this.o.ablationK },
      );
    }
    m.eval();
    const r = noGrad(() =>
      scope(() => {
        const docs = [...new Set(this.val.map((e) => e.document))];
        // As adaptation stores them: a document longer than the amortizer reads is one entry per window.
        const memory = scope(() => concatAll(amortizeDocuments(m, docs).map((a) => a.entries)));
        const sample = this.val.slice(0, this.o.evalQuestions);
        let lossSum = 0;
        for (let i = 0; i < sample.length; i += 8) {
          const batch = sample.slice(i, i + 8);
          lossSum +=
            scope(() => {
              const mod = m.modulate(m.encodeQuestions(batch.map((e) => e.question)), memory, {
                groupSize: this.o.evalGroupSize,
              });
              return m
                .answerLoss(
                  batch.map((e) => ({ question: e.question, answer: trainingAnswer(e.answers) })),
                  mod,
                )
                .item();
            }) * batch.length;
        }
        const preds = m.answer(
          sample.map((e) => e.question),
          memory,
          { maxNewTokens: 16, groupSize: this.o.evalGroupSize },
        );
        return {
          loss: lossSum / Math.max(1, sample.length),
          scores:
            sample.length > 0
              ? scoreAll(
                  preds,
                  sample.map((e) => e.answers),
                )
              : undefined,
        };
      }),
    );
    return ablation ? { ...r, ablation } : r;
  }

  /** Trains up to opts.steps, yielding progress events; checkpoints periodically and at the end. */
  *fit(): Generator<TrainEvent> {
    const resumed = this.resume();
    if (resumed) yield { kind: "resume", step: this.state.step, path: resumed };
    const { steps, checkpointEvery, evalEvery, checkpointDir } = this.o;
    while (this.state.step < steps) {
      const t0 = performance.now();
      const { loss, nll, kl, gradNorm } = this.step();
      const ms = performance.now() - t0;
      const step = this.state.step;
      this.state.history.push({ step, loss, lr: this.opt.lr, gradNorm });
      yield {
        kind: "step",
        step,
        steps,
        loss,
        ...(nll !== undefined ? { nll, kl } : kl !== undefined ? { kl } : {}),
        lr: this.opt.lr,
        gradNorm,
        ms,
        rssMb: process.memoryUsage().rss / 2 ** 20,
      };
      if (evalEvery > 0 && (step % evalEvery === 0 || step === steps) && this.val.length > 0) {
        const ev = this.evaluate();
        const text = this.o.objective === "reconstruct" ? this.textAblation() : undefined;
        this.state.evals.push({
          step,
          loss: ev.loss,
          ...ev.scores,
          ...(ev.ablation ? { contentGap: ev.ablation.content_gap } : {}),
          ...(text ? { textGain: text.gain } : {}),
        });
        yield { kind: "eval", step, loss: ev.loss, scores: ev.scores, ablation: ev.ablation, text };
      }
      if (checkpointDir && (step % checkpointEvery === 0 || step === steps)) {
        const path = saveCheckpoint(checkpointDir, this.model, this.opt, this.state);
        yield { kind: "checkpoint", step, path };
      }
    }
  }

  dispose(): void {
    this.opt.dispose();
    this.#teacher?.close();
    this.#windowLosses?.close();
  }
}

const concatAll = (parts: Tensor[]): Tensor => concat(parts, 0);
