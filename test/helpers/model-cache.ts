/**
 * Where real (large, uncommitted) model files live for the tests that need them: the model cache of `mac-lm pull`
 * (src/hub/cache.ts: $MACLM_CACHE, else $XDG_CACHE_HOME/mac-lm, else ~/.cache/mac-lm). scripts/fetch-models.sh
 * fills it (CI runs it). Tests that need a file that is absent are skipped with a reason that names the file and
 * the script (never silently passed).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../../src/hub/cache.js";

/** Test fixtures name files by their original names; the cache keeps pulled models under models/<registry name>/. */
const LOCATIONS: [RegExp, (rest: string) => string[]][] = [
  [/^SmolLM2-135M-Instruct\.Q4_1\.gguf$/, (f) => ["models", "smollm2-135m-instruct", f]],
  [/^all-MiniLM-L6-v2\/(.+)$/, (f) => ["models", "all-minilm-l6-v2", f.slice("all-MiniLM-L6-v2/".length)]],
];

export const modelCacheDir = (): string => cacheDir();

export interface CachedFile {
  path: string;
  present: boolean;
  /** A test-name suffix that says why the test is skipped when the file is absent. */
  skipNote: string;
}

export function cachedFile(...parts: string[]): CachedFile {
  const rel = parts.join("/");
  const mapped = LOCATIONS.find(([re]) => re.test(rel));
  const path = join(modelCacheDir(), ...(mapped ? mapped[1](rel) : parts));
  const present = existsSync(path);
  if (!present)
    console.warn(`model cache: ${path} is absent, so the tests that need it are SKIPPED (run scripts/fetch-models.sh)`);
  return { path, present, skipNote: present ? "" : ` [SKIPPED: ${path} is absent; run scripts/fetch-models.sh]` };
}
