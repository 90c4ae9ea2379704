/**
 * Entries of the extractive memory (aggregate/select.ts): a text of at most W tokens (one window of a document,
 * documentWindows() cuts them) becomes
 *
 *   rows 0..W−1   the LM's input embeddings of its tokens, front-padded with the separator's (a short window then
 *                 reads as blank lines before the text)                                         (W, C)
 *   row  W        the frozen LM's mean final hidden state over the text: what the LM understood of it     (C)
 *
 * A question becomes the same shape for the selecting aggregator to compare against: its first W tokens'
 * embeddings (zero rows after them: padding that matches nothing) and its mean state. No trainable parameters:
 * adaptation is one forward pass of the frozen LM per window, and the LM later reads the entry's token rows exactly
 * as it would read the text (modulation/tokens.ts).
 */
import { MacLmError } from "../../errors.js";
import type { CausalLM } from "../../models/types.js";
import { Module } from "../../nn/module.js";
import { Tensor, noGrad, scope } from "../../tensor/index.js";
import type { Tokenizer } from "../../tokenizers/index.js";
import type { Amortizer } from "./amortizer.js";
import type { TextBatch } from "./text-batch.js";

/** The LM's input embedding table (V, C), if it exposes one under a known name. */
export const inputEmbeddingTable = (lm: CausalLM): Tensor | undefined =>
  lm.namedParameters().find(([n]) => n.endsWith("embed_tokens.weight") || n.endsWith("wte.weight"))?.[1];

/** What the extractive memory puts between a window and the question: a paragraph break. */
export const WINDOW_SEPARATOR = "\n\n";

export interface WindowEntryOptions {
  /** "document": rows front-padded with the separator; "question": rows zero-padded at the end. */
  role: "document" | "question";
  /** W: token rows per entry. */
  window: number;
  /** Longest text read for the mean state (documents: W). */
  maxLength: number;
}

export class WindowEntryEncoder extends Module implements Amortizer {
  readonly kind = "lm-window";
  readonly numSlots: number;
  readonly outDim: number;
  readonly maxLength: number;
  readonly #lm: CausalLM;
  readonly #table: Float32Array;
  readonly #pad: number[];
  #cache: Map<string, Float32Array> | null = null;

  constructor(
    lm: CausalLM,
    readonly tokenizer: Tokenizer,
    readonly opts: WindowEntryOptions,
  ) {
    super();
    const table = inputEmbeddingTable(lm);
    if (!table) throw new MacLmError("MACLM_BAD_ARGUMENT", `lm-window: ${lm.modelType} exposes no input embeddings`);
    if (!(Number.isInteger(opts.window) && opts.window >= 2))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `lm-window: window ${opts.window} must be an integer ≥ 2`);
    this.#lm = lm;
    this.#table = table.f32;
    this.numSlots = opts.window + 1;
    this.outDim = lm.hiddenSize;
    this.maxLength = opts.maxLength;
    this.#pad = tokenizer.encode(WINDOW_SEPARATOR, { addSpecialTokens: false });
  }

  /** Caches each text's entry (training revisits documents and questions; the LM never changes). */
  enableCache(on = true): void {
    this.#cache = on ? new Map() : null;
  }

  /** Token ids of a text: documents as written, questions after a space (as their words appear inside a text). */
  private ids(text: string): number[] {
    const t = this.opts.role === "question" ? ` ${text.trim()}` : text;
    return this.tokenizer.encode(t, { addSpecialTokens: false }).slice(0, this.maxLength);
  }

  forward(batch: TextBatch): Tensor {
    const [B, L] = batch.ids.shape as [number, number];
    const rows = Array.from({ length: B }, (_, b) => {
      const r: number[] = [];
      for (let j = 0; j < L && batch.mask.data[b * L + j]! > 0; j++) r.push(batch.ids.data[b * L + j]!);
      return r;
    });
    return this.entries(rows);
  }

  forwardTexts(texts: readonly string[]): Tensor {
    const C = this.outDim;
    const size = this.numSlots * C;
    const missing = [...new Set(texts.filter((t) => !this.#cache?.has(t)))];
    const fresh = new Map<string, Float32Array>();
    if (missing.length > 0) {
      const e = this.entries(missing.map((t) => this.ids(t)));
      missing.forEach((t, i) => fresh.set(t, e.f32.slice(i * size, (i + 1) * size)));
      e.dispose();
      for (const [t, v] of fresh) this.#cache?.set(t, v);
    }
    const out = Tensor.zeros([texts.length, this.numSlots, C]);
    texts.forEach((t, i) => out.data.set((this.#cache?.get(t) ?? fresh.get(t))!, i * size));
    return out;
  }

  /** Token rows (B lists of ids) → (B, W + 1, C). */
  private entries(rows: number[][]): Tensor {
    const W = this.opts.window;
    const C = this.outDim;
    const B = rows.length;
    const out = Tensor.zeros([B, W + 1, C]);
    rows.forEach((r0, b) => {
      if (r0.length === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", `lm-window: text ${b + 1} has no tokens`);
      const r = r0.slice(0, W);
      const lead = this.opts.role === "document" ? W - r.length : 0;
      for (let t = 0; t < W; t++) {
        const id = t < lead ? this.#pad[t % this.#pad.length] : r[t - lead];
        if (id !== undefined) out.data.set(this.#table.subarray(id * C, (id + 1) * C), (b * (W + 1) + t) * C);
      }
    });
    // The mean final state over each text's tokens, in one right-padded batch (causal: padding changes nothing).
    const L = Math.max(...rows.map((r) => r.length));
    noGrad(() =>
      scope(() => {
        const ids = Tensor.zeros([B, L], "int32");
        const mask = Tensor.zeros([B, L]);
        rows.forEach((r, b) => r.forEach((id, j) => ((ids.data[b * L + j] = id), (mask.data[b * L + j] = 1))));
        const h = this.#lm.hidden({ ids, attentionMask: mask }).f32; // (B, L, C)
        rows.forEach((r, b) => {
          const o = (b * (W + 1) + W) * C;
          for (let j = 0; j < r.length; j++)
            for (let c = 0; c < C; c++) out.data[o + c]! += h[(b * L + j) * C + c]! / r.length;
        });
      }),
    );
    return out;
  }
}
