/**
 * MAC checkpoints for inference: a folder with config.json (the MacConfig) and model.safetensors (the trainable
 * parameters, float32 or float16). A training run folder (config.json + checkpoints/LATEST) is accepted too.
 * The base LM and encoders named in the config are resolved from the model cache.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import { openSafetensors, saveSafetensors } from "../io/safetensors.js";
import { buildMac, type BuildOptions } from "./build.js";
import { readConfig } from "./config.js";
import type { MacModel } from "./model.js";
import { latestCheckpoint, loadTrainable } from "./train/checkpoint.js";

/** The folder holding model.safetensors for a checkpoint or run folder. */
export function weightsFolder(dir: string): string {
  if (existsSync(join(dir, "model.safetensors"))) return dir;
  const latest = latestCheckpoint(join(dir, "checkpoints"));
  if (latest) return latest;
  throw new MacLmError(
    "MACLM_BAD_CHECKPOINT",
    `${dir}: no model.safetensors and no checkpoints/LATEST (not a MAC checkpoint or run folder)`,
  );
}

export async function loadMac(dir: string, opts: BuildOptions = {}): Promise<MacModel> {
  const cfg = join(dir, "config.json");
  if (!existsSync(cfg))
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${dir}: no config.json (not a MAC checkpoint or run folder)`);
  const mac = await buildMac(readConfig(cfg), opts);
  try {
    loadTrainable(mac, weightsFolder(dir));
  } catch (e) {
    mac.dispose();
    mac.base.dispose();
    throw e;
  }
  return mac.eval();
}

/** Copies a run's newest checkpoint into a self-contained inference checkpoint (optionally float16). */
export function exportMac(runDir: string, outDir: string, opts: { dtype?: "float32" | "float16" } = {}): string {
  const src = weightsFolder(runDir);
  mkdirSync(outDir, { recursive: true });
  copyFileSync(join(runDir, "config.json"), join(outDir, "config.json"));
  const r = openSafetensors(join(src, "model.safetensors"));
  const tensors = new Map(r.names.map((n) => [n, r.load(n)] as const));
  r.close();
  const state = JSON.parse(readFileSync(join(src, "state.json"), "utf8")) as { step: number };
  saveSafetensors(
    join(outDir, "model.safetensors"),
    tensors,
    { step: String(state.step) },
    { dtype: opts.dtype ?? "float16" },
  );
  for (const t of tensors.values()) t.dispose();
  return outDir;
}

/** A short fingerprint of a checkpoint's weights, recorded in memory banks so entries of other models are refused. */
export function checkpointFingerprint(dir: string): string {
  const h = createHash("sha256");
  h.update(readFileSync(join(dir, "config.json")));
  h.update(readFileSync(join(weightsFolder(dir), "model.safetensors")));
  return h.digest("hex").slice(0, 16);
}
