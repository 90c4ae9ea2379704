/**
 * A LoRA adapter of the base LM shared by every question (peft's LoraModel with one fixed update): low-rank updates
 * of the attention projections, A (1, r, in) and B (1, out, r) per layer and role, scaling = alpha / r. It is applied
 * either as a modulation (training: `adapterModulation`, gradients reach A and B) or merged into the weights once at
 * load (`mergeLoraAdapter`), after which the model is simply a different base LM for every caller.
 *
 * File format: one safetensors file, tensors `layers.{l}.{role}.a|b`, metadata rank, alpha, targets, numLayers.
 */
import { MacLmError } from "../errors.js";
import { openSafetensors, saveSafetensors } from "../io/safetensors.js";
import type { Linear } from "../nn/layers.js";
import { Tensor } from "../tensor/index.js";
import { rand } from "../tensor/random.js";
import { GPT2LMHeadModel } from "./gpt2/model.js";
import { LlamaForCausalLM } from "./llama/model.js";
import { mergeLora } from "./lora.js";
import type { CausalLM, LayerLora, LoraDelta, LoraTarget, Modulation } from "./types.js";

export const LORA_TARGETS: readonly LoraTarget[] = ["q", "k", "v", "o"];

export interface LoraAdapterSpec {
  rank: number;
  alpha: number;
  targets: readonly LoraTarget[];
}

export interface LoraAdapter extends LoraAdapterSpec {
  /** One entry per layer of the model, each with a shared (batch 1) update per target. */
  layers: LayerLora[];
}

/** The weight a role updates and the rows of it the update covers (GPT-2's fused c_attn holds q, k, v). */
export function loraTargetWeight(
  model: CausalLM,
  layer: number,
  role: LoraTarget,
): { lin: Linear; row: number; out: number } {
  if (model instanceof GPT2LMHeadModel) {
    const attn = model.transformer.h[layer]!.attn;
    const C = model.hiddenSize;
    if (role === "o") return { lin: attn.c_proj, row: 0, out: C };
    return { lin: attn.c_attn, row: { q: 0, k: C, v: 2 * C }[role], out: C };
  }
  if (model instanceof LlamaForCausalLM) {
    const a = model.model.layers[layer]!.self_attn;
    const lin = { q: a.q_proj, k: a.k_proj, v: a.v_proj, o: a.o_proj }[role];
    return { lin, row: 0, out: lin.outFeatures };
  }
  throw new MacLmError("MACLM_BAD_ARGUMENT", `LoRA adapter: no LoRA targets for a ${model.modelType} model`);
}

