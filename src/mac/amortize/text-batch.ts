/**
 * Tokenised, padded text batches: ids int32 (B, L) and mask float32 (B, L) with 1 on real tokens.
 */
import { MacLmError } from "../../errors.js";
import { Tensor } from "../../tensor/index.js";
import type { Tokenizer } from "../../tokenizers/index.js";

export interface TextBatch {
  ids: Tensor; // int32 (B, L)
  mask: Tensor; // float32 (B, L)
}

export interface EncodeTextsOptions {
  /** Truncate each text to at most this many tokens (special tokens included). */
  maxLength: number;
  /** Pad every row to maxLength instead of to the longest row. */
  padToMax?: boolean;
  padSide?: "left" | "right";
  addSpecialTokens?: boolean;
}

/** Pads/truncates token id lists into a TextBatch (truncation keeps the start, or the end for left padding). */
export function batchFromIds(rows: readonly (readonly number[])[], padId: number, opts: EncodeTextsOptions): TextBatch {
  if (rows.length === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", "batchFromIds: empty batch");
  const left = opts.padSide === "left";
  const cut = rows.map((r) =>
    r.length <= opts.maxLength ? r : left ? r.slice(r.length - opts.maxLength) : r.slice(0, opts.maxLength),
  );
  const L = opts.padToMax ? opts.maxLength : Math.max(1, ...cut.map((r) => r.length));
  const ids = Tensor.full([rows.length, L], padId, "int32");
  const mask = Tensor.zeros([rows.length, L]);
  const idv = ids.data;
  const mv = mask.data;
  cut.forEach((r, b) => {
    const off = b * L + (left ? L - r.length : 0);
    for (let i = 0; i < r.length; i++) {
      idv[off + i] = r[i]!;
      mv[off + i] = 1;
    }
  });
  return { ids, mask };
}

export function encodeTexts(tokenizer: Tokenizer, texts: readonly string[], opts: EncodeTextsOptions): TextBatch {
  const padId = tokenizer.padId ?? tokenizer.eosId ?? 0;
  const rows = texts.map((t) => tokenizer.encode(t, { addSpecialTokens: opts.addSpecialTokens ?? true }));
  return batchFromIds(rows, padId, opts);
}
