/**
 * What greedy and beam search share: options, prompt batching (left padding), and the decoding loop's model
 * stepper (KV cache, attention mask, modulation, memory scopes).
 *
 * Memory: each model call runs in its own scope(); only the cache's tensors (which the model grows) are kept, and
 * the whole generation runs in an outer scope, so nothing outlives generate() but plain arrays.
 *
 * Modulation: the prefix goes into the cache once (model.newCache(batch, modulation), as Hugging Face does when
 * past_key_values holds a prefix); each forward then gets only the LoRA part. Beam search expands the cache from
 * B rows to B·numBeams rows with reorderCache (so the prompt is run once per batch item, not once per beam), and
 * LoRA deltas that differ per batch item are expanded the same way.
 */
import { MacLmError } from "../errors.js";
import type { CausalLM, KVCache, LayerLora, LoraDelta, Modulation } from "../models/types.js";
import { Tensor, indexSelect, keep, scope } from "../tensor/index.js";

export interface GenerateOptions {
  /** New tokens to generate at most (Hugging Face max_new_tokens). Default 16 (MAC's answers). */
  maxNewTokens?: number;
  /** 1: greedy search. More: beam search. Default 1. */
  numBeams?: number;
  /** Diverse (group) beam search: numBeams is split into this many groups. Default 1. */
  numBeamGroups?: number;
  /** Hamming diversity penalty between groups (HF diversity_penalty). Required > 0 with numBeamGroups > 1. */
  diversityPenalty?: number;
  /** Beam score = sum of log-probabilities / generated length ** lengthPenalty. Default 1.0. */
  lengthPenalty?: number;
  /**
   * Beam search stopping, as Hugging Face's early_stopping: true stops a batch item as soon as numBeams finished
   * hypotheses exist; false uses HF's heuristic; "never" is canonical beam search. Default true (MAC's setting;
   * HF's default is false).
   */
  earlyStopping?: boolean | "never";
  /** Sequences returned per prompt (<= numBeams). Default 1. */
  numReturnSequences?: number;
  /** End-of-sequence id(s). Default: the model's eosTokenId. null: never stop early. */
  eosTokenId?: number | readonly number[] | null;
  /** Fills finished rows and left padding. Default: the first EOS id, else 0 (MAC passes pad_token_id=eos). */
  padTokenId?: number;
  /** Prefix keys/values and/or LoRA deltas applied to the frozen model (MAC's φ*). */
  modulation?: Modulation;
}

export interface GenerateOutput {
  /**
   * Per prompt (× numReturnSequences, prompt-major): the new tokens, ending with the EOS token when the sequence
   * finished (never padded; the prompt is not included).
   */
  sequences: number[][];
  /** Beam search: the length-penalised score of each returned sequence. Greedy: null. */
  scores: number[] | null;
}

export interface ResolvedOptions {
  maxNewTokens: number;
  numBeams: number;
  numBeamGroups: number;
  diversityPenalty: number;
  lengthPenalty: number;
  earlyStopping: boolean | "never";
  numReturnSequences: number;
  eos: number[];
  pad: number;
  modulation: Modulation | undefined;
}

const bad = (msg: string) => new MacLmError("MACLM_BAD_ARGUMENT", `generate: ${msg}`);

