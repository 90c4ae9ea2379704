/**
 * What a decoder layer attends to before the current tokens: a P-tuning v2 prefix (MAC's modulation) or a KV
 * cache of earlier steps, and the cache itself.
 *
 * Prefix (as MAC injects it through Hugging Face's past_key_values, mac-reference.md 1.8): modulation.prefix[l] =
 * {k, v} (B|1, P, NKV, HS) goes in as layer l's pastK/pastV; the attention mask covers P + T (caller's, default
 * ones); token positions start at P; prefix keys are used as given (Llama does not rotate them).
 *
 * Cache: newDecoderCache() seeds every layer with the prefix (or nothing); a forward with the cache attends to
 * it, then appends this step's keys (rotated for RoPE models) and values; positions continue at cache.length.
 *
 * Positions from the mask: with an attention mask, the position of an attended token is the number of attended
 * positions before it (prefix included), as Hugging Face's generate() derives position_ids (cumsum(mask) − 1), so
 * a left-padded row gets exactly the positions of its unpadded prompt (starting at P after a prefix), in the
 * prompt pass and in every cached step. Masked positions keep past + t (what HF's forward uses without
 * position_ids): right padding, as in training, changes no position at all.
 * The cache owns the tensors it creates (they survive the caller's scope()) and frees the ones it replaces,
 * unless autograd still needs them; the prefix tensors it was seeded with stay the caller's.
 */
import { MacLmError, ShapeError, fmtShape } from "../errors.js";
import {
  type Tensor,
  Tensor as T,
  concat,
  indexSelect,
  isGradEnabled,
  noGrad,
  scope,
  untrack,
} from "../tensor/index.js";
import type { CausalLMInput, KVCache, LayerKV, ModelGeometry, Modulation } from "./types.js";

/** Tensors created by caches (the ones a cache may free). */
const owned = new WeakSet<Tensor>();

function own(t: Tensor): Tensor {
  untrack(t);
  owned.add(t);
  return t;
}

function release(old: Tensor, replacement: Tensor): void {
  // A replacement on the autograd graph may still need `old` for backward: leave it to the GC then.
  if (old !== replacement && owned.has(old) && !replacement.requiresGrad) old.dispose();
}

/** x (1|B, ...) -> (B, ...): the batch-1 case repeated B times (differentiable), else x itself. */
export function expandBatch(x: Tensor, B: number): Tensor {
  if (x.dim(0) === B) return x;
  return indexSelect(x, T.zeros([B], "int32")); // the indices stay alive for backward (the caller's scope frees them)
}

/** Checks a modulation's prefix against the model; returns P (0 without a prefix). */
export function checkPrefix(op: string, g: ModelGeometry, mod: Modulation | undefined, B: number): number {
  const prefix = mod?.prefix;
  if (!prefix) return 0;
  if (prefix.length !== g.numLayers)
    throw new ShapeError(op, `modulation.prefix has ${prefix.length} layers, the model has ${g.numLayers}`);
  let P = -1;
  prefix.forEach(({ k, v }, l) => {
    const want = `(${B}|1, P, ${g.numKvHeads}, ${g.headDim})`;
    for (const t of [k, v])
      if (t.ndim !== 4 || (t.dim(0) !== B && t.dim(0) !== 1) || t.dim(2) !== g.numKvHeads || t.dim(3) !== g.headDim)
        throw new ShapeError(op, `prefix[${l}] k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} must be ${want}`);
    if (!k.shape.every((d, i) => d === v.shape[i]))
      throw new ShapeError(op, `prefix[${l}] k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} differ`);
    if (P >= 0 && k.dim(1) !== P) throw new ShapeError(op, `prefix[${l}] has ${k.dim(1)} positions, layer 0 has ${P}`);
    P = k.dim(1);
  });
  return P;
}

