/**
 * Question-answering metrics (mac-reference 5.1).
 *
 * Standard SQuAD (Rajpurkar et al., the official v1.1 script): normalise (lowercase, drop punctuation and the
 * articles a/an/the, collapse whitespace); EM = normalised strings equal; F1 = token-multiset overlap; both the
 * maximum over the reference answers.
 *
 * MAC/CaMeLS variants (their utils.py): EM is a character-prefix match of the normalised prediction against the
 * normalised gold (generated text after the answer is ignored; an empty gold matches), and F1 is computed against
 * the shortest reference answer only, returning 0 when there is no overlap (also when both are empty).
 */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  // string.punctuation in Python: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
  const noPunct = lower.replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, "");
  const noArticles = noPunct.replace(/\b(a|an|the)\b/g, " ");
  return noArticles.split(/\s+/).filter(Boolean).join(" ");
}

const tokens = (s: string): string[] => normalizeAnswer(s).split(" ").filter(Boolean);

/** SQuAD token F1 of one prediction against one reference (1 when both normalise to empty, as the official script). */
export function f1Score(prediction: string, reference: string): number {
  const p = tokens(prediction);
  const r = tokens(reference);
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of r) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / r.length;
  return (2 * precision * recall) / (precision + recall);
}

export const exactMatch = (prediction: string, reference: string): number =>
  normalizeAnswer(prediction) === normalizeAnswer(reference) ? 1 : 0;

/** Standard SQuAD EM and F1: maxima over the reference answers. */
export function squadScores(prediction: string, references: readonly string[]): { em: number; f1: number } {
  let em = 0;
  let f1 = 0;
  for (const r of references) {
    em = Math.max(em, exactMatch(prediction, r));
    f1 = Math.max(f1, f1Score(prediction, r));
  }
  return { em, f1 };
}

export const shortest = (references: readonly string[]): string =>
  references.reduce((a, b) => (b.trim().length < a.trim().length ? b : a), references[0] ?? "").trim();

/** MAC/CaMeLS EM: the normalised prediction starts with the normalised gold (shortest reference). */
export function prefixExactMatch(prediction: string, gold: string): number {
  const g = normalizeAnswer(gold);
  return normalizeAnswer(prediction).slice(0, g.length) === g ? 1 : 0;
}

/** MAC/CaMeLS F1: SQuAD token F1 against the gold, 0 when nothing overlaps (also for two empty strings). */
export function camelsF1(prediction: string, gold: string): number {
  const p = tokens(prediction);
  const r = tokens(gold);
  if (p.length === 0 || r.length === 0) return 0;
  return f1Score(prediction, gold);
}

export interface QaScores {
  /** Percent, as the papers report. */
  em: number;
  f1: number;
  em_prefix: number;
  f1_shortest: number;
  n: number;
}

/** Mean scores in percent over predictions and their reference answer lists. */
export function scoreAll(predictions: readonly string[], references: readonly (readonly string[])[]): QaScores {
  const n = predictions.length;
  let em = 0;
  let f1 = 0;
  let emp = 0;
  let f1s = 0;
  predictions.forEach((p, i) => {
    const refs = references[i]!;
    const s = squadScores(p, refs);
    em += s.em;
    f1 += s.f1;
    const g = shortest(refs);
    emp += prefixExactMatch(p, g);
    f1s += camelsF1(p, g);
  });
  const pct = (x: number): number => (n === 0 ? 0 : (100 * x) / n);
  return { em: pct(em), f1: pct(f1), em_prefix: pct(emp), f1_shortest: pct(f1s), n };
}
