/**
 * Output folders that mac-lm owns. `train`, `eval` and `adapt` write only into a folder that is empty (or absent)
 * or that mac-lm made for the same kind of output: a marker file, mac-lm.json, records what the folder holds and
 * the settings that made it, so a rerun resumes there and nothing another tool wrote is ever replaced or appended to.
 *
 * Folders made before the marker existed are recognised by the file their kind always wrote first (a training run's
 * config.json, an eval's spec.json, a bank's bank.sqlite) and are given a marker on their next use.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";

export const MARKER_FILE = "mac-lm.json";

export type OutputKind = "training run" | "eval run" | "memory bank";

export interface FolderMarker {
  kind: OutputKind;
  createdAt: string;
  /** What made the folder (the command line, for a person reading the marker). */
  command: string;
  /** Settings that must stay the same for a rerun to resume here (compared by claimFolder). */
  settings: Record<string, unknown>;
}

export interface ClaimOptions {
  kind: OutputKind;
  /** Settings recorded in a new marker and compared with an existing one's (same keys, JSON-equal values). */
  settings: Record<string, unknown>;
  /** A file that an older mac-lm always wrote into this kind of folder (a folder holding it is adopted). */
  legacyFile: string;
  /** What the user should run to start over, e.g. "use another --out or delete it" (appended to refusals). */
  startOver: string;
  command?: string;
}

const article = (kind: string): string => (/^[aeiou]/.test(kind) ? "an" : "a");

function readMarker(file: string): FolderMarker {
  try {
    const m = JSON.parse(readFileSync(file, "utf8")) as FolderMarker;
    if (typeof m.kind !== "string" || m.settings === null || typeof m.settings !== "object")
      throw new Error("missing kind or settings");
    return m;
  } catch (e) {
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${file}: not a valid mac-lm folder marker (${(e as Error).message}); it marks its folder as made by mac-lm, so fix or delete it`,
    );
  }
}

function writeMarker(dir: string, marker: FolderMarker): void {
  const tmp = join(dir, `${MARKER_FILE}.tmp-${process.pid}`);
  writeFileSync(tmp, JSON.stringify(marker, null, 1) + "\n");
  renameSync(tmp, join(dir, MARKER_FILE));
}

/**
 * Makes `dir` ready for output of `kind`: creates it (and a marker) when absent or empty, accepts it when its marker
 * says it holds the same kind with the same settings (or it is a folder of that kind from before markers), and
 * refuses anything else with a message naming the folder, what it holds and how to start over.
 * Returns the marker and whether the folder was new.
 */
export function claimFolder(dir: string, o: ClaimOptions): { marker: FolderMarker; fresh: boolean } {
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${dir} is a file, not a folder: give the path of a folder for the ${o.kind}`,
    );
  mkdirSync(dir, { recursive: true });
  const markerPath = join(dir, MARKER_FILE);
  const fresh: FolderMarker = {
    kind: o.kind,
    createdAt: new Date().toISOString(),
    command: o.command ?? `mac-lm ${process.argv.slice(2).join(" ")}`,
    settings: o.settings,
  };
  if (existsSync(markerPath)) {
    const m = readMarker(markerPath);
    if (m.kind !== o.kind)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${dir} holds a mac-lm ${m.kind}, not ${article(o.kind)} ${o.kind} (see ${markerPath}); ${o.startOver}`,
      );
    for (const [key, value] of Object.entries(o.settings))
      if (key in m.settings && JSON.stringify(m.settings[key]) !== JSON.stringify(value))
        throw new MacLmError(
          "MACLM_CONFIG_MISMATCH",
          `${dir} holds ${article(o.kind)} ${o.kind} made with other settings (its ${key} was ${JSON.stringify(m.settings[key])}, now ${JSON.stringify(value)}); rerun with the same settings to resume, or ${o.startOver}`,
        );
    const missing = Object.keys(o.settings).filter((k) => !(k in m.settings));
    if (missing.length > 0) writeMarker(dir, { ...m, settings: { ...o.settings, ...m.settings } });
    return { marker: m, fresh: false };
  }
  const entries = readdirSync(dir).filter((n) => !n.startsWith(`${MARKER_FILE}.tmp-`));
  if (entries.length > 0 && !entries.includes(o.legacyFile)) {
    const shown = entries.slice(0, 4).join(", ") + (entries.length > 4 ? `, … (${entries.length} entries)` : "");
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${dir} is not empty and was not made by mac-lm (it holds ${shown}); mac-lm writes ${article(o.kind)} ${o.kind} only into an empty or new folder, so that nothing else is replaced: give another folder`,
    );
  }
  writeMarker(dir, fresh);
  return { marker: fresh, fresh: entries.length === 0 };
}
