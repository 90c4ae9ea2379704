/**
 * Greedy decoding, as Hugging Face's greedy search: each step takes the argmax of the last position's logits
 * (the first index on ties, like torch.argmax); a row that produced an EOS token is finished and gets the pad
 * token from then on; decoding stops when every row is finished or after maxNewTokens steps.
 *
 * Prompts of different lengths are left-padded (pad token, attention mask 0); the models take positions from the
 * attention mask (src/models/kv-cache.ts), as HF's generate() does, so a padded row decodes exactly as its prompt
 * alone would.
 */
import type { CausalLM } from "../models/types.js";
import { noGrad, scope, untrack } from "../tensor/index.js";
import { type GenerateOptions, type GenerateOutput, Stepper, leftPad, resolveOptions } from "./common.js";

export function greedySearch(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): GenerateOutput {
  const o = resolveOptions(model, prompts, { ...opts, numBeams: 1, numBeamGroups: 1, numReturnSequences: 1 });
  const B = prompts.length;
  const V = model.vocabSize;
  const eos = new Set(o.eos);
  const sequences: number[][] = prompts.map(() => []);
  const finished = new Array<boolean>(B).fill(false);
  if (o.maxNewTokens === 0) return { sequences, scores: null };

  return noGrad(() =>
    scope(() => {
      const { ids, mask, length, padded } = leftPad(prompts, o.pad);
      const stepper = new Stepper(model, B, o.modulation);
      let logits = stepper.step(ids, length, padded ? mask : null);
      for (let step = 0; ; step++) {
        const next = new Int32Array(B);
        for (let b = 0; b < B; b++) {
          if (finished[b]) {
            next[b] = o.pad;
            continue;
          }
          let best = 0;
          let bestV = -Infinity;
          for (let v = 0, off = b * V; v < V; v++) {
            const x = logits[off + v]!;
            if (x > bestV) {
              bestV = x;
              best = v;
            }
          }
          next[b] = best;
          sequences[b]!.push(best);
          if (eos.has(best)) finished[b] = true;
        }
        if (step + 1 >= o.maxNewTokens || finished.every(Boolean)) break;
        logits = stepper.step(next, 1, null);
      }
      return { sequences, scores: null };
    }),
  );
}

/**
 * Greedy decoding of one prompt, a token at a time: yields each new token id as soon as it is chosen (the last one
 * is EOS if the model emitted it). The same steps and choices as greedySearch([prompt]), so the tokens are the
 * same; between tokens the caller may do anything (e.g. await, to stream them). Closing the generator early (break,
 * return()) frees the decoding state; the modulation stays the caller's.
 */
export function* greedyTokens(
  model: CausalLM,
  prompt: readonly number[],
  opts: GenerateOptions = {},
): Generator<number, void, undefined> {
  const o = resolveOptions(model, [prompt], { ...opts, numBeams: 1, numBeamGroups: 1, numReturnSequences: 1 });
  if (o.maxNewTokens === 0) return;
  const eos = new Set(o.eos);
  const V = model.vocabSize;
  const stepper = noGrad(() => new Stepper(model, 1, o.modulation));
  // The cache's tensors belong to the cache (untracked), not to whatever scope the caller is in at each next();
  // the modulation's prefix tensors stay the caller's.
  const prefix = new Set((o.modulation?.prefix ?? []).flatMap(({ k, v }) => [k, v]));
  const own = <T>(fn: () => T): T =>
    noGrad(() =>
      scope(() => {
        const out = fn();
        for (const { k, v } of stepper.cache.layers) for (const t of [k, v]) if (!prefix.has(t)) untrack(t);
        return out;
      }),
    );
  try {
    let logits = own(() => stepper.step(Int32Array.from(prompt), prompt.length, null));
    for (let step = 0; ; step++) {
      let best = 0;
      let bestV = -Infinity;
      for (let v = 0; v < V; v++) {
        const x = logits[v]!;
        if (x > bestV) {
          bestV = x;
          best = v;
        }
      }
      yield best;
      if (eos.has(best) || step + 1 >= o.maxNewTokens) return;
      logits = own(() => stepper.step(Int32Array.of(best), 1, null));
    }
  } finally {
    (stepper.cache as { dispose?: () => void }).dispose?.();
  }
}
