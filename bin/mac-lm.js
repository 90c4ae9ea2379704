#!/usr/bin/env node
// The mac-lm command: runs the compiled CLI (dist/cli/main.js, `npm run build`) when it exists, else the TypeScript
// source (src/cli/main.ts) through tsx. MACLM_FROM_SOURCE=1 forces the source even when dist/ exists.
import { existsSync } from "node:fs";
import process from "node:process";
import { URL, fileURLToPath } from "node:url";

const dist = new URL("../dist/cli/main.js", import.meta.url);
let entry = dist;
if (process.env.MACLM_FROM_SOURCE === "1" || !existsSync(fileURLToPath(dist))) {
  let register;
  try {
    ({ register } = await import("tsx/esm/api"));
  } catch {
    process.stderr.write(
      "mac-lm: dist/cli/main.js is missing and tsx is not installed: run `npm run build` (or `npm install`)\n",
    );
    process.exit(1);
  }
  register();
  entry = new URL("../src/cli/main.ts", import.meta.url);
}
const { main } = await import(entry.href);
await main(process.argv);
