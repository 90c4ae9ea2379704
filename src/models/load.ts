/**
 * loadCausalLM(path): a decoder-only base LM from disk, the family chosen by the files themselves:
 *   - a Hugging Face folder: config.json's model_type ("gpt2", "llama") + model.safetensors or a sharded index;
 *   - a .gguf file (or a folder holding a single .gguf and no config.json): general.architecture "llama"
 *     (e.g. SmolLM2), config from the llama.* metadata.
 * The model comes back in evaluation mode (dropout off), like Hugging Face's from_pretrained; call train() to turn
 * dropout on (MAC leaves GPT-2's dropout on during meta-training) and freeze() to keep its weights fixed.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import { openGguf } from "../io/gguf.js";
import { openSafetensorsDir } from "../io/safetensors.js";
import type { WeightSource } from "./checkpoint.js";
import type { Json } from "./config-fields.js";
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

/** A model whose weights are about to be loaded: on a failed load its memory is freed before rethrowing. */
function filled<M extends CausalLM>(model: M, fill: (m: M) => void): M {
  try {
    fill(model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** config.json model_type -> the model built from that config and filled from the checkpoint. */
const FAMILIES: Record<string, (json: Json, source: string, src: WeightSource) => CausalLM> = {
  gpt2: (json, source, src) =>
    filled(new GPT2LMHeadModel(gpt2ConfigFromJson(json, source), { init: false }), (m) => loadGPT2Weights(m, src)),
  llama: (json, source, src) =>
    filled(new LlamaForCausalLM(llamaConfigFromJson(json, source), { init: false }), (m) => loadLlamaWeights(m, src)),
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

function readConfig(dir: string): Json {
  const file = join(dir, "config.json");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${file}: cannot read config (${(e as Error).message})`, { cause: e });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${file}: expected a JSON object`);
  return json as Json;
}

function fromGguf(file: string): CausalLM {
  const g = openGguf(file);
  return filled(new LlamaForCausalLM(llamaConfigFromGguf(g), { init: false }), (m) => loadLlamaGguf(m, g));
}

function fromHfFolder(dir: string): CausalLM {
  const json = readConfig(dir);
  const source = join(dir, "config.json");
  const type = json.model_type;
  const build = typeof type === "string" && Object.hasOwn(FAMILIES, type) ? FAMILIES[type] : undefined;
  if (!build)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: model_type ${JSON.stringify(type)} is not a supported causal LM (${CAUSAL_LM_TYPES.join(", ")})`,
    );
  const reader = openSafetensorsDir(dir);
  try {
    return build(json, source, {
      path: reader.path,
      names: reader.names,
      load: (n) => reader.load(n, { dtype: "float32" }),
    });
  } finally {
    reader.close();
  }
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
