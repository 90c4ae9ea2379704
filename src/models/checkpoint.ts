/**
 * Filling a model's parameters from a checkpoint, one tensor at a time (a checkpoint never sits in memory twice):
 * each family's weights.ts maps its parameter names to checkpoint entries and says which need a transform.
 */
import { MacLmError, fmtShape } from "../errors.js";
import type { Module } from "../nn/module.js";
import type { Tensor } from "../tensor/index.js";
import { Rng } from "../tensor/random.js";

/**
 * A generator whose every draw is 0: builds a model whose weights a checkpoint is about to overwrite without
 * paying for random numbers (Box–Muller in JS costs ~9 s for a 135M-parameter model). Weights come out 0 and
 * norms 1 until loaded.
 */
export class NoInitRng extends Rng {
  constructor() {
    super(0);
  }
  override uniform(): number {
    return 0;
  }
  override normal(): number {
    return 0;
  }
}

export interface WeightSource {
  /** Where the weights come from (a path), for messages. */
  readonly path: string;
  /** Entry names in the checkpoint. */
  readonly names: readonly string[];
  /** A new tensor in our layout for a checkpoint entry (the caller disposes it). */
  load(name: string): Tensor;
}

/**
 * For every parameter of `model`, loads the entry `keyOf(param)` (null: none expected) and copies it in, after
 * `transform` (e.g. a transpose) when given. Unused checkpoint entries other than those `ignore` accepts are an
 * error, as are missing entries and shape mismatches; all name the file and the entry.
 */
export function fillParameters(
  model: Module,
  src: WeightSource,
  opts: {
    keyOf?: (param: string) => string | null;
    transform?: (param: string, t: Tensor) => Tensor;
    ignore?: (entry: string) => boolean;
  } = {},
): void {
  const keyOf = opts.keyOf ?? ((p: string) => p);
  const have = new Set(src.names);
  const params = model.namedParameters();
  const wanted = new Set(params.map(([p]) => keyOf(p)).filter((k): k is string => k !== null));
  const missing = [...wanted].filter((k) => !have.has(k));
  if (missing.length > 0)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${src.path}: ${missing.length} weights missing (${missing.slice(0, 6).join(", ")}${missing.length > 6 ? ", ..." : ""})`,
    );
  const unexpected = src.names.filter((n) => !wanted.has(n) && !(opts.ignore?.(n) ?? false));
  if (unexpected.length > 0)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${src.path}: ${unexpected.length} entries match no parameter (${unexpected.slice(0, 6).join(", ")}${unexpected.length > 6 ? ", ..." : ""})`,
    );
  for (const [p, param] of params) {
    const key = keyOf(p);
    if (key === null) continue;
    const raw = src.load(key);
    const t = opts.transform ? opts.transform(p, raw) : raw;
    try {
      if (t.ndim !== param.ndim || t.shape.some((d, i) => d !== param.shape[i]))
        throw new MacLmError(
          "MACLM_BAD_CHECKPOINT",
          `${src.path}: ${key} has shape ${fmtShape(t.shape)}, parameter ${p} is ${fmtShape(param.shape)}`,
        );
      if (param.dtype === t.dtype) param.data.set(t.data);
      else param.data.set(Float64Array.from(t.data));
    } finally {
      if (t !== raw) t.dispose();
      raw.dispose();
    }
  }
}
