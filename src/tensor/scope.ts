/**
 * Deterministic release of tensor memory. Every tensor created while a scope is open belongs to the innermost
 * scope; when the scope's function returns, all its tensors are disposed except those in the returned value
 * (tensors, arrays, plain objects and Maps of them) and those passed to keep(). Kept and returned tensors move
 * to the enclosing scope, if any. Tensors created outside any scope are released by dispose() or, as a safety
 * net, by the garbage collector.
 *
 *   const loss = scope(() => model.loss(batch));   // every intermediate freed here
 */
import type { Tensor } from "./tensor.js";

type Frame = Set<Tensor>;
const stack: Frame[] = [];

/** Called by the Tensor constructor. */
export function track(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes `t` from every open scope: its owner (e.g. a Module holding parameters) disposes it explicitly. */
export function untrack<T extends Tensor>(t: T): T {
  for (const frame of stack) frame.delete(t);
  return t;
}

/** Exempts tensors from the current scope's cleanup (they move to the enclosing scope). */
export function keep<T extends Tensor>(t: T): T {
  const top = stack[stack.length - 1];
  if (top?.delete(t)) stack[stack.length - 2]?.add(t);
  return t;
}

function collect(value: unknown, out: Set<Tensor>, seen: Set<unknown>): void {
  if (value === null || typeof value !== "object" || seen.has(value)) return;
  seen.add(value);
  if ((value as { isTensor?: boolean }).isTensor === true) {
    out.add(value as Tensor);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, out, seen);
}

function close(frame: Frame, result: unknown): void {
  stack.pop();
  const survivors = new Set<Tensor>();
  collect(result, survivors, new Set());
  const parent = stack[stack.length - 1];
  for (const t of frame) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
}

export function scope<T>(fn: () => T): T {
  const frame: Frame = new Set();
  stack.push(frame);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    close(frame, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    close(frame, undefined);
    throw new Error("scope(): the function returned a Promise; use scopeAsync()");
  }
  close(frame, result);
  return result;
}

/**
 * Like scope() for async functions. Tensors created by other async work interleaved with this one would land
 * in this scope too, so keep concurrent async tensor work out of it.
 */
export async function scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
  const frame: Frame = new Set();
  stack.push(frame);
  const depth = stack.length;
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    if (stack.length === depth) close(frame, undefined);
    throw e;
  }
  if (stack.length !== depth) throw new Error("scopeAsync(): scopes were not closed in order");
  close(frame, result);
  return result;
}

/**
 * Waits one turn of the event loop. Long loops of tensor work must do this now and then: Node runs the finalizers of
 * freed tensors' ArrayBuffers only between turns, and until they run their small native records pin the C heap's
 * pages (malloc_trim cannot return them), so a loop that never yields grows its memory without bound.
 */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
