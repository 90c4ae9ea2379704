/**
 * What shared code (MAC, generation, evaluation) may know about a model. Shared code never branches on the model
 * family: each model declares its geometry and accepts the same hooks.
 *
 * Layout conventions: hidden states (B, T, C); attention keys/values (B, S, NKV, HS) ("BTHD", the attention
 * kernel's layout); token ids int32 (B, T); masks float32 (B, S) with 1 = attend, 0 = padding.
 */
import type { Module } from "../nn/module.js";
import type { Tensor } from "../tensor/index.js";

/** Per-layer keys and values placed before the sequence: P-tuning v2 prefixes, or a KV cache. */
export interface LayerKV {
  k: Tensor; // (B, P, NKV, HS)
  v: Tensor; // (B, P, NKV, HS)
}

/**
 * Low-rank updates of one projection, possibly different per batch item (MAC generates them per question):
 * y = x·Wᵀ + scaling · (x·Aᵀ)·Bᵀ with A (B|1, r, in), B (B|1, out, r). A batch dim of 1 shares the update.
 */
export interface LoraDelta {
  a: Tensor;
  b: Tensor;
  scaling: number;
}

/** Which attention projections LoRA may update, by role (each model maps roles to its own weights). */
export type LoraTarget = "q" | "k" | "v" | "o";
export type LayerLora = Partial<Record<LoraTarget, LoraDelta>>;

/** Modulation of a frozen model: prefixes and/or LoRA, one entry per layer. */
export interface Modulation {
  prefix?: readonly LayerKV[];
  lora?: readonly LayerLora[];
}

export interface ModelGeometry {
  readonly numLayers: number;
  readonly hiddenSize: number; // C
  readonly numHeads: number; // NH
  readonly numKvHeads: number; // NKV (= NH without grouped-query attention)
  readonly headDim: number; // HS
  readonly vocabSize: number; // V
}

/**
 * Growing per-layer keys/values for incremental decoding. `length` counts every cached position, prefix included
 * (positions of new tokens start there, as in Hugging Face when past_key_values holds a prefix).
 */
export interface KVCache {
  readonly length: number;
  layers: LayerKV[];
}

export interface CausalLMInput {
  ids: Tensor; // int32 (B, T)
  /** (B, Spast + T): 1 = attend. Prefix/cache positions included. Default: all ones. */
  attentionMask?: Tensor;
  modulation?: Modulation;
  /** Incremental decoding: attends to the cache, then appends this step's keys/values to it. */
  cache?: KVCache;
  /**
   * (B, E, C) input embeddings appended after the tokens of `ids`, at the following positions (MAC's decoder-only
   * amortizer appends T learned memory tokens). The attention mask then covers past + T + E.
   */
  appendEmbeds?: Tensor;
}

export interface CausalLM extends Module, ModelGeometry {
  readonly modelType: string;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** logits (B, T, V). */
  forward(input: CausalLMInput): Tensor;
  /** The final hidden states (B, T (+E), C) after the last norm: the LM head's input. */
  hidden(input: CausalLMInput): Tensor;
  /** A cache seeded with the modulation's prefix (or empty). */
  newCache(batch: number, modulation?: Modulation): KVCache;
  /** Reorders the cache's batch dimension (beam search), in place. */
  reorderCache(cache: KVCache, indices: Tensor): void;
}

/** Encoder models (BERT, T5's encoder): hidden states (B, T, C). */
export interface Encoder extends Module {
  readonly modelType: string;
  readonly hiddenSize: number;
  encode(ids: Tensor, attentionMask?: Tensor, modulation?: Modulation): Tensor;
}
