/**
 * Training checkpoints of the trainable parts only (the frozen base LM is never saved):
 *
 *   <dir>/step-000123/model.safetensors      trainable parameters, by name
 *   <dir>/step-000123/optimizer.safetensors  AdamW m and v (m.<i>, v.<i>)
 *   <dir>/step-000123/state.json             step, data cursor, dropout counter, optimizer scalars, history
 *   <dir>/LATEST                             the name of the newest complete checkpoint
 *
 * A checkpoint is written into a temporary folder and renamed into place, and LATEST is replaced atomically
 * afterwards, so a crash at any moment leaves the previous checkpoint intact and LATEST pointing at a complete one.
 */
import {
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../../errors.js";
import { verifyChecksum, writeChecksums } from "../../io/checksums.js";
import { openSafetensors, saveSafetensors } from "../../io/safetensors.js";
import type { Module } from "../../nn/module.js";
import type { AdamW, AdamWState } from "../../tensor/index.js";

export interface TrainState {
  step: number;
  /** Rows of the training stream consumed so far (the data cursor). */
  cursor: number;
  dropoutSeed: number;
  optimizer: Omit<AdamWState, "m" | "v">;
  history: { step: number; loss: number; lr: number; gradNorm: number }[];
  evals: { step: number; [metric: string]: number }[];
}

function writeFileDurable(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  const fd = openSync(tmp, "r");
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  fsyncSync(fd);
  closeSync(fd);
}

export function saveCheckpoint(dir: string, model: Module, opt: AdamW, state: TrainState, keep = 2): string {
  mkdirSync(dir, { recursive: true });
  const name = `step-${String(state.step).padStart(7, "0")}`;
  const tmp = join(dir, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  saveSafetensors(join(tmp, "model.safetensors"), new Map(model.trainableParameters()));
  const os = opt.stateDict();
  const tensors = new Map<string, import("../../tensor/index.js").Tensor>();
  os.m.forEach((t, i) => tensors.set(`m.${i}`, t));
  os.v.forEach((t, i) => tensors.set(`v.${i}`, t));
  saveSafetensors(join(tmp, "optimizer.safetensors"), tensors);
  writeChecksums(tmp, ["model.safetensors", "optimizer.safetensors"]);
  const { m: _m, v: _v, ...scalars } = os;
  writeFileDurable(join(tmp, "state.json"), JSON.stringify({ ...state, optimizer: scalars }, null, 1));
  fsyncDir(tmp);
  const final = join(dir, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  fsyncDir(dir);
  writeFileDurable(join(dir, "LATEST"), name + "\n");
  // Drop older checkpoints beyond `keep`.
  const all = readdirSync(dir)
    .filter((f) => /^step-\d+$/.test(f))
    .sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep)))
    rmSync(join(dir, old), { recursive: true, force: true });
  return final;
}

/** The newest complete checkpoint folder under `dir`, or null. */
export function latestCheckpoint(dir: string): string | null {
  const f = join(dir, "LATEST");
  if (!existsSync(f)) return null;
  const p = join(dir, readFileSync(f, "utf8").trim());
  return existsSync(join(p, "state.json")) ? p : null;
}

/** Loads trainable parameters into `model` (strict: every trainable name present, shapes equal). */
export function loadTrainable(model: Module, ckptDir: string): void {
  verifyChecksum(ckptDir, "model.safetensors", "use an intact copy of the checkpoint (or an earlier step of its run)");
  const r = openSafetensors(join(ckptDir, "model.safetensors"));
  try {
    const own = model.trainableParameters();
    for (const [name, t] of own) {
      if (!r.has(name)) throw new MacLmError("MACLM_BAD_CHECKPOINT", `${ckptDir}: model.safetensors lacks ${name}`);
      const src = r.load(name, { dtype: t.dtype });
      if (src.size !== t.size)
        throw new MacLmError("MACLM_BAD_CHECKPOINT", `${ckptDir}: ${name} has ${src.size} values, the model ${t.size}`);
      t.data.set(src.data);
      src.dispose();
    }
  } finally {
    r.close();
  }
}

/** Restores the model, the optimizer and returns the training state of a checkpoint. */
export function loadCheckpoint(ckptDir: string, model: Module, opt: AdamW): TrainState {
  loadTrainable(model, ckptDir);
  verifyChecksum(ckptDir, "optimizer.safetensors", "delete this checkpoint folder to resume from the one before it");
  const state = JSON.parse(readFileSync(join(ckptDir, "state.json"), "utf8")) as TrainState;
  const r = openSafetensors(join(ckptDir, "optimizer.safetensors"));
  try {
    const n = state.optimizer.step.length;
    const m = Array.from({ length: n }, (_, i) => r.load(`m.${i}`));
    const v = Array.from({ length: n }, (_, i) => r.load(`v.${i}`));
    opt.loadStateDict({ ...state.optimizer, m, v });
    for (const t of [...m, ...v]) t.dispose();
  } finally {
    r.close();
  }
  return state;
}
