/**
 * MAC checkpoints for inference: a folder with config.json (the MacConfig) and model.safetensors (the trainable
 * parameters, float32 or float16). A training run folder (config.json + checkpoints/LATEST) is accepted too.
 * The base LM and encoders named in the config are resolved from the model cache.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, isAbsolute, join } from "node:path";
import { MacLmError } from "../errors.js";
import { VERIFIED_FILE, sha256File } from "../hub/cache.js";
import { writeChecksums } from "../io/checksums.js";
import { resolveModel } from "../hub/pull.js";
import { openSafetensors, saveSafetensors } from "../io/safetensors.js";
import { buildMac, type BuildOptions } from "./build.js";
import { type MacConfig, baseAdapterPath, configModels, readConfig } from "./config.js";
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
  const config = readConfig(cfg);
  const mac = await buildMac(config, { ...opts, baseAdapter: baseAdapterPath(config, dir) });
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
  const config = readConfig(join(runDir, "config.json"));
  const adapter = baseAdapterPath(config, runDir);
  if (adapter !== null && config.baseAdapter !== undefined && !isAbsolute(config.baseAdapter))
    copyFileSync(adapter, join(outDir, config.baseAdapter));
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
  writeChecksums(outDir, [
    "model.safetensors",
    ...(config.baseAdapter !== undefined && !isAbsolute(config.baseAdapter) ? [config.baseAdapter] : []),
  ]);
  return outDir;
}

/**
 * A short fingerprint of a checkpoint's own files (config + trainable weights). Banks made before fingerprints
 * covered the base models recorded this one; see macFingerprint.
 */
export function checkpointFingerprint(dir: string): string {
  const h = createHash("sha256");
  h.update(readFileSync(join(dir, "config.json")));
  h.update(readFileSync(join(weightsFolder(dir), "model.safetensors")));
  // The base LM's adapter changes every entry the LM computes; checkpoints without one keep their old fingerprint.
  const adapter = baseAdapterPath(readConfig(join(dir, "config.json")), dir);
  if (adapter !== null) h.update(readFileSync(adapter));
  return h.digest("hex").slice(0, 16);
}

/** The models (registry names or paths) whose weights a checkpoint's memory entries and answers depend on. */
export function dependentModels(config: MacConfig): { role: string; model: string }[] {
  const [base, ...own] = configModels(config);
  return [{ role: "base", model: base! }, ...own.map((model) => ({ role: "amortizer", model }))];
}

/**
 * sha256 of every file a model consists of: the manifest's (resolveModel has verified the files against it), else
 * the files' own (a .gguf file given by path, or the top-level files of a model folder given by path).
 */
async function modelDigest(nameOrPath: string, cacheDir: string | undefined): Promise<string> {
  const r = await resolveModel(nameOrPath, { cacheDir });
  const files: [string, string][] = [];
  if (r.manifest !== null) for (const f of r.manifest.files) files.push([f.path, f.sha256]);
  else if (r.weights !== null && existsSync(nameOrPath) && statSync(nameOrPath).isFile())
    files.push([basename(r.weights), await sha256File(r.weights)]);
  else
    for (const f of readdirSync(r.dir, { withFileTypes: true }))
      if (f.isFile() && f.name !== VERIFIED_FILE) files.push([f.name, await sha256File(join(r.dir, f.name))]);
  files.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash("sha256").update(JSON.stringify(files)).digest("hex");
}

/**
 * The fingerprint a memory bank records: the checkpoint's config and weights and every model its entries and answers
 * depend on (base LM, amortizer encoder or LM), so a bank is refused when any of them changed. Resolving the models
 * verifies cached files against their sha256 on the way. Loads no model.
 */
export async function macFingerprint(dir: string, opts: BuildOptions = {}): Promise<string> {
  const cfg = join(dir, "config.json");
  if (!existsSync(cfg))
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${dir}: no config.json (not a MAC checkpoint or run folder)`);
  const h = createHash("sha256").update("mac-lm fingerprint 2\n").update(checkpointFingerprint(dir));
  for (const { role, model } of dependentModels(readConfig(cfg)))
    h.update(`\n${role}:${await modelDigest(model, opts.cacheDir)}`);
  return h.digest("hex").slice(0, 16);
}

/**
 * Checks that `bank` was made with checkpoint `dir` and the models it depends on. A bank from before fingerprints
 * covered the base models (its fingerprint is the checkpoint's alone) is accepted and reported as "legacy".
 */
export function checkBankFingerprint(
  bank: { path: string; config: { modelFingerprint: string | null } },
  dir: string,
  fingerprint: string,
): "ok" | "legacy" {
  const stored = bank.config.modelFingerprint;
  if (stored === fingerprint) return "ok";
  if (stored !== null && stored === checkpointFingerprint(dir)) return "legacy";
  throw new MacLmError(
    "MACLM_CONFIG_MISMATCH",
    `memory bank ${bank.path} was made with another checkpoint or other base models than ${dir} and the models it ` +
      `uses now (bank fingerprint ${stored ?? "(none)"}, now ${fingerprint}); its entries would give wrong answers. ` +
      `Use the checkpoint and models it was made with, or adapt the documents into a new bank (--bank NEW_DIR)`,
  );
}
