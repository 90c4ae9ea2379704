/**
 * Module: a named tree of parameters, the way checkpoints name them.
 *
 * Parameters are the Tensor-valued own fields of a module; submodules are Module-valued fields and arrays of
 * modules (named `h.0`, `h.1`, …, as in Hugging Face checkpoints). Anything that is not a parameter (caches,
 * config) lives in non-Tensor fields or in JS private (#) fields, which the walk does not see.
 *
 * Parameters belong to their module: they are removed from any open scope() when registered and freed by
 * dispose(). A frozen module (freeze()) keeps requiresGrad = false on all its parameters, so autograd computes
 * gradients *through* it to its inputs but never for its weights.
 */
import { MacLmError, fmtShape } from "../errors.js";
import { Tensor, untrack } from "../tensor/index.js";

export type StateDict = Map<string, Tensor>;

export abstract class Module {
  /** Training mode (dropout active). Set for the whole tree by train()/eval(). */
  training = true;

  /** Registers `t` as a parameter owned by this module (call in constructors: `this.weight = this.param(...)`). */
  protected param(t: Tensor, requiresGrad = true): Tensor {
    untrack(t);
    t.requiresGrad = requiresGrad;
    return t;
  }

  /** Direct children: [name, module] pairs. */
  children(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Module) out.push([k, v]);
      else if (Array.isArray(v) && v.length > 0 && v.every((m) => m instanceof Module))
        v.forEach((m: Module, i: number) => out.push([`${k}.${i}`, m]));
    }
    return out;
  }

  /** All parameters with their dotted names, in declaration order. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Tensor) out.push([prefix + k, v]);
    for (const [k, m] of this.children()) out.push(...m.namedParameters(`${prefix}${k}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Parameters that currently require grad (the trainable ones). */
  trainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  numParameters(onlyTrainable = false): number {
    return (onlyTrainable ? this.trainableParameters() : this.namedParameters()).reduce((s, [, t]) => s + t.size, 0);
  }

  train(flag = true): this {
    this.training = flag;
    for (const [, m] of this.children()) m.train(flag);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** No gradients for any parameter of this tree (they still flow through it to inputs). */
  freeze(): this {
    for (const [, t] of this.namedParameters()) t.requiresGrad = false;
    return this;
  }

  unfreeze(): this {
    for (const [, t] of this.namedParameters()) t.requiresGrad = true;
    return this;
  }

  stateDict(): StateDict {
    return new Map(this.namedParameters());
  }

  /**
   * Copies values from `state` into this module's parameters (shapes must match). With strict (default), a
   * missing or unexpected name is an error that lists them.
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>, opts: { strict?: boolean } = {}): void {
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if ((opts.strict ?? true) && (missing.length > 0 || unexpected.length > 0))
      throw new MacLmError(
        "MACLM_BAD_CHECKPOINT",
        `loadStateDict: ${missing.length} missing (${missing.slice(0, 8).join(", ")}), ${unexpected.length} unexpected (${unexpected.slice(0, 8).join(", ")})`,
      );
    for (const [k, t] of own) {
      const src = state.get(k);
      if (!src) continue;
      if (src.size !== t.size || src.shape.length !== t.shape.length || src.shape.some((d, i) => d !== t.shape[i]))
        throw new MacLmError(
          "MACLM_BAD_CHECKPOINT",
          `loadStateDict: ${k} has shape ${fmtShape(src.shape)}, expected ${fmtShape(t.shape)}`,
        );
      t.data.set(src.dtype === t.dtype ? src.data : Float64Array.from(src.data));
    }
  }

  /** Frees every parameter's memory. */
  dispose(): void {
    for (const [, t] of this.namedParameters()) t.dispose();
  }
}