function checkSpec(spec: LoraAdapterSpec, where: string): void {
  if (!Number.isInteger(spec.rank) || spec.rank < 1)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: rank ${spec.rank} must be a positive integer`);
  if (!(spec.alpha > 0)) throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: alpha ${spec.alpha} must be > 0`);
  const bad = spec.targets.find((t) => !LORA_TARGETS.includes(t));
  if (bad !== undefined || spec.targets.length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: targets must be some of ${LORA_TARGETS.join(", ")}`);
}

/** A fresh trainable adapter: A ~ U(±1/√in) (peft's kaiming default), B = 0, so it starts as the base LM exactly. */
export function createLoraAdapter(model: CausalLM, spec: LoraAdapterSpec, seed = 0): LoraAdapter {
  checkSpec(spec, "createLoraAdapter");
  const scaling = spec.alpha / spec.rank;
  let s = seed;
  const layers = Array.from({ length: model.numLayers }, (_, l) => {
    const layer: LayerLora = {};
    for (const role of spec.targets) {
      const { lin, out } = loraTargetWeight(model, l, role);
      const bound = 1 / Math.sqrt(lin.inFeatures);
      const a = rand([1, spec.rank, lin.inFeatures], { seed: s++, low: -bound, high: bound }).requireGrad();
      const b = Tensor.zeros([1, out, spec.rank]).requireGrad();
      a.name = `layers.${l}.${role}.a`;
      b.name = `layers.${l}.${role}.b`;
      layer[role] = { a, b, scaling };
    }
    return layer;
  });
  return { ...spec, layers };
}

/** The adapter's tensors in a fixed order (A then B, layer by layer, role by role). */
export function adapterParameters(adapter: LoraAdapter): Tensor[] {
  return adapter.layers.flatMap((layer) =>
    adapter.targets.flatMap((role) => {
      const d = layer[role]!;
      return [d.a, d.b];
    }),
  );
}

/** The adapter as a modulation of the model (the update applied on the fly; what training differentiates). */
export const adapterModulation = (adapter: LoraAdapter): Modulation => ({ lora: adapter.layers });

/** Writes the adapter (float16 halves the file; loading reads either as float32). */
export function saveLoraAdapter(
  file: string,
  adapter: LoraAdapter,
  info: Readonly<Record<string, string>> = {},
  opts: { dtype?: "float32" | "float16" } = {},
): void {
  const tensors = new Map<string, Tensor>();
  adapter.layers.forEach((layer, l) => {
    for (const role of adapter.targets) {
      tensors.set(`layers.${l}.${role}.a`, layer[role]!.a);
      tensors.set(`layers.${l}.${role}.b`, layer[role]!.b);
    }
  });
  saveSafetensors(
    file,
    tensors,
    {
      ...info,
      format: "mac-lm-lora-adapter",
      rank: String(adapter.rank),
      alpha: String(adapter.alpha),
      targets: adapter.targets.join(","),
      numLayers: String(adapter.layers.length),
    },
    { dtype: opts.dtype ?? "float32" },
  );
}

/** Reads an adapter for `model`, checking every tensor's shape against the model's projections. */
export function loadLoraAdapter(file: string, model: CausalLM): LoraAdapter {
  const r = openSafetensors(file);
  try {
    const meta = r.metadata;
    const bad = (why: string): MacLmError => new MacLmError("MACLM_BAD_CHECKPOINT", `LoRA adapter ${file}: ${why}`);
    if (meta.format !== "mac-lm-lora-adapter")
      throw bad(`metadata format is ${meta.format ?? "missing"}, not mac-lm-lora-adapter`);
    const spec: LoraAdapterSpec = {
      rank: Number(meta.rank),
      alpha: Number(meta.alpha),
      targets: (meta.targets ?? "").split(",").filter((t) => t !== "") as LoraTarget[],
    };
    try {
      checkSpec(spec, "metadata");
    } catch (e) {
      throw bad((e as Error).message);
    }
    if (Number(meta.numLayers) !== model.numLayers)
      throw bad(`made for ${meta.numLayers} layers, the base LM has ${model.numLayers}`);
    const scaling = spec.alpha / spec.rank;
    const layers = Array.from({ length: model.numLayers }, (_, l) => {
      const layer: LayerLora = {};
      for (const role of spec.targets) {
        const { lin, out } = loraTargetWeight(model, l, role);
        const want = { a: [1, spec.rank, lin.inFeatures], b: [1, out, spec.rank] };
        const d: Partial<LoraDelta> = { scaling };
        for (const part of ["a", "b"] as const) {
          const key = `layers.${l}.${role}.${part}`;
          if (!r.has(key)) throw bad(`tensor ${key} is missing`);
          const t = r.load(key, { dtype: "float32" });
          if (t.shape.join(",") !== want[part].join(","))
            throw bad(`${key} is (${t.shape.join(", ")}), the base LM needs (${want[part].join(", ")})`);
          d[part] = t;
        }
        layer[role] = d as LoraDelta;
      }
      return layer;
    });
    return { ...spec, layers };
  } finally {
    r.close();
  }
}

/** W ← W + scaling·B·A for every update, in place: the model becomes the adapted LM for every later call. */
export function mergeLoraAdapter(model: CausalLM, adapter: LoraAdapter): void {
  if (adapter.layers.length !== model.numLayers)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `mergeLoraAdapter: the adapter has ${adapter.layers.length} layers, the model ${model.numLayers}`,
    );
  adapter.layers.forEach((layer, l) => {
    for (const role of adapter.targets) {
      const { lin, row } = loraTargetWeight(model, l, role);
      if (lin.weight.dtype !== "float32")
        throw new MacLmError(
          "MACLM_DTYPE_MISMATCH",
          `mergeLoraAdapter: layer ${l} ${role} weight is ${lin.weight.dtype}`,
        );
      const merged = mergeLora(lin.weight, layer[role]!, row);
      lin.weight.data.set(merged.data);
      merged.dispose();
    }
  });
}

export function disposeLoraAdapter(adapter: LoraAdapter): void {
  for (const t of adapterParameters(adapter)) t.dispose();
}
