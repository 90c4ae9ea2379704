import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MARKER_FILE, claimFolder } from "./out-folder.js";

const dir = mkdtempSync(join(tmpdir(), "maclm-out-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const opts = {
  kind: "eval run" as const,
  settings: { data: "a.json" },
  legacyFile: "spec.json",
  startOver: "use another --out",
};

describe("output folders mac-lm owns", () => {
  it("claims a new or empty folder, writing a marker with the kind and settings; a rerun resumes there", () => {
    const a = join(dir, "new");
    expect(claimFolder(a, opts).fresh).toBe(true);
    const m = JSON.parse(readFileSync(join(a, MARKER_FILE), "utf8"));
    expect(m).toMatchObject({ kind: "eval run", settings: { data: "a.json" } });
    writeFileSync(join(a, "report.md"), "ours");
    expect(claimFolder(a, opts).fresh).toBe(false);
    const empty = join(dir, "empty");
    mkdirSync(empty);
    expect(claimFolder(empty, opts).fresh).toBe(true);
  });

  it("refuses a folder holding other files, another kind, other settings, or a file", () => {
    const foreign = join(dir, "foreign");
    mkdirSync(foreign);
    writeFileSync(join(foreign, "report.md"), "someone else's");
    expect(() => claimFolder(foreign, opts)).toThrow(
      `${foreign} is not empty and was not made by mac-lm (it holds report.md); mac-lm writes an eval run only into an empty or new folder`,
    );
    expect(existsSync(join(foreign, MARKER_FILE))).toBe(false);
    expect(readFileSync(join(foreign, "report.md"), "utf8")).toBe("someone else's");
    const a = join(dir, "new");
    expect(() => claimFolder(a, { ...opts, kind: "training run" })).toThrow(
      `${a} holds a mac-lm eval run, not a training run`,
    );
    expect(() => claimFolder(a, { ...opts, settings: { data: "b.json" } })).toThrow(
      `holds an eval run made with other settings (its data was "a.json", now "b.json"); rerun with the same settings to resume, or use another --out`,
    );
    writeFileSync(join(dir, "file"), "x");
    expect(() => claimFolder(join(dir, "file"), opts)).toThrow("is a file, not a folder");
  });

  it("adopts a folder of its kind from before markers (it holds the kind's legacy file)", () => {
    const old = join(dir, "old");
    mkdirSync(old);
    writeFileSync(join(old, "spec.json"), "{}");
    writeFileSync(join(old, "report.md"), "ours, older");
    expect(claimFolder(old, opts).fresh).toBe(false);
    expect(existsSync(join(old, MARKER_FILE))).toBe(true);
  });
});
