/**
 * The evaluation protocol for one method (mac-reference §5), run in its own process by `mac-lm eval` so that its
 * peak memory is its own:
 *
 *   1. adapt to the first R0 documents of the stream; answer a fixed sample of their questions → F1₀;
 *   2. keep adapting in steps up to the whole stream, answering the same sample after each step → the retention
 *      curve [extra documents, F1 / F1₀ · 100];
 *   3. with the whole stream adapted, answer every question of the stream → EM/F1 (SQuAD and MAC/CaMeLS variants).
 *
 * Adaptation time counts every document once (the retention steps are the stream itself, not extra work); answer
 * latency is the final pass's wall time per question.
 */
import type { QaScores } from "../data/qa-metrics.js";
import { scoreAll } from "../data/qa-metrics.js";
import type { StreamDoc, StreamQuestion, QaStream } from "./stream.js";
import type { QaMethod } from "./methods/types.js";
import { Rng } from "../tensor/random.js";

export interface RetentionPlan {
  /** Documents adapted to before the first score (the paper: 200; at most half the stream here). */
  start: number;
  /** Extra-document counts at which the sample is scored again, ascending, the last = N − start. */
  extra: number[];
  /** The questions scored at every point (questions of the first `start` documents). */
  questions: StreamQuestion[];
}

/**
 * Retention points for a stream: R0 = min(start, ⌊N/2⌋), `points` equal steps up to the whole stream, and a seeded
 * sample of at most `maxQuestions` of the first R0 documents' questions (all of them if fewer).
 */
export function retentionPlan(
  stream: QaStream,
  o: { start: number; points: number; maxQuestions: number; seed: number },
): RetentionPlan {
  const N = stream.docs.length;
  const start = Math.max(1, Math.min(o.start, Math.floor(N / 2)));
  const rest = N - start;
  const extra = [0];
  for (let i = 1; i <= o.points; i++) {
    const e = Math.round((i * rest) / o.points);
    if (e > extra[extra.length - 1]!) extra.push(e);
  }
  const first = new Set(stream.docs.slice(0, start).map((d) => d.id));
  const pool = stream.questions.filter((q) => first.has(q.docId));
  const rng = new Rng(o.seed);
  const order = rng.shuffle(pool.map((_, i) => i));
  const picked = order.slice(0, o.maxQuestions).sort((a, b) => a - b);
  return { start, extra, questions: picked.map((i) => pool[i]!) };
}

export interface Prediction {
  id: string;
  question: string;
  prediction: string;
  answers: string[];
}

export interface MethodOutcome {
  scores: QaScores;
  adaptMsPerDoc: number;
  adaptSTotal: number;
  /** Milliseconds per question of the final answering pass. */
  answerMs: number;
  /** [extra documents, share of F1₀ kept in percent (null when F1₀ = 0)]. */
  retention: [number, number | null][] | null;
  /** [extra documents, F1 in percent] of the retention sample at each point. */
  retentionF1: [number, number][] | null;
  /** F1 on the retention sample right after the first R0 documents. */
  retentionF1Start: number | null;
  predictions: Prediction[];
}

export interface ProtocolHooks {
  /** Progress of a phase ("adapt 1/4", "answer", ...): done of total items. */
  progress?: (phase: string, done: number, total: number) => void;
}

/** Runs the protocol above for one method; `retention` null skips steps 1–2 (adapt everything, then answer). */
export async function runProtocol(
  method: QaMethod,
  stream: QaStream,
  retention: RetentionPlan | null,
  hooks: ProtocolHooks = {},
): Promise<MethodOutcome> {
  const N = stream.docs.length;
  let adaptMs = 0;
  let adapted = 0;
  const adaptTo = async (n: number, phase: string): Promise<void> => {
    const docs: StreamDoc[] = stream.docs.slice(adapted, n);
    if (docs.length === 0) return;
    const t0 = performance.now();
    await method.adapt(docs, (d, t) => hooks.progress?.(phase, d, t));
    adaptMs += performance.now() - t0;
    adapted = n;
  };

  const curve: [number, number | null][] = [];
  const rawCurve: [number, number][] = [];
  let f1Start: number | null = null;
  if (retention) {
    const refs = retention.questions.map((q) => q.answers);
    for (const [i, extra] of retention.extra.entries()) {
      await adaptTo(retention.start + extra, `adapt ${i + 1}/${retention.extra.length}`);
      const preds = await method.answer(retention.questions, (d, t) =>
        hooks.progress?.(`retention ${i + 1}/${retention.extra.length}`, d, t),
      );
      const f1 = scoreAll(preds, refs).f1;
      f1Start ??= f1;
      rawCurve.push([extra, f1]);
      curve.push([extra, f1Start > 0 ? (100 * f1) / f1Start : null]);
    }
  }
  await adaptTo(N, "adapt");

  const t0 = performance.now();
  const preds = await method.answer(stream.questions, (d, t) => hooks.progress?.("answer", d, t));
  const answerMs = (performance.now() - t0) / Math.max(1, stream.questions.length);
  const scores = scoreAll(
    preds,
    stream.questions.map((q) => q.answers),
  );
  return {
    scores,
    adaptMsPerDoc: N > 0 ? adaptMs / N : 0,
    adaptSTotal: adaptMs / 1000,
    answerMs,
    retention: retention ? curve : null,
    retentionF1: retention ? rawCurve : null,
    retentionF1Start: f1Start,
    predictions: stream.questions.map((q, i) => ({
      id: q.id,
      question: q.question,
      prediction: preds[i]!,
      answers: q.answers,
    })),
  };
}
