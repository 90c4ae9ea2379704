/**
 * Beam search and diverse (group) beam search, step for step as Hugging Face transformers 4.x does them
 * (BeamSearchScorer / BeamHypotheses / _group_beam_search / HammingDiversityLogitsProcessor, v4.46; plain beam
 * search is the one-group case, which HF 5's vectorised _beam_search reproduces):
 *
 *  - numBeams beams per prompt, split into G groups of S = numBeams / G sub-beams. Initial beam scores: 0 for the
 *    first sub-beam of each group, -1e9 for the others (so a group does not start with S copies of one token).
 *  - Each step, groups go in order. Group g scores its rows' log_softmax(logits), minus diversityPenalty × (how
 *    many times each token was chosen at this step by groups 0..g-1 of the same prompt), plus the beam score;
 *    takes the top max(2, 1 + #eos) × S candidates over S × V; walks them best first: an EOS candidate ranked
 *    within the top S becomes a finished hypothesis (score = sum logprob / generatedLength ** lengthPenalty, the
 *    length counting the EOS), other candidates fill the S beams of the next step.
 *  - A group's hypotheses keep the S best; the group is done when it holds S hypotheses (earlyStopping true), or by
 *    HF's heuristics (false / "never"). Done groups emit the pad token from row 0 of their group, as HF does.
 *  - Stop when every group is done or maxNewTokens is reached; open beams are then added as hypotheses, and the
 *    best numReturnSequences over all groups of a prompt are returned.
 * Scores are float64 here (HF: float32), so only near-exact ties can order differently.
 */
import { MacLmError } from "../errors.js";
import type { CausalLM } from "../models/types.js";
import { noGrad, scope } from "../tensor/index.js";
import {
  type GenerateOptions,
  type GenerateOutput,
  type ResolvedOptions,
  Stepper,
  leftPad,
  logSoftmaxRow,
  resolveOptions,
} from "./common.js";

interface Hypothesis {
  score: number;
  /** Generated tokens (the EOS included when it finished on one). */
  tokens: number[];
}

/** HF BeamHypotheses: the numBeams best finished hypotheses of one group of one prompt. */
export class BeamHypotheses {
  readonly beams: Hypothesis[] = [];
  worstScore = 1e9;

  constructor(
    readonly numBeams: number,
    readonly lengthPenalty: number,
    readonly earlyStopping: boolean | "never",
    /** Most tokens a hypothesis can have (for "never" with lengthPenalty > 0). */
    readonly maxNewTokens: number,
  ) {}

  get length(): number {
    return this.beams.length;
  }

