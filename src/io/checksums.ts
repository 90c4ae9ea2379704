/**
 * checksums.json: the sha256 of the files of a folder written by mac-lm (a checkpoint), recorded when they are
 * written and checked when they are read, so a damaged weights file is an error and not a silently different model.
 * A folder without checksums.json (written before it existed) is read unchecked.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";

export const CHECKSUMS_FILE = "checksums.json";

const sha256Of = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");

/** Records the sha256 of `files` (names in `dir`) in dir/checksums.json. */
export function writeChecksums(dir: string, files: readonly string[]): void {
  const sums = Object.fromEntries(files.map((f) => [f, sha256Of(join(dir, f))]));
  writeFileSync(join(dir, CHECKSUMS_FILE), JSON.stringify(sums, null, 2) + "\n");
}

/** Checks `file` (a name in `dir`) against dir/checksums.json when that records it; `fix` says what to do instead. */
export function verifyChecksum(dir: string, file: string, fix: string): void {
  const path = join(dir, CHECKSUMS_FILE);
  if (!existsSync(path)) return;
  let sums: Record<string, unknown>;
  try {
    sums = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new MacLmError("MACLM_BAD_CHECKPOINT", `${path}: not readable JSON (${(e as Error).message}); ${fix}`);
  }
  const want = sums[file];
  if (typeof want !== "string") return;
  const got = sha256Of(join(dir, file));
  if (got !== want)
    throw new MacLmError(
      "MACLM_CHECKSUM_MISMATCH",
      `${join(dir, file)} is damaged: its sha256 is ${got}, ${CHECKSUMS_FILE} records ${want}; ${fix}`,
    );
}
