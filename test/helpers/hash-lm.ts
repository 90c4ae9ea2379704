/**
 * A deterministic stand-in for a CausalLM, for generation tests (the same model as reference/dump_generate.py's
 * HashLM): the logits at a position are row h of a fixed float32 table (rows × V), where h is a rolling hash of
 * every token up to and including that position: h = 17; h = (31 h + id + 1) mod rows.
 *
 * Its "KV cache" stores the token history itself, as layer 0's k (and v) of shape (B, S, 1, 1), so a cache whose
 * rows are reordered wrongly yields different logits. A modulation prefix's k values (integers) count as history
 * tokens placed before the prompt, so prefix + prompt behaves exactly like the concatenated prompt.
 */
import { MacLmError } from "../../src/errors.js";
import type { CausalLM, CausalLMInput, KVCache, LayerKV, Modulation } from "../../src/models/types.js";
import { Module } from "../../src/nn/module.js";
import { Tensor } from "../../src/tensor/index.js";

class HistoryCache implements KVCache {
  constructor(public layers: LayerKV[]) {}
  get length(): number {
    return this.layers[0]!.k.dim(1);
  }
}

export interface ForwardCall {
  rows: number;
  t: number;
  past: number;
  /** The attention mask passed, as rows of numbers (null when none). */
  mask: number[][] | null;
  /** dim 0 of each LoRA `a` passed (null without LoRA). */
  loraRows: number[] | null;
  /** First value of each row's LoRA `a` (tests encode the batch item there). */
  loraTags: number[] | null;
}

export class HashLM extends Module implements CausalLM {
  readonly modelType = "hash-lm";
  readonly numLayers = 1;
  readonly hiddenSize = 1;
  readonly numHeads = 1;
  readonly numKvHeads = 1;
  readonly headDim = 1;
  readonly bosTokenId = null;
  readonly calls: ForwardCall[] = [];
  readonly #table: Float32Array;

  constructor(
    readonly vocabSize: number,
    readonly eosTokenId: number | null,
    readonly rows: number,
    table: ArrayLike<number>,
  ) {
    super();
    if (table.length !== rows * vocabSize)
      throw new Error(`table has ${table.length} values, expected ${rows}×${vocabSize}`);
    this.#table = Float32Array.from(table);
  }

  /** Logits after the full history `tokens` (for brute-force references). */
  logitsAfter(tokens: readonly number[]): Float32Array {
    let h = 17;
    for (const t of tokens) h = (h * 31 + t + 1) % this.rows;
    return this.#table.slice(h * this.vocabSize, (h + 1) * this.vocabSize);
  }

  hidden(): Tensor {
    throw new MacLmError("MACLM_BAD_ARGUMENT", "HashLM has no hidden states (a lookup table, not a network)");
  }

  forward(input: CausalLMInput): Tensor {
    const { ids, cache, attentionMask } = input;
    const [B, T] = ids.shape as [number, number];
    const V = this.vocabSize;
    const hist: number[][] = [];
    const past = cache ? cache.length : 0;
    for (let b = 0; b < B; b++) {
      const row = cache ? Array.from(cache.layers[0]!.k.data.subarray(b * past, (b + 1) * past)) : [];
      hist.push(row);
    }
    if (cache && cache.layers[0]!.k.dim(0) !== B)
      throw new MacLmError(
        "MACLM_SHAPE_MISMATCH",
        `hash-lm: cache batch ${cache.layers[0]!.k.dim(0)} for ids batch ${B}`,
      );
    if (attentionMask && (attentionMask.dim(0) !== B || attentionMask.dim(1) !== past + T))
      throw new MacLmError(
        "MACLM_SHAPE_MISMATCH",
        `hash-lm: mask [${attentionMask.shape.join(", ")}] for past ${past} + T ${T}`,
      );
    const lora = input.modulation?.lora;
    const loraA = lora?.[0]?.q?.a;
    this.calls.push({
      rows: B,
      t: T,
      past,
      mask: attentionMask
        ? Array.from({ length: B }, (_, b) =>
            Array.from(attentionMask.data.subarray(b * (past + T), (b + 1) * (past + T))),
          )
        : null,
      loraRows: lora ? lora.map((l) => l.q?.a.dim(0) ?? 0) : null,
      loraTags: loraA
        ? Array.from({ length: loraA.dim(0) }, (_, r) => loraA.data[(r * loraA.size) / loraA.dim(0)]!)
        : null,
    });
    const logits = Tensor.empty([B, T, V]);
    const out = logits.f32;
    const idv = ids.data;
    for (let b = 0; b < B; b++) {
      let h = 17;
      for (const t of hist[b]!) h = (h * 31 + t + 1) % this.rows;
      for (let t = 0; t < T; t++) {
        const tok = idv[b * T + t]!;
        hist[b]!.push(tok);
        h = (h * 31 + tok + 1) % this.rows;
        out.set(this.#table.subarray(h * V, (h + 1) * V), (b * T + t) * V);
      }
    }
    if (cache) {
      const flat = hist.flat();
      const old = cache.layers[0]!;
      cache.layers = [{ k: Tensor.from(flat, [B, past + T, 1, 1]), v: Tensor.from(flat, [B, past + T, 1, 1]) }];
      old.k.dispose();
      old.v.dispose();
    }
    return logits;
  }

  newCache(batch: number, modulation?: Modulation): KVCache {
    const p = modulation?.prefix?.[0];
    if (p === undefined)
      return new HistoryCache([{ k: Tensor.empty([batch, 0, 1, 1]), v: Tensor.empty([batch, 0, 1, 1]) }]);
    const P = p.k.dim(1);
    const vals: number[] = [];
    for (let b = 0; b < batch; b++)
      for (let i = 0; i < P; i++) vals.push(p.k.data[(p.k.dim(0) === 1 ? 0 : b) * P + i]!);
    return new HistoryCache([{ k: Tensor.from(vals, [batch, P, 1, 1]), v: Tensor.from(vals, [batch, P, 1, 1]) }]);
  }

  reorderCache(cache: KVCache, indices: Tensor): void {
    const old = cache.layers[0]!;
    const S = old.k.dim(1);
    const idx = Array.from(indices.data);
    const vals = idx.flatMap((r) => Array.from(old.k.data.subarray(r * S, (r + 1) * S)));
    cache.layers = [{ k: Tensor.from(vals, [idx.length, S, 1, 1]), v: Tensor.from(vals, [idx.length, S, 1, 1]) }];
    old.k.dispose();
    old.v.dispose();
  }
}
