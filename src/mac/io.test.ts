/**
 * A checkpoint with a base adapter (config.baseAdapter): loadMac's base LM is the adapted one, the fingerprint a
 * bank records covers the adapter (and is unchanged for checkpoints without one), and exportMac carries the file.
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { expectClose } from "../../test/helpers/numeric.js";
import { writeChecksums } from "../io/checksums.js";
import { createLoraAdapter, disposeLoraAdapter, saveLoraAdapter } from "../models/adapter.js";
import { Tensor, scope, untrack } from "../tensor/index.js";
import { randn } from "../tensor/random.js";
import { loadBase } from "./build.js";
import { checkpointFingerprint, exportMac, loadMac } from "./io.js";

const root = mkdtempSync(join(tmpdir(), "mac-lm-io-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("a checkpoint with a base adapter", () => {
  test("loadMac merges it; the fingerprint covers it; exportMac copies it", async () => {
    const plainDir = join(root, "plain");
    cpSync("checkpoints/mac-extractive", plainDir, { recursive: true });
    const before = checkpointFingerprint(plainDir);
    expect(before).toBe(checkpointFingerprint("checkpoints/mac-extractive"));

    const dir = join(root, "adapted");
    cpSync(plainDir, dir, { recursive: true });
    const { model: plain } = await loadBase("smollm2-135m-instruct");
    const adapter = createLoraAdapter(plain, { rank: 2, alpha: 2, targets: ["v"] }, 3);
    adapter.layers.forEach((l, i) => l.v!.b.data.set(randn(l.v!.b.shape, { seed: i, std: 0.05 }).data));
    saveLoraAdapter(join(dir, "base-adapter.safetensors"), adapter);
    disposeLoraAdapter(adapter);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, baseAdapter: "base-adapter.safetensors" }));
    writeChecksums(dir, ["model.safetensors", "base-adapter.safetensors"]);

    const ids = untrack(Tensor.from(Int32Array.from([504, 3458, 282, 4649, 314]), [1, 5], "int32"));
    const mac = await loadMac(dir);
    const { model: adapted } = await loadBase("smollm2-135m-instruct", {
      baseAdapter: join(dir, "base-adapter.safetensors"),
    });
    scope(() => {
      const fromMac = mac.base.forward({ ids }).data;
      expectClose(fromMac, adapted.forward({ ids }).data, { rtol: 1e-5, atol: 1e-5 }, "loadMac's base");
      const p = plain.forward({ ids }).data;
      let maxDiff = 0;
      fromMac.forEach((x, i) => (maxDiff = Math.max(maxDiff, Math.abs(x - p[i]!))));
      expect(maxDiff).toBeGreaterThan(1e-3);
    });
    mac.dispose();
    mac.base.dispose();
    adapted.dispose();
    plain.dispose();
    ids.dispose();

    const withAdapter = checkpointFingerprint(dir);
    expect(withAdapter).not.toBe(before);
    const bytes = readFileSync(join(dir, "base-adapter.safetensors"));
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
    writeFileSync(join(dir, "base-adapter.safetensors"), bytes);
    expect(checkpointFingerprint(dir)).not.toBe(withAdapter);
    expect(checkpointFingerprint(plainDir)).toBe(before);

    // exportMac from a run-style folder (model.safetensors + state.json) carries the adapter into the export.
    const run = join(root, "run");
    cpSync(dir, run, { recursive: true });
    writeFileSync(join(run, "state.json"), JSON.stringify({ step: 1 }));
    copyFileSync(join(dir, "base-adapter.safetensors"), join(run, "base-adapter.safetensors"));
    const out = exportMac(run, join(root, "exported"));
    const sums = JSON.parse(readFileSync(join(out, "checksums.json"), "utf8")) as Record<string, string>;
    expect(Object.keys(sums).sort()).toEqual(["base-adapter.safetensors", "model.safetensors"]);
    expect(readFileSync(join(out, "base-adapter.safetensors")).equals(bytes)).toBe(true);
  });
});
