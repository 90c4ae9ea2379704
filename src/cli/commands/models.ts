/** `mac-lm models`: the cache's models (and with --all, the registry's). */
import { cacheDir, listCachedModels } from "../../hub/cache.js";
import { MODELS } from "../../hub/pull.js";
import type { CliIO } from "../main.js";
import { formatBytes } from "./progress.js";

export interface ModelsCommandOptions {
  all?: boolean;
  json?: boolean;
  cache?: string;
}

interface Row {
  name: string;
  status: "pulled" | "incomplete" | "not pulled";
  source: string;
  format: string;
  size: string;
  dir: string;
  description: string;
}

export async function run(opts: ModelsCommandOptions, io: CliIO): Promise<void> {
  const cached = await listCachedModels(opts.cache);
  const rows: Row[] = cached.map((m) => ({
    name: m.name,
    status: m.complete ? "pulled" : "incomplete",
    source: m.manifest?.origin ?? "",
    format: m.manifest?.format ?? "",
    size: formatBytes(m.bytes),
    dir: m.dir,
    description: MODELS[m.name]?.description ?? "",
  }));
  if (opts.all)
    for (const spec of Object.values(MODELS))
      if (!cached.some((m) => m.name === spec.name))
        rows.push({
          name: spec.name,
          status: "not pulled",
          source: `${spec.hub.repo}${spec.pypi ? ` | pypi:${spec.pypi.package}==${spec.pypi.version}` : ""}`,
          format: "",
          size: "",
          dir: "",
          description: spec.description,
        });

  if (opts.json) {
    io.stdout.write(`${JSON.stringify({ cache: cacheDir(opts.cache), models: rows }, null, 2)}\n`);
    return;
  }
  io.stderr.write(`cache: ${cacheDir(opts.cache)}\n`);
  if (rows.length === 0) {
    io.stderr.write("no models yet: `mac-lm pull <name>` (see `mac-lm models --all`)\n");
    return;
  }
  const cols: (keyof Row)[] = ["name", "status", "format", "size", "source"];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(width[i]!))
      .join("  ")
      .trimEnd();
  io.stdout.write(`${line(cols.map((c) => c.toUpperCase()))}\n`);
  for (const r of rows) io.stdout.write(`${line(cols.map((c) => r[c]))}\n`);
}
