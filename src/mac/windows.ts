/**
 * Whole documents: the amortization network reads at most `maxLength` tokens, so a longer document is split into
 * overlapping windows of what it reads, each amortized into its own memory entry under the document's id (the bank
 * stores them together, removes them together, and keeps the whole text). Windows are cut on token boundaries and
 * taken from the original text (not a re-decoding), a quarter of each window overlapping the next so that a fact
 * on a boundary is whole in one of them. The split is deterministic: repairing an entry recomputes the same windows.
 */
import type { Tokenizer } from "../tokenizers/index.js";
import { tokenSpans } from "../tokenizers/offsets.js";
import { MacLmError } from "../errors.js";
import { Tensor } from "../tensor/index.js";
import type { MacModel } from "./model.js";

/** The windows of `text` for an amortizer that reads `maxLength` tokens (its special tokens included). */
export function documentWindows(text: string, tokenizer: Tokenizer, maxLength: number): string[] {
  const specials = tokenizer.encode("", { addSpecialTokens: true }).length;
  const body = maxLength - specials;
  if (body < 4)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `windows: the amortizer reads ${maxLength} tokens, too few to split`);
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  if (ids.length <= body) return [text];
  const spans = tokenSpans(tokenizer, text, ids);
  const stride = body - Math.floor(body / 4);
  const windows: string[] = [];
  for (let start = 0; ; start += stride) {
    const end = Math.min(start + body, ids.length);
    windows.push(text.slice(spans[start]![0], spans[end - 1]![1]));
    if (end === ids.length) break;
  }
  return windows;
}

/** A document amortized window by window: its windows' texts and its entries (windows, T, d). */
export interface AmortizedDocument {
  windows: string[];
  entries: Tensor;
}

/**
 * Amortizes whole documents (one forward pass per window, no gradients), `batchSize` windows per pass. The caller
 * owns the returned tensors.
 */
export function amortizeDocuments(mac: MacModel, texts: readonly string[], batchSize = 8): AmortizedDocument[] {
  const a = mac.amortizer;
  const perDoc = texts.map((t) => documentWindows(t, a.tokenizer, a.maxLength));
  if (perDoc.length === 0) return [];
  const batches = mac.amortizeBatched(perDoc.flat(), batchSize); // each (b, T, d)
  const [T, d] = [batches[0]!.dim(1), batches[0]!.dim(2)];
  const values = new Float32Array(batches.reduce((n, b) => n + b.f32.length, 0));
  let at = 0;
  for (const b of batches) {
    values.set(b.f32, at);
    at += b.f32.length;
    b.dispose();
  }
  const out: AmortizedDocument[] = [];
  let row = 0;
  for (const windows of perDoc) {
    const n = windows.length;
    out.push({ windows, entries: Tensor.from(values.slice(row * T * d, (row + n) * T * d), [n, T, d]) });
    row += n;
  }
  return out;
}
