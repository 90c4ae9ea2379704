/**
 * Training the extractive memory's selection (aggregate/select.ts) with the frozen LM's own answer loss.
 *
 * For a question and the windows of a batch's documents (its own among them), the target is the LM's preference:
 *
 *   p(w) ∝ exp(−ℓ(w) / τ)     ℓ(w) = answer loss (nats per answer token, EOS included, as MAC trains) with window w
 *                             read through the tokens modulation; another document's windows count as ℓ(none)
 *   loss = CE(p, softmax(s(q, ·)))   (= KL(p ‖ softmax s) + the target's entropy)
 *
 * — the answer loss made dense over the choices (Atlas's perplexity distillation, REPLUG's LM-supervised
 * retrieval): every window is scored against what reading it actually does for the answer, where the hard choice
 * itself has no gradient. ℓ is computed once per (question, answer, window) and cached on disk (WindowLossStore):
 * the frozen LM never changes, so a resumed run or a second epoch costs only the scorer's forward and backward.
 */
import { MacLmError } from "../../errors.js";
import { Tensor, concat, crossEntropy, logSoftmax, mul, noGrad, reshape, scope, sum } from "../../tensor/index.js";
import { SelectAggregator } from "../aggregate/select.js";
import type { MacModel, QaExample } from "../model.js";
import { amortizeDocuments } from "../windows.js";
import { KeyedStore } from "./keyed-store.js";

export interface SelectExample extends QaExample {
  document: string;
}

/** The frozen LM's answer losses per (template, question, answer, window text; "" = no window), on disk. */
export class WindowLossStore extends KeyedStore<{ loss: number }> {
  constructor(path: string, key: string) {
    super(path, key, "losses", ["loss REAL NOT NULL"]);
  }

  /** Losses for the windows of one question (null: no window): stored ones read back, the rest computed. */
  fetch(e: QaExample, windows: readonly (string | null)[], compute: (missing: number[]) => number[]): number[] {
    const ids = windows.map((w) => this.id(e.question, e.answer, w ?? ""));
    const out = ids.map((id) => this.read(id)?.loss);
    const missing = out.flatMap((v, i) => (v === undefined ? [i] : []));
    if (missing.length > 0) {
      const computed = compute(missing);
      missing.forEach((i, j) => (out[i] = computed[j]!));
      this.write(missing.map((i) => [ids[i]!, out[i]!]));
    }
    return out as number[];
  }
}

/**
 * Answer loss of one question (nats per answer token) with each entry of `entries` (n, T, d) read through the
 * model's modulation, or with none (entries null: one value). No gradients.
 */
export function entryAnswerLosses(mac: MacModel, e: QaExample, entries: Tensor | null): number[] {
  return noGrad(() =>
    scope(() => {
      const n = entries ? entries.dim(0) : 1;
      const rows = Array.from({ length: n }, () => e);
      const { logits, batch } = mac.qaForward(rows, entries ? mac.modulation.forward(entries) : undefined);
      const V = logits.dim(2);
      const per = crossEntropy(reshape(logits, [-1, V]), batch.targets.reshapeView([-1]), { reduction: "none" }).f32;
      const L = batch.targets.dim(1);
      return Array.from({ length: n }, (_, b) => {
        let s = 0;
        let c = 0;
        for (let j = 0; j < L; j++)
          if (batch.targets.data[b * L + j]! >= 0) {
            s += per[b * L + j]!;
            c++;
          }
        return s / Math.max(1, c);
      });
    }),
  );
}

export interface SelectionLossOptions {
  /** τ of the target distribution, in nats (default 0.5). */
  tau?: number;
  /** Cache of the LM's losses (default: computed every time). */
  store?: WindowLossStore;
}

/**
 * The selection loss of a batch: every question chooses among all windows of `documents` (each question's own
 * document must be one of them). Differentiable in the selecting aggregator's parameters; returns the mean over
 * questions and the mean KL (for logs).
 */
export function selectionLoss(
  mac: MacModel,
  documents: readonly string[],
  examples: readonly SelectExample[],
  opts: SelectionLossOptions = {},
): { loss: Tensor; kl: number } {
  const agg = mac.aggregator;
  if (!(agg instanceof SelectAggregator))
    throw new MacLmError("MACLM_BAD_ARGUMENT", 'selection training needs aggregator.kind "select"');
  const tau = opts.tau ?? 0.5;
  const docs = [...new Set(documents)];
  const amortized = amortizeDocuments(mac, docs);
  const owner: number[] = amortized.flatMap((a, i) => a.windows.map(() => i));
  const windowText: string[] = amortized.flatMap((a) => a.windows);
  const memory = concat(
    amortized.map((a) => a.entries),
    0,
  ); // (N, T, d)
  const N = memory.dim(0);
  const Bq = examples.length;
  const target = Tensor.zeros([Bq, N]);
  let klSum = 0;
  examples.forEach((e, b) => {
    const own = docs.indexOf(e.document);
    if (own < 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `selection loss: question ${b + 1}'s document is not in the batch`);
    const ownRows = owner.flatMap((o, n) => (o === own ? [n] : []));
    const texts = [null, ...ownRows.map((n) => windowText[n]!)];
    // Missing values: 0 is "no window", i > 0 the own document's window i − 1 (all computed in one batch).
    const compute = (missing: number[]): number[] => {
      const windows = missing.some((i) => i > 0) ? entryAnswerLosses(mac, e, amortized[own]!.entries) : [];
      const none = missing.includes(0) ? entryAnswerLosses(mac, e, null)[0]! : Number.NaN;
      return missing.map((i) => (i === 0 ? none : windows[i - 1]!));
    };
    const losses = opts.store ? opts.store.fetch(e, texts, compute) : compute(texts.map((_, i) => i));
    const loss = (n: number): number => (owner[n] === own ? losses[1 + ownRows.indexOf(n)]! : losses[0]!);
    const l = Array.from({ length: N }, (_, n) => loss(n));
    const lo = Math.min(...l);
    const p = l.map((x) => Math.exp(-(x - lo) / tau));
    const z = p.reduce((a, v) => a + v, 0);
    p.forEach((v, n) => (target.data[b * N + n] = v / z));
  });
  const logq = logSoftmax(agg.scores(mac.encodeQuestions(examples.map((e) => e.question)), memory)); // (Bq, N)
  const loss = mul(sum(mul(target, logq)), Tensor.scalar(-1 / Bq));
  // KL = CE − H(p), for the logs.
  const lq = logq.f32;
  for (let i = 0; i < Bq * N; i++) {
    const p = target.data[i]!;
    if (p > 0) klSum += p * (Math.log(p) - lq[i]!);
  }
  return { loss, kl: klSum / Bq };
}
