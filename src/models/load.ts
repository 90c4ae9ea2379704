/**
 * loadCausalLM(path): a decoder-only base LM from disk, the family chosen by the files themselves:
 *   - a Hugging Face folder: config.json's model_type ("gpt2", "llama") + model.safetensors or a sharded index;
 *   - a .gguf file (or a folder holding a single .gguf and no config.json): general.architecture "llama"
 *     (e.g. SmolLM2), config from the llama.* metadata.
 * The model comes back in evaluation mode (dropout off), like Hugging Face's from_pretrained; call train() to turn
 * dropout on (MAC leaves GPT-2's dropout on during meta-training) and freeze() to keep its weights fixed.
 */
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import { openGguf } from "../io/gguf.js";
import type { Json } from "./config-fields.js";
import { filled, loadSafetensorsFolder, readHfConfig } from "./hf-folder.js";
import { gpt2ConfigFromJson } from "./gpt2/config.js";
import { GPT2LMHeadModel } from "./gpt2/model.js";
import { loadGPT2Weights } from "./gpt2/weights.js";
import { llamaConfigFromGguf, llamaConfigFromJson } from "./llama/config.js";
import { LlamaForCausalLM } from "./llama/model.js";
import { loadLlamaGguf, loadLlamaWeights } from "./llama/weights.js";
import type { CausalLM } from "./types.js";

export interface LoadCausalLMOptions {
  /** Freeze every weight (requiresGrad = false): gradients flow through the model, never into it. */
  freeze?: boolean;
}

/** config.json model_type -> the model built from that config and filled from the checkpoint. */
const FAMILIES: Record<string, (json: Json, source: string, dir: string) => CausalLM> = {
  gpt2: (json, source, dir) =>
    loadSafetensorsFolder(
      dir,
      () => new GPT2LMHeadModel(gpt2ConfigFromJson(json, source), { init: false }),
      loadGPT2Weights,
    ),
  llama: (json, source, dir) =>
    loadSafetensorsFolder(
      dir,
      () => new LlamaForCausalLM(llamaConfigFromJson(json, source), { init: false }),
      loadLlamaWeights,
    ),
};

/** The model families a config.json's model_type may name. */
export const CAUSAL_LM_TYPES = Object.keys(FAMILIES);

function isGguf(file: string): boolean {
  const fd = openSync(file, "r");
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString("latin1") === "GGUF";
  } finally {
    closeSync(fd);
  }
}

function fromGguf(file: string): CausalLM {
  const g = openGguf(file);
  return filled(new LlamaForCausalLM(llamaConfigFromGguf(g), { init: false }), (m) => loadLlamaGguf(m, g));
}

function fromHfFolder(dir: string): CausalLM {
  const { json, source } = readHfConfig(dir);
  const type = json.model_type;
  const build = typeof type === "string" && Object.hasOwn(FAMILIES, type) ? FAMILIES[type] : undefined;
  if (!build)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: model_type ${JSON.stringify(type)} is not a supported causal LM (${CAUSAL_LM_TYPES.join(", ")})`,
    );
  return build(json, source, dir);
}

/** Loads a Hugging Face folder or a GGUF file (see the module comment). */
export function loadCausalLM(path: string, opts: LoadCausalLMOptions = {}): CausalLM {
  if (!existsSync(path)) throw new MacLmError("MACLM_BAD_FILE", `${path}: no such file or folder`);
  let model: CausalLM;
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, "config.json"))) model = fromHfFolder(path);
    else {
      const ggufs = readdirSync(path).filter((f) => f.endsWith(".gguf"));
      if (ggufs.length !== 1)
        throw new MacLmError(
          "MACLM_BAD_CHECKPOINT",
          `${path}: no config.json, and ${ggufs.length} .gguf files (expected one)`,
        );
      model = fromGguf(join(path, ggufs[0]!));
    }
  } else if (isGguf(path)) model = fromGguf(path);
  else throw new MacLmError("MACLM_BAD_FILE", `${path}: neither a folder with config.json nor a GGUF file`);
  model.eval();
  if (opts.freeze) model.freeze();
  return model;
}
