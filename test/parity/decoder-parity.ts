/**
 * Shared checks of a decoder-only model against the fixtures of reference/dump_decoders.py (see its docstring
 * for what expected.safetensors holds): logits without and with a P-tuning v2 prefix, the loss with the prefix
 * and its gradients with respect to the prefix keys/values through the frozen model.
 */
import { expect } from "vitest";
import { openSafetensors } from "../../src/io/safetensors.js";
import type { CausalLM, LayerKV } from "../../src/models/types.js";
import { Tensor, concat, crossEntropy, grad, scope, slice, untrack } from "../../src/tensor/index.js";
import { expectClose } from "../helpers/numeric.js";

export const TOL = { rtol: 1e-4, atol: 2e-5 };

/** Largest |a − e| and largest |a − e| / max(|e|, 1e-3), for the report lines of a failing comparison. */
export function maxErrors(a: ArrayLike<number>, e: ArrayLike<number>): { abs: number; rel: number } {
  let abs = 0;
  let rel = 0;
  for (let i = 0; i < e.length; i++) {
    const d = Math.abs(a[i]! - e[i]!);
    abs = Math.max(abs, d);
    rel = Math.max(rel, d / Math.max(Math.abs(e[i]!), 1e-3));
  }
  return { abs, rel };
}

export interface Fixture {
  get(name: string): Tensor;
  P: number;
  close(): void;
}

export function openFixture(dir: string): Fixture {
  const r = openSafetensors(`${dir}/expected.safetensors`);
  const cache = new Map<string, Tensor>();
  return {
    get(name) {
      let t = cache.get(name);
      if (!t) {
        t = untrack(r.load(name)); // outlives the tests' scopes
        cache.set(name, t);
      }
      return t;
    },
    P: Number(r.metadata.P),
    close() {
      r.close();
      for (const t of cache.values()) t.dispose();
    },
  };
}

export function prefixOf(fx: Fixture, numLayers: number, requiresGrad = false): LayerKV[] {
  return Array.from({ length: numLayers }, (_, l) => {
    const k = fx.get(`prefix.${l}.k`).clone();
    const v = fx.get(`prefix.${l}.v`).clone();
    return { k: k.requireGrad(requiresGrad), v: v.requireGrad(requiresGrad) };
  });
}

export function checkLogits(model: CausalLM, fx: Fixture): void {
  scope(() => {
    const logits = model.forward({ ids: fx.get("ids"), attentionMask: fx.get("attention_mask") });
    expect(logits.shape).toEqual(fx.get("logits").shape);
    expectClose(logits.data, fx.get("logits").data, TOL, "logits");
  });
}

/** attention_mask extended by P ones, as MAC does before passing the prefix (B, P + T). */
export function prefixMask(fx: Fixture): Tensor {
  const mask = fx.get("attention_mask");
  return concat([Tensor.full([mask.dim(0), fx.P], 1), mask], 1);
}

export function checkPrefixLogits(model: CausalLM, fx: Fixture): void {
  scope(() => {
    const prefix = prefixOf(fx, model.numLayers);
    const logits = model.forward({ ids: fx.get("ids"), attentionMask: prefixMask(fx), modulation: { prefix } });
    expectClose(logits.data, fx.get("logits_prefix").data, TOL, "logits with prefix");
    for (const { k, v } of prefix) [k, v].forEach((t) => t.dispose());
  });
}

/** Hugging Face's causal-LM loss: CE(logits[:, t], labels[:, t + 1]) averaged over labels ≠ −100. */
export function causalLoss(logits: Tensor, labels: Tensor): Tensor {
  const Tn = logits.dim(1);
  return crossEntropy(slice(logits, 1, 0, Tn - 1), slice(labels, 1, 1));
}

export function checkPrefixGradients(model: CausalLM, fx: Fixture): void {
  model.freeze();
  scope(() => {
    const prefix = prefixOf(fx, model.numLayers, true);
    const logits = model.forward({ ids: fx.get("ids"), attentionMask: prefixMask(fx), modulation: { prefix } });
    const loss = causalLoss(logits, fx.get("labels"));
    expectClose(loss.data, fx.get("loss_prefix").data, TOL, "loss with prefix");
    const params = prefix.flatMap(({ k, v }) => [k, v]);
    const grads = grad(loss, params);
    prefix.forEach((_, l) => {
      expectClose(grads[2 * l]!.data, fx.get(`grad.prefix.${l}.k`).data, TOL, `d loss / d prefix[${l}].k`);
      expectClose(grads[2 * l + 1]!.data, fx.get(`grad.prefix.${l}.v`).data, TOL, `d loss / d prefix[${l}].v`);
    });
    // The frozen model got no gradient machinery for its weights.
    expect(model.trainableParameters()).toEqual([]);
    for (const p of params) p.dispose();
  });
}