/** A growing per-layer key/value store for incremental decoding (see the module comment). */
export class DecoderKVCache implements KVCache {
  constructor(public layers: LayerKV[]) {
    if (layers.length === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", "DecoderKVCache: needs at least one layer");
  }

  /** Cached positions, prefix included. */
  get length(): number {
    return this.layers[0]!.k.dim(1);
  }

  get batch(): number {
    return this.layers[0]!.k.dim(0);
  }

  /** Appends this step's keys/values fresh[l] (B, T, NKV, HS) to every layer. */
  append(fresh: readonly LayerKV[]): void {
    if (fresh.length !== this.layers.length)
      throw new ShapeError(
        "DecoderKVCache.append",
        `${fresh.length} layers of keys/values for a ${this.layers.length}-layer cache`,
      );
    this.layers = this.layers.map((old, l) => {
      const add = fresh[l]!;
      const cat = (a: Tensor, b: Tensor): Tensor => (a.dim(1) === 0 ? b : concat([a, b], 1));
      const next = { k: own(cat(old.k, add.k)), v: own(cat(old.v, add.v)) };
      release(old.k, next.k);
      release(old.v, next.v);
      return next;
    });
  }

  /** Picks batch rows: layer tensors become x[indices] (beam search); indices int32 (B'). */
  reorder(indices: Tensor): void {
    this.layers = this.layers.map((old) =>
      noGrad(() => {
        const next = { k: own(indexSelect(old.k, indices)), v: own(indexSelect(old.v, indices)) };
        release(old.k, next.k);
        release(old.v, next.v);
        return next;
      }),
    );
  }

  /** Frees the tensors this cache created (not the prefix it was seeded with). */
  dispose(): void {
    for (const { k, v } of this.layers) for (const t of [k, v]) if (owned.has(t)) t.dispose();
  }
}

/** A cache for `batch` sequences, seeded with the modulation's prefix (expanded from batch 1 if need be). */
export function newDecoderCache(
  g: ModelGeometry,
  batch: number,
  modulation?: Modulation,
  dtype: "float32" | "float64" = "float32",
): DecoderKVCache {
  const P = checkPrefix("newCache", g, modulation, batch);
  const layers: LayerKV[] = [];
  for (let l = 0; l < g.numLayers; l++) {
    const p = modulation?.prefix?.[l];
    if (p && P > 0) {
      const k = expandBatch(p.k, batch);
      const v = expandBatch(p.v, batch);
      layers.push({ k: k === p.k ? k : own(k), v: v === p.v ? v : own(v) });
    } else {
      const empty = (): Tensor => own(T.empty([batch, 0, g.numKvHeads, g.headDim], dtype));
      layers.push({ k: empty(), v: empty() });
    }
  }
  return new DecoderKVCache(layers);
}

/**
 * Runs one decoder layer. Without autograd (noGrad(): generation, evaluation) it runs in its own scope(), so the
 * layer's intermediates are freed as soon as it returns instead of at the end of the whole forward: a forward then
 * touches a few layers' worth of memory (reused from the allocator's cache) instead of all of them, and the
 * ArrayBuffers V8 counts as external memory stay few (each ~64 MiB of growth costs a full GC). The layer's output
 * and the keys/values it pushed to `fresh` (for the cache) survive. With autograd, the graph needs the
 * intermediates: the layer runs as is.
 */
export function runDecoderLayer(fresh: LayerKV[], layer: () => Tensor): Tensor {
  if (isGradEnabled()) return layer();
  const n = fresh.length;
  return scope(() => {
    const y = layer();
    return { y, kv: fresh.slice(n) };
  }).y;
}

/** What the layers of one forward attend to before its T tokens. */
export interface DecoderPast {
  /** Positions before the current tokens (P, or the cache length); the first token's position. */
  length: number;
  /** Per layer: keys/values (B, length, NKV, HS), or null when length is 0. */
  layers: (LayerKV | null)[];
  /** The cache to append this step's keys/values to, if any. */
  cache: DecoderKVCache | null;
  /**
   * int32 (B, T (+E)) positions of the current tokens derived from the attention mask (see the module comment), or
   * null when they are length, …, length + T − 1 in every row (no mask, or no masked position before a token).
   */
  positions: Tensor | null;
}

/**
 * Positions (B, Tn) of the last Tn columns of a (B, S) 0/1 mask: attended column j of row b gets the number of
 * attended columns before it, a masked one keeps j. null when every position is j (the plain arange).
 */
export function maskPositions(mask: Tensor, Tn: number): Tensor | null {
  const [B, S] = mask.shape as [number, number];
  const m = mask.data;
  const out = new Int32Array(B * Tn);
  let plain = true;
  for (let b = 0; b < B; b++) {
    let seen = 0; // attended columns before j
    for (let j = 0, row = b * S; j < S; j++) {
      const on = m[row + j] !== 0;
      const t = j - (S - Tn);
      if (t >= 0) {
        const p = on ? seen : j;
        out[b * Tn + t] = p;
        if (p !== j) plain = false;
      }
      if (on) seen++;
    }
  }
  return plain ? null : T.from(out, [B, Tn], "int32");
}

/**
 * The prefix or cache of `input` for a model of geometry g, checked, and the attention mask checked against it.
 * With a cache the prefix is already in it (newCache), so modulation.prefix is not added again.
 */
export function decoderPast(op: string, g: ModelGeometry, input: CausalLMInput): DecoderPast {
  const { ids, cache, modulation, attentionMask, appendEmbeds } = input;
  if (ids.ndim !== 2 || ids.dtype !== "int32")
    throw new ShapeError(op, `ids must be int32 (B, T), got ${ids.dtype} ${fmtShape(ids.shape)}`);
  const B = ids.dim(0);
  if (appendEmbeds && (appendEmbeds.ndim !== 3 || appendEmbeds.dim(0) !== B || appendEmbeds.dim(2) !== g.hiddenSize))
    throw new ShapeError(
      op,
      `appendEmbeds ${fmtShape(appendEmbeds.shape)} must be (B, E, C) = (${B}, E, ${g.hiddenSize})`,
    );
  // Sequence length: the tokens plus any appended embeddings.
  const Tn = ids.dim(1) + (appendEmbeds?.dim(1) ?? 0);
  let past: DecoderPast;
  if (cache) {
    if (!(cache instanceof DecoderKVCache))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: input.cache must come from this model's newCache()`);
    if (cache.layers.length !== g.numLayers || cache.batch !== B)
      throw new ShapeError(
        op,
        `cache of ${cache.layers.length} layers and batch ${cache.batch} for a ${g.numLayers}-layer model and ids ${fmtShape(ids.shape)}`,
      );
    const n = cache.length;
    past = { length: n, layers: cache.layers.map((kv) => (n > 0 ? kv : null)), cache, positions: null };
  } else {
    const P = checkPrefix(op, g, modulation, B);
    const prefix = modulation?.prefix;
    past = {
      length: P,
      layers: Array.from({ length: g.numLayers }, (_, l) =>
        prefix && P > 0 ? { k: expandBatch(prefix[l]!.k, B), v: expandBatch(prefix[l]!.v, B) } : null,
      ),
      cache: null,
      positions: null,
    };
  }
  if (
    attentionMask &&
    (attentionMask.ndim !== 2 || attentionMask.dim(0) !== B || attentionMask.dim(1) !== past.length + Tn)
  )
    throw new ShapeError(
      op,
      `attentionMask ${fmtShape(attentionMask.shape)} must be (B, past + T) = (${B}, ${past.length} + ${Tn}) for ids ${fmtShape(ids.shape)}${appendEmbeds ? ` and ${appendEmbeds.dim(1)} appended embeddings` : ""}`,
    );
  if (attentionMask) past.positions = maskPositions(attentionMask, Tn);
  return past;
}
