/**
 * Row gathers with int32 indices.
 *   embedding(ids, table):   ids (...) int32, table (V, C) -> (..., C), out[..., :] = table[ids[...], :].
 *   indexSelect(x, indices): x (N, ...rest), indices (...) int32 -> (..., ...rest): rows of x along axis 0, any
 *                            dtype (beam search reorders its cache and its token ids with it).
 * Backward scatter-adds the gradient rows into a zero (V, C) gradient (repeated ids add up), deterministically;
 * it runs only when the table/x needs a gradient. An index outside [0, V) throws a MacLmError naming the index,
 * where it is and V; nothing is read out of bounds.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { record } from "../autograd.js";
import { kernels, registerKernels } from "../backend.js";
import { isFloat } from "../dtype.js";
import { native } from "../native.js";
import { Tensor, numel } from "../tensor.js";

/** Rows of a (rows, cols) matrix addressed by ids. */
export interface GatherDims {
  /** Number of ids (rows of out / of g). */
  n: number;
  /** Rows of the table. */
  v: number;
  /** Elements per row. */
  c: number;
}

declare module "../backend.js" {
  interface Kernels {
    /** out (n, c) = table[ids[i], :]; returns -1, or the position of the first id outside [0, v) (nothing written). */
    embeddingForward(out: Tensor, ids: Tensor, table: Tensor, dims: GatherDims): number;
    /** dtable (v, c) (+)= scatter-add of g (n, c) rows at ids; zeroes dtable first unless accumulate. */
    embeddingBackward(dtable: Tensor, g: Tensor, ids: Tensor, dims: GatherDims, accumulate: boolean): void;
  }
}

declare module "../native.js" {
  interface NativeAddon {
    embeddingForward(out: unknown, ids: unknown, table: unknown, n: number, v: number, c: number): number;
    embeddingBackward(
      dtable: unknown,
      g: unknown,
      ids: unknown,
      n: number,
      v: number,
      c: number,
      accumulate: boolean,
    ): void;
  }
}

registerKernels("cpu", {
  embeddingForward: (out, ids, table, d) => native.embeddingForward(out.data, ids.data, table.data, d.n, d.v, d.c),
  embeddingBackward: (dtable, g, ids, d, accumulate) =>
    native.embeddingBackward(dtable.data, g.data, ids.data, d.n, d.v, d.c, accumulate),
});

function checkIds(op: string, ids: Tensor, what: string): void {
  if (ids.dtype !== "int32")
    throw new MacLmError(
      "MACLM_DTYPE_MISMATCH",
      `${op}: ${what} must be int32, got ${ids.dtype} ${fmtShape(ids.shape)}`,
    );
}

/** Gathers rows of `src` viewed as (v, c); shared by embedding and indexSelect. */
function gatherRows(
  op: string,
  src: Tensor,
  ids: Tensor,
  v: number,
  c: number,
  outShape: number[],
  what: string,
): Tensor {
  if (src.device !== ids.device) throw new ShapeError(op, `device mismatch: ${src.device} vs ${ids.device}`);
  const dims: GatherDims = { n: ids.size, v, c };
  const out = Tensor.uninit(outShape, src.dtype, src.device);
  const bad = kernels(src.device).embeddingForward(out, ids, src, dims);
  if (bad >= 0) {
    out.dispose();
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${op}: ${what} ${ids.data[bad]} (at flat position ${bad} of ${fmtShape(ids.shape)}) is outside [0, ${v}) for ` +
        `${op === "embedding" ? "table" : "input"} ${fmtShape(src.shape)}`,
    );
  }
  return record(out, op, [src, ids], (g, needs) => {
    if (!needs[0]) return [null, null];
    const d = Tensor.zeros(src.shape, src.dtype);
    kernels(src.device).embeddingBackward(d, g, ids, dims, true);
    return [d, null];
  });
}

/** table[ids]: ids (...) int32, table (V, C) -> (..., C). */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  checkIds("embedding", ids, "ids");
  if (table.ndim !== 2) throw new ShapeError("embedding", `table must be 2-D (V, C), got ${fmtShape(table.shape)}`);
  if (!isFloat(table.dtype))
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `embedding: table must be float32 or float64, got ${table.dtype}`);
  const [V, C] = table.shape as [number, number];
  return gatherRows("embedding", table, ids, V, C, [...ids.shape, C], "id");
}

/** Rows of x along axis 0: x (N, ...rest), indices (...) int32 -> (...indices.shape, ...rest). */
export function indexSelect(x: Tensor, indices: Tensor): Tensor {
  checkIds("indexSelect", indices, "indices");
  if (x.ndim < 1) throw new ShapeError("indexSelect", `input must be at least 1-D, got ${fmtShape(x.shape)}`);
  const rest = x.shape.slice(1);
  return gatherRows("indexSelect", x, indices, x.shape[0]!, numel(rest), [...indices.shape, ...rest], "index");
}
