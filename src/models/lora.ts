/**
 * Low-rank updates of frozen projections, batched per example (MAC generates them per question):
 *   y = x·Wᵀ + b + scaling · (x·Aᵀ)·Bᵀ,   x (B, T, in), A (B|1, r, in), B (B|1, out, r)
 * A batch dim of 1 shares the update across the batch (then it equals merging W + scaling·B·A, see mergeLora).
 * Models map the roles q/k/v/o to their own weights (GPT-2's fused c_attn: q/k/v update the thirds of its output).
 */
import { ShapeError, fmtShape } from "../errors.js";
import { type Tensor, add, matmul, noGrad, reshape, scale } from "../tensor/index.js";
import type { Linear } from "../nn/layers.js";
import type { LayerLora, LoraDelta, ModelGeometry, Modulation } from "./types.js";

function checkDelta(op: string, x: Tensor, d: LoraDelta, outFeatures: number): void {
  const { a, b } = d;
  const B = x.dim(0);
  const inF = x.dim(-1);
  const shapes = `x ${fmtShape(x.shape)}, A ${fmtShape(a.shape)}, B ${fmtShape(b.shape)}`;
  if (x.ndim !== 3) throw new ShapeError(op, `LoRA input must be (B, T, in): ${shapes}`);
  if (a.ndim !== 3 || b.ndim !== 3 || a.dim(2) !== inF || b.dim(1) !== outFeatures || a.dim(1) !== b.dim(2))
    throw new ShapeError(op, `LoRA A must be (B|1, r, ${inF}) and B (B|1, ${outFeatures}, r): ${shapes}`);
  if ((a.dim(0) !== 1 && a.dim(0) !== B) || (b.dim(0) !== 1 && b.dim(0) !== B))
    throw new ShapeError(op, `LoRA batch dims must be 1 or ${B}: ${shapes}`);
  if (!Number.isFinite(d.scaling)) throw new ShapeError(op, `LoRA scaling must be a finite number, got ${d.scaling}`);
}

/** scaling · (x·Aᵀ)·Bᵀ: x (B, T, in) -> (B, T, out). */
export function loraDelta(op: string, x: Tensor, d: LoraDelta, outFeatures: number): Tensor {
  checkDelta(op, x, d, outFeatures);
  const shared = (t: Tensor): Tensor => (t.dim(0) === 1 ? reshape(t, t.shape.slice(1)) : t); // (r, in) / (out, r)
  const xa = matmul(x, shared(d.a), { transB: true }); // (B, T, r)
  const xab = matmul(xa, shared(d.b), { transB: true }); // (B, T, out)
  return d.scaling === 1 ? xab : scale(xab, d.scaling);
}

/** y + delta(x) when an update is given, else y. */
export function withLora(op: string, y: Tensor, x: Tensor, d: LoraDelta | undefined): Tensor {
  return d ? add(y, loraDelta(op, x, d, y.dim(-1))) : y;
}

/** A frozen Linear with an optional low-rank update: x·Wᵀ + b (+ scaling·(x·Aᵀ)·Bᵀ). */
export function loraLinear(op: string, layer: Linear, x: Tensor, d: LoraDelta | undefined): Tensor {
  return withLora(op, layer.forward(x), x, d);
}

/** Checks that a modulation's LoRA list has one entry per layer; returns layer l's updates ({} without LoRA). */
export function loraLayers(op: string, g: ModelGeometry, mod: Modulation | undefined): readonly LayerLora[] {
  const lora = mod?.lora;
  if (!lora) return Array.from({ length: g.numLayers }, () => ({}));
  if (lora.length !== g.numLayers)
    throw new ShapeError(op, `modulation.lora has ${lora.length} layers, the model has ${g.numLayers}`);
  return lora;
}

/**
 * W + scaling·B·A for a shared (batch 1) update, as a new tensor (peft's merge): `rowOffset` places the update on
 * rows [rowOffset, rowOffset + out) of W (GPT-2's fused c_attn: 0 for q, C for k, 2C for v). No autograd.
 */
export function mergeLora(weight: Tensor, d: LoraDelta, rowOffset = 0): Tensor {
  const { a, b } = d;
  if (a.ndim !== 3 || b.ndim !== 3 || a.dim(0) !== 1 || b.dim(0) !== 1 || a.dim(1) !== b.dim(2))
    throw new ShapeError(
      "mergeLora",
      `a shared update needs A (1, r, in) and B (1, out, r), got A ${fmtShape(a.shape)}, B ${fmtShape(b.shape)}`,
    );
  const [out, inF] = weight.shape as [number, number];
  if (weight.ndim !== 2 || a.dim(2) !== inF || rowOffset < 0 || rowOffset + b.dim(1) > out)
    throw new ShapeError(
      "mergeLora",
      `weight ${fmtShape(weight.shape)} cannot take A ${fmtShape(a.shape)}, B ${fmtShape(b.shape)} at row ${rowOffset}`,
    );
  return noGrad(() => {
    const ba = matmul(reshape(b, b.shape.slice(1)), reshape(a, a.shape.slice(1))); // (out', in)
    const merged = weight.clone();
    const m = merged.data;
    const src = ba.data;
    for (let i = 0, j = rowOffset * inF; i < src.length; i++, j++) m[j] = m[j]! + d.scaling * src[i]!;
    ba.dispose();
    return merged;
  });
}
