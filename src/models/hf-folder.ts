/**
 * A Hugging Face model folder (config.json + model.safetensors or a sharded index), as every family's loader reads
 * it: the config checked to be a JSON object of the expected model_type, then a model built from it and filled
 * from the safetensors one tensor at a time, freed again if filling fails.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import { openSafetensorsDir } from "../io/safetensors.js";
import type { Module } from "../nn/module.js";
import type { WeightSource } from "./checkpoint.js";
import type { Json } from "./config-fields.js";

export interface HfConfig {
  json: Json;
  /** The config file's path, for messages. */
  source: string;
}

/** DIR/config.json as a JSON object; with `modelType`, its model_type must be that (or absent). */
export function readHfConfig(dir: string, modelType?: string): HfConfig {
  const source = join(dir, "config.json");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(source, "utf8"));
  } catch (e) {
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${source}: cannot read config (${(e as Error).message})`, {
      cause: e,
    });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${source}: expected a JSON object`);
  const type = (json as Json).model_type;
  if (modelType !== undefined && type !== undefined && type !== modelType)
    throw new MacLmError(
      "MACLM_BAD_CHECKPOINT",
      `${source}: model_type ${JSON.stringify(type)} is not ${JSON.stringify(modelType)}`,
    );
  return { json: json as Json, source };
}

/** A model whose weights are about to be loaded: on a failed load its memory is freed before rethrowing. */
export function filled<M extends Module>(model: M, fill: (m: M) => void): M {
  try {
    fill(model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/**
 * `build(entry names)` filled by `fill` from DIR's safetensors (float32), in evaluation mode (dropout off) as
 * from_pretrained gives it, frozen when asked.
 */
export function loadSafetensorsFolder<M extends Module>(
  dir: string,
  build: (names: readonly string[]) => M,
  fill: (model: M, src: WeightSource) => void,
  opts: { freeze?: boolean } = {},
): M {
  const reader = openSafetensorsDir(dir);
  try {
    const src: WeightSource = {
      path: reader.path,
      names: reader.names,
      load: (n) => reader.load(n, { dtype: "float32" }),
    };
    const model = filled(build(reader.names), (m) => fill(m, src));
    model.eval();
    if (opts.freeze) model.freeze();
    return model;
  } finally {
    reader.close();
  }
}
