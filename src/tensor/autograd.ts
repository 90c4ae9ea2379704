/**
 * Reverse-mode autograd on a tape of ops.
 *
 * Each differentiable op computes its output with a kernel and then calls record(), which links the output to
 * its inputs with a backward function. grad(loss, params) walks the graph backwards from `loss` and returns
 * d loss / d param for each param.
 *
 * Frozen models: a tensor with requiresGrad = false (a frozen weight) gets no gradient, and each op's backward
 * is told which inputs need one (`needs`), so a frozen linear layer computes the gradient of its input but
 * never of its weight. Only inputs on a path from `loss` to a requested param are marked as needed.
 */
import { MacLmError } from "../errors.js";
import { Tensor } from "./tensor.js";

export type BackwardFn = (gradOut: Tensor, needs: readonly boolean[]) => readonly (Tensor | null)[];

export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly backward: BackwardFn;
}

let gradEnabled = true;

export const isGradEnabled = (): boolean => gradEnabled;

/** Runs fn without recording ops: no graph is built and no memory is held for backward. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Async variant of noGrad(); the mode stays off across awaits until fn settles. */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return await fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when `inputs` call for recording an op (grad mode on and some input requires grad). */
export const needsRecord = (inputs: readonly Tensor[]): boolean => gradEnabled && inputs.some((t) => t.requiresGrad);

/** Links `out` to `inputs` through `backward` if any input requires grad. Returns `out`. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], backward: BackwardFn): Tensor {
  if (!needsRecord(inputs)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  return out;
}

/** A view of `t` that shares its memory but not its graph: gradients stop here. */
export function detach(t: Tensor): Tensor {
  return t.reshapeView(t.shape);
}

export interface GradOptions {
  /** d loss / d output, for a non-scalar `loss` (default: 1 for a scalar loss). */
  gradOutput?: Tensor;
}

/** Adds b into a new tensor (kernel set by ops/elementwise.ts at import, to keep this module free of ops). */
let addKernel: ((a: Tensor, b: Tensor) => Tensor) | null = null;
export function setGradAccumulator(fn: (a: Tensor, b: Tensor) => Tensor): void {
  addKernel = fn;
}

/**
 * Gradients of `loss` with respect to each of `params` (each must require grad; a param that `loss` does not
 * depend on gets a zero gradient). Intermediate gradients are freed as soon as they are consumed.
 */
export function grad(loss: Tensor, params: readonly Tensor[], opts: GradOptions = {}): Tensor[] {
  if (addKernel === null) throw new MacLmError("MACLM_AUTOGRAD", "grad(): no accumulation kernel registered");
  for (const p of params)
    if (!p.requiresGrad)
      throw new MacLmError("MACLM_AUTOGRAD", `grad(): parameter ${p.name ?? p.toString()} does not require grad`);
  if (!opts.gradOutput && loss.size !== 1)
    throw new MacLmError(
      "MACLM_AUTOGRAD",
      `grad(): loss has shape [${loss.shape.join(", ")}]; pass gradOutput for a non-scalar output`,
    );

  // Topological order of the graph below `loss`, and which tensors lie on a path to a requested param.
  const wanted = new Set(params);
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const needed = new Set<Tensor>();
  const visit = (root: Tensor): void => {
    // Iterative DFS (deep models would overflow the stack with recursion).
    const stack: [Tensor, number][] = [[root, 0]];
    visited.add(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const [t, i] = top;
      const inputs = t.node?.inputs ?? [];
      if (i < inputs.length) {
        top[1]++;
        const child = inputs[i]!;
        if (child.requiresGrad && !visited.has(child)) {
          visited.add(child);
          stack.push([child, 0]);
        }
        continue;
      }
      stack.pop();
      if (wanted.has(t) || inputs.some((c) => needed.has(c))) needed.add(t);
      order.push(t);
    }
  };
  if (loss.requiresGrad) visit(loss);

  // Gradient slots, with a count of the slots referencing each gradient tensor, since backward functions may
  // return their gradOut itself (add) or a view of it; a tensor is freed when no slot or result holds it.
  const slot = new Map<Tensor, Tensor>();
  const refs = new Map<Tensor, number>();
  const pinned = new Set<Tensor>();
  const hold = (g: Tensor): void => void refs.set(g, (refs.get(g) ?? 0) + 1);
  const drop = (g: Tensor): void => {
    const n = (refs.get(g) ?? 0) - 1;
    if (n > 0) refs.set(g, n);
    else {
      refs.delete(g);
      if (!pinned.has(g)) g.dispose();
    }
  };

  const seed = opts.gradOutput ?? Tensor.full(loss.shape, 1, loss.dtype);
  if (opts.gradOutput) pinned.add(seed);
  if (needed.has(loss)) {
    slot.set(loss, seed);
    hold(seed);
  }

  for (let k = order.length - 1; k >= 0; k--) {
    const t = order[k]!;
    const node = t.node;
    const g = slot.get(t);
    if (!node || g === undefined || !needed.has(t)) continue;
    const needs = node.inputs.map((x) => needed.has(x));
    const gins = node.backward(g, needs);
    for (let i = 0; i < node.inputs.length; i++) {
      const x = node.inputs[i]!;
      const gi = gins[i];
      if (!needs[i] || !gi) continue;
      const prev = slot.get(x);
      if (prev === undefined) {
        slot.set(x, gi);
        hold(gi);
      } else {
        const sum = addKernel(prev, gi);
        slot.set(x, sum);
        hold(sum);
        drop(prev);
        if (!refs.has(gi) && !pinned.has(gi) && gi !== g) gi.dispose();
      }
    }
    if (!wanted.has(t)) {
      slot.delete(t);
      drop(g);
    }
  }

  const out = params.map((p) => {
    const g = slot.get(p);
    if (!g) return Tensor.zeros(p.shape, p.dtype);
    // A gradient may be a view shared with another param's gradient; give each param its own tensor.
    if ((refs.get(g) ?? 0) > 1 || pinned.has(g)) return g.clone();
    return g;
  });
  for (const [t, g] of slot) if (!out.includes(g) && wanted.has(t)) drop(g);
  return out;
}