export function resolveOptions(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions,
): ResolvedOptions {
  const maxNewTokens = opts.maxNewTokens ?? 16;
  const numBeams = opts.numBeams ?? 1;
  const numBeamGroups = opts.numBeamGroups ?? 1;
  const diversityPenalty = opts.diversityPenalty ?? 0;
  const numReturnSequences = opts.numReturnSequences ?? 1;
  const isInt = (x: number, min: number) => Number.isInteger(x) && x >= min;
  if (!isInt(maxNewTokens, 0)) throw bad(`maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!isInt(numBeams, 1)) throw bad(`numBeams must be a positive integer, got ${numBeams}`);
  if (!isInt(numBeamGroups, 1) || numBeams % numBeamGroups !== 0)
    throw bad(`numBeamGroups must divide numBeams: ${numBeamGroups} groups for ${numBeams} beams`);
  if (numBeamGroups > 1 && !(diversityPenalty > 0))
    throw bad(
      `diverse beam search needs diversityPenalty > 0 (got ${diversityPenalty}), else the groups are identical`,
    );
  if (!isInt(numReturnSequences, 1) || numReturnSequences > numBeams)
    throw bad(`numReturnSequences must be between 1 and numBeams (${numBeams}), got ${numReturnSequences}`);
  if (prompts.length === 0) throw bad("no prompts");
  prompts.forEach((p, i) => {
    if (p.length === 0) throw bad(`prompt ${i} is empty (start it with a BOS token)`);
    for (const t of p)
      if (!Number.isInteger(t) || t < 0 || t >= model.vocabSize)
        throw bad(`prompt ${i} has token id ${t} outside [0, ${model.vocabSize})`);
  });
  const eosOpt = opts.eosTokenId === undefined ? model.eosTokenId : opts.eosTokenId;
  const eos = eosOpt === null ? [] : typeof eosOpt === "number" ? [eosOpt] : [...eosOpt];
  return {
    maxNewTokens,
    numBeams,
    numBeamGroups,
    diversityPenalty,
    lengthPenalty: opts.lengthPenalty ?? 1.0,
    earlyStopping: opts.earlyStopping ?? true,
    numReturnSequences,
    eos,
    pad: opts.padTokenId ?? eos[0] ?? 0,
    modulation: opts.modulation,
  };
}

/** Left-pads prompts to one length (the HF convention for decoder-only generation). */
export function leftPad(
  prompts: readonly (readonly number[])[],
  pad: number,
): { ids: Int32Array; mask: Float32Array; length: number; padded: boolean } {
  const length = Math.max(...prompts.map((p) => p.length));
  const ids = new Int32Array(prompts.length * length).fill(pad);
  const mask = new Float32Array(prompts.length * length);
  prompts.forEach((p, b) => {
    const off = b * length + (length - p.length);
    ids.set(p, off);
    mask.fill(1, off, (b + 1) * length);
  });
  return { ids, mask, length, padded: prompts.some((p) => p.length !== length) };
}

/** log_softmax of `x[off .. off+n)` into `out` (float64). */
export function logSoftmaxRow(x: ArrayLike<number>, off: number, n: number, out: Float64Array): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, x[off + i]!);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i]! - m);
  const lse = m + Math.log(s);
  for (let i = 0; i < n; i++) out[i] = x[off + i]! - lse;
  return out;
}

function keepCache(cache: KVCache): void {
  for (const l of cache.layers) {
    keep(l.k);
    keep(l.v);
  }
}

/** Gathers rows of a per-batch LoRA delta (dim 0 = batch) to follow a cache reorder; shared deltas stay. */
function gatherLora(lora: readonly LayerLora[] | undefined, rows: Int32Array, batch: number): LayerLora[] | undefined {
  if (lora === undefined) return undefined;
  const idx = Tensor.from(rows, [rows.length], "int32");
  const g = (d: LoraDelta): LoraDelta =>
    d.a.dim(0) === batch && batch > 1
      ? { a: keep(indexSelect(d.a, idx)), b: keep(indexSelect(d.b, idx)), scaling: d.scaling }
      : d;
  return lora.map((layer) => Object.fromEntries(Object.entries(layer).map(([k, d]) => [k, g(d)])) as LayerLora);
}

/**
 * Runs the model step by step over a growing cache: rows are batch items (greedy) or beams (beam search).
 * Keeps the attention mask (only passed when some position is masked) and the LoRA rows in step with the cache.
 * The mask always covers every cached position: the models derive the positions of left-padded rows from it.
 */
export class Stepper {
  readonly cache: KVCache;
  readonly vocab: number;
  private rows: number;
  /** (rows, past) attention mask, or null while every position is attended. */
  private mask: Float32Array | null = null;
  private past: number;
  private lora: LayerLora[] | undefined;

  constructor(
    private readonly model: CausalLM,
    batch: number,
    modulation: Modulation | undefined,
  ) {
    this.cache = model.newCache(batch, modulation);
    this.rows = batch;
    this.past = this.cache.length;
    this.vocab = model.vocabSize;
    this.lora = modulation?.lora === undefined ? undefined : [...modulation.lora];
  }

  get numRows(): number {
    return this.rows;
  }

  /**
   * Feeds ids (rows, T) with their mask (rows, T; null = all attended) and returns the last position's logits
   * per row, copied out of native memory: (rows, V) row-major.
   */
  step(ids: Int32Array, t: number, stepMask: Float32Array | null): Float32Array {
    const rows = this.rows;
    if (ids.length !== rows * t)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `generate: ${ids.length} ids for ${rows} rows × ${t}`);
    if (stepMask !== null && this.mask === null) this.mask = new Float32Array(rows * this.past).fill(1);
    if (this.mask !== null) {
      const next = new Float32Array(rows * (this.past + t));
      for (let r = 0; r < rows; r++) {
        next.set(this.mask.subarray(r * this.past, (r + 1) * this.past), r * (this.past + t));
        if (stepMask === null) next.fill(1, r * (this.past + t) + this.past, (r + 1) * (this.past + t));
        else next.set(stepMask.subarray(r * t, (r + 1) * t), r * (this.past + t) + this.past);
      }
      this.mask = next;
    }
    this.past += t;
    const V = this.vocab;
    const { lora, mask, cache, model, past } = this;
    return scope(() => {
      const idsT = Tensor.from(ids, [rows, t], "int32");
      const maskT = mask === null ? undefined : Tensor.from(mask, [rows, past], "float32");
      const logits = model.forward({
        ids: idsT,
        cache,
        ...(maskT ? { attentionMask: maskT } : {}),
        ...(lora ? { modulation: { lora } } : {}),
      });
      keepCache(cache);
      if (logits.ndim !== 3 || logits.dim(0) !== rows || logits.dim(1) !== t || logits.dim(2) !== V)
        throw new MacLmError(
          "MACLM_SHAPE_MISMATCH",
          `generate: ${model.modelType} returned logits [${logits.shape.join(", ")}] for ids [${rows}, ${t}] (vocabulary ${V})`,
        );
      if (cache.length !== past)
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `generate: ${model.modelType} cache holds ${cache.length} positions after the step, expected ${past}`,
        );
      const data = logits.data;
      const out = new Float32Array(rows * V);
      for (let r = 0; r < rows; r++) for (let v = 0, o = (r * t + t - 1) * V; v < V; v++) out[r * V + v] = data[o + v]!;
      return out;
    });
  }

  /**
   * Cache row i becomes old row `indices[i]` (the row count may change: B → B·numBeams). LoRA rows follow the
   * batch item, which only changes when the cache is first expanded to beams: pass `batchOfRow` then.
   */
  reorder(indices: Int32Array, batchOfRow?: Int32Array, batch?: number): void {
    scope(() => {
      this.model.reorderCache(this.cache, Tensor.from(indices, [indices.length], "int32"));
      keepCache(this.cache);
      if (batchOfRow !== undefined && batch !== undefined) this.lora = gatherLora(this.lora, batchOfRow, batch);
    });
    const got = this.cache.layers[0]?.k.dim(0);
    if (got !== undefined && got !== indices.length)
      throw new MacLmError(
        "MACLM_SHAPE_MISMATCH",
        `generate: reorderCache left ${got} cache rows for ${indices.length} indices`,
      );
    if (this.mask !== null) {
      const old = this.mask;
      const P = this.past;
      this.mask = new Float32Array(indices.length * P);
      indices.forEach((src, r) => this.mask!.set(old.subarray(src * P, (src + 1) * P), r * P));
    }
    this.rows = indices.length;
  }
}