  add(tokens: number[], sumLogprobs: number, generatedLength: number): void {
    const score = sumLogprobs / generatedLength ** this.lengthPenalty;
    if (this.beams.length < this.numBeams || score > this.worstScore) {
      this.beams.push({ score, tokens });
      if (this.beams.length > this.numBeams) {
        // Python: sorted([(s, idx) ...]) — lowest score, then lowest index, goes.
        const order = this.beams.map((h, i) => [h.score, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        this.beams.splice(order[0]![1], 1);
        this.worstScore = order[1]![0];
      } else {
        this.worstScore = Math.min(score, this.worstScore);
      }
    }
  }

  /** `bestSumLogprobs`: the best candidate score of this step; `generatedLength`: tokens after this step. */
  isDone(bestSumLogprobs: number, generatedLength: number): boolean {
    if (this.beams.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    const len = this.earlyStopping === "never" && this.lengthPenalty > 0 ? this.maxNewTokens : generatedLength;
    return this.worstScore >= bestSumLogprobs / len ** this.lengthPenalty;
  }
}

/**
 * The k best (value, index) pairs, best first; ties go to the lower index. `value(i)` for i in [0, n).
 * One pass with a small sorted buffer: O(n) when k is small.
 */
export function topK(
  n: number,
  k: number,
  value: (i: number) => number,
): { values: Float64Array; indices: Int32Array } {
  const vals = new Float64Array(k).fill(-Infinity);
  const idx = new Int32Array(k).fill(-1);
  let filled = 0;
  for (let i = 0; i < n; i++) {
    const x = value(i);
    if (filled === k && !(x > vals[k - 1]!)) continue;
    let j = filled < k ? filled++ : k - 1;
    while (j > 0 && x > vals[j - 1]!) {
      vals[j] = vals[j - 1]!;
      idx[j] = idx[j - 1]!;
      j--;
    }
    vals[j] = x;
    idx[j] = i;
  }
  return { values: vals.subarray(0, filled), indices: idx.subarray(0, filled) };
}

export function beamSearch(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): GenerateOutput {
  const o = resolveOptions(model, prompts, { numBeams: 2, ...opts });
  return noGrad(() => scope(() => run(model, prompts, o)));
}

function run(model: CausalLM, prompts: readonly (readonly number[])[], o: ResolvedOptions): GenerateOutput {
  const B = prompts.length;
  const K = o.numBeams;
  const G = o.numBeamGroups;
  const S = K / G;
  const V = model.vocabSize;
  const R = B * K; // rows: (batch, group, sub-beam)
  const eos = new Set(o.eos);
  const numCandidates = Math.max(2, 1 + o.eos.length) * S;
  if (numCandidates > S * V)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `generate: a vocabulary of ${V} is too small for ${S} beams per group`);

  const hyps = Array.from(
    { length: B * G },
    () => new BeamHypotheses(S, o.lengthPenalty, o.earlyStopping, o.maxNewTokens),
  );
  const done = new Array<boolean>(B * G).fill(false);
  let beamScores = new Float64Array(R).fill(-1e9);
  for (let b = 0; b < B; b++) for (let g = 0; g < G; g++) beamScores[b * K + g * S] = 0;
  let seqs: number[][] = Array.from({ length: R }, () => []);

  if (o.maxNewTokens === 0)
    return { sequences: prompts.flatMap(() => Array.from({ length: o.numReturnSequences }, () => [])), scores: null };

  // Prompt: run once per batch item, then expand the cache to the beams (row b·K + j ← item b).
  const { ids, mask, length, padded } = leftPad(prompts, o.pad);
  const stepper = new Stepper(model, B, o.modulation);
  const promptLogits = stepper.step(ids, length, padded ? mask : null);
  const expand = Int32Array.from({ length: R }, (_, r) => Math.floor(r / K));
  let logits: Float32Array = new Float32Array(R * V);
  for (let r = 0; r < R; r++) logits.set(promptLogits.subarray(expand[r]! * V, (expand[r]! + 1) * V), r * V);
  stepper.reorder(expand, expand, B);

  const logp = Array.from({ length: S }, () => new Float64Array(V));
  const freq = new Float64Array(V);
  let generated = 0; // tokens generated so far by every open beam

  for (;;) {
    const currentTokens = new Int32Array(R);
    const reorder = new Int32Array(R);
    const nextScores = new Float64Array(R);
    const nextSeqs: number[][] = new Array<number[]>(R);
    for (let g = 0; g < G; g++) {
      for (let b = 0; b < B; b++) {
        const bg = b * G + g;
        const row0 = b * K + g * S;
        if (done[bg]) {
          // HF pads a finished group and points all its rows at row 0 of the group (of batch item 0).
          for (let i = 0; i < S; i++) {
            const src = g * S;
            nextScores[row0 + i] = 0;
            currentTokens[row0 + i] = o.pad;
            reorder[row0 + i] = src;
            nextSeqs[row0 + i] = [...seqs[src]!, o.pad];
          }
          continue;
        }
        // Scores of this group's S × V candidates.
        if (g > 0) {
          freq.fill(0);
          for (let r = b * K; r < row0; r++) freq[currentTokens[r]!]! += 1;
        }
        for (let i = 0; i < S; i++) {
          const lp = logSoftmaxRow(logits, (row0 + i) * V, V, logp[i]!);
          const base = beamScores[row0 + i]!;
          if (g > 0) for (let v = 0; v < V; v++) lp[v] = lp[v]! - o.diversityPenalty * freq[v]! + base;
          else for (let v = 0; v < V; v++) lp[v] = lp[v]! + base;
        }
        const top = topK(S * V, numCandidates, (c) => logp[Math.floor(c / V)]![c % V]!);
        // Walk the candidates best first (BeamSearchScorer.process).
        let filled = 0;
        for (let rank = 0; rank < top.indices.length && filled < S; rank++) {
          const c = top.indices[rank]!;
          const src = row0 + Math.floor(c / V);
          const token = c % V;
          const score = top.values[rank]!;
          if (eos.has(token)) {
            if (rank >= S) continue;
            hyps[bg]!.add([...seqs[src]!, token], score, generated + 1);
          } else {
            const dst = row0 + filled++;
            nextScores[dst] = score;
            currentTokens[dst] = token;
            reorder[dst] = src;
            nextSeqs[dst] = [...seqs[src]!, token];
          }
        }
        if (filled < S)
          throw new MacLmError(
            "MACLM_BAD_ARGUMENT",
            `generate: beam search found only ${filled} of ${S} continuations (too many EOS ids?)`,
          );
        done[bg] = hyps[bg]!.isDone(top.values[0]!, generated + 1);
      }
    }
    beamScores = nextScores;
    seqs = nextSeqs;
    generated++;
    if (done.every(Boolean) || generated >= o.maxNewTokens) break;
    stepper.reorder(reorder);
    logits = stepper.step(currentTokens, 1, null);
  }

  // Open beams of groups that are not done become hypotheses (BeamSearchScorer.finalize).
  for (let bg = 0; bg < B * G; bg++) {
    if (done[bg]) continue;
    for (let i = 0; i < S; i++) hyps[bg]!.add(seqs[bg * S + i]!, beamScores[bg * S + i]!, generated);
  }
  const sequences: number[][] = [];
  const scores: number[] = [];
  for (let b = 0; b < B; b++) {
    // Python: sorted(candidates, key=score) then pop() — the last of equal scores wins.
    const all = hyps.slice(b * G, (b + 1) * G).flatMap((h) => h.beams);
    const sorted = all.map((h, i) => [h, i] as const).sort((x, y) => x[0].score - y[0].score || x[1] - y[1]);
    for (let j = 0; j < o.numReturnSequences; j++) {
      const [h] = sorted.pop()!;
      sequences.push(h.tokens);
      scores.push(h.score);
    }
  }
  return { sequences, scores };
}
