/**
 * `npx tsx dev/train/qa-checkpoint.ts --adapter runs/qa-adapter/adapter.safetensors --out checkpoints/NAME
 * [--from checkpoints/mac-extractive]`: a MAC checkpoint whose base LM is QA-tuned by a LoRA adapter
 * (dev/train/qa-adapter.ts): the --from checkpoint's config and trainable weights, the adapter beside them as
 * base-adapter.safetensors (float16), config.baseAdapter naming it, checksums.json over both files.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { writeChecksums } from "../../src/io/checksums.js";
import { openSafetensors } from "../../src/io/safetensors.js";
import { loadBase } from "../../src/mac/build.js";
import { parseConfig } from "../../src/mac/config.js";
import { loadLoraAdapter, saveLoraAdapter } from "../../src/models/adapter.js";

const { values: v } = parseArgs({
  options: {
    from: { type: "string", default: "checkpoints/mac-extractive" },
    adapter: { type: "string" },
    out: { type: "string" },
  },
});
if (!v.adapter || !v.out) throw new Error("give --adapter FILE and --out DIR");
if (existsSync(v.out) && readdirSync(v.out).length > 0) throw new Error(`${v.out} is not empty`);
mkdirSync(v.out, { recursive: true });
const config = parseConfig(JSON.parse(readFileSync(join(v.from!, "config.json"), "utf8")), v.from);
const { model } = await loadBase(config.base);
const adapter = loadLoraAdapter(v.adapter, model); // checked against the base LM it will be merged into
const meta = openSafetensors(v.adapter);
const { format: _f, rank: _r, alpha: _a, targets: _t, numLayers: _n, ...info } = meta.metadata;
meta.close();
saveLoraAdapter(join(v.out, "base-adapter.safetensors"), adapter, info, { dtype: "float16" });
copyFileSync(join(v.from!, "model.safetensors"), join(v.out, "model.safetensors"));
writeFileSync(
  join(v.out, "config.json"),
  JSON.stringify({ ...config, baseAdapter: "base-adapter.safetensors" }, null, 2) + "\n",
);
writeChecksums(v.out, ["model.safetensors", "base-adapter.safetensors"]);
console.log(`${v.out}: ${config.base} + base-adapter.safetensors (rank ${adapter.rank}, ${adapter.targets.join(",")})`);
