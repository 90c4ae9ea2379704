/**
 * Errors with a stable `code`, so callers and the CLI can tell failures apart without parsing messages.
 * Shape errors name the op and the shapes involved.
 */
export type ErrorCode =
  | "MACLM_SHAPE_MISMATCH"
  | "MACLM_DTYPE_MISMATCH"
  | "MACLM_DISPOSED"
  | "MACLM_BAD_ARGUMENT"
  | "MACLM_NATIVE_MISSING"
  | "MACLM_NO_KERNEL"
  | "MACLM_BAD_CHECKPOINT"
  | "MACLM_BAD_FILE"
  | "MACLM_AUTOGRAD"
  | "MACLM_DOWNLOAD_FAILED"
  | "MACLM_CHECKSUM_MISMATCH"
  | "MACLM_MODEL_NOT_FOUND"
  | "MACLM_CONFIG_MISMATCH"
  | "MACLM_DUPLICATE_ID"
  | "MACLM_EVAL_FAILED"
  | "MACLM_BANK_DAMAGED"
  | "MACLM_ABORTED"
  | "MACLM_NOT_FOUND";

export class MacLmError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MacLmError";
    this.code = code;
  }
}

export const fmtShape = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/** A shape problem in `op`: e.g. `matmul: inner dims differ: a [2, 3] vs b [4, 5]`. */
export class ShapeError extends MacLmError {
  readonly op: string;
  constructor(op: string, message: string) {
    super("MACLM_SHAPE_MISMATCH", `${op}: ${message}`);
    this.name = "ShapeError";
    this.op = op;
  }
}

export function assertShape(cond: boolean, op: string, message: () => string): asserts cond {
  if (!cond) throw new ShapeError(op, message());
}
