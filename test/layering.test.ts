/**
 * The layering of docs/ARCHITECTURE.md, checked on the source: layers only look down. MAC never imports the
 * benchmark, the CLI, the server or the API above it; nothing above the engine calls kernels or native functions
 * directly (the engine's ops, optimizerStep and releaseFreedMemory are the way down).
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".test.ts"))
    .map((e) => join(e.parentPath, e.name));
}

const importsOf = (file: string): string[] =>
  [...readFileSync(file, "utf8").matchAll(/^(?:import|export)[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1]!);

describe("layering", () => {
  it("src/mac imports nothing from eval/, cli/, server/ or api/", () => {
    const bad = sources("src/mac").flatMap((f) =>
      importsOf(f)
        .filter((i) => /(^|\/)(eval|cli|server|api)\//.test(i))
        .map((i) => `${f}: ${i}`),
    );
    expect(bad).toEqual([]);
  });

  it("code above the engine never calls kernels or native functions directly", () => {
    const above = ["src/mac", "src/eval", "src/api", "src/server", "src/cli"].flatMap(sources);
    expect(above.length).toBeGreaterThan(50);
    const bad = above.flatMap((f) => {
      const text = readFileSync(f, "utf8");
      const hits = [
        ...importsOf(f).filter((i) => /tensor\/native\.js$/.test(i)),
        ...[...text.matchAll(/\b(native\.[a-zA-Z]+|kernels\()/g)].map((m) => m[1]!),
      ];
      return hits.map((h) => `${f}: ${h}`);
    });
    expect(bad).toEqual([]);
  });
});
