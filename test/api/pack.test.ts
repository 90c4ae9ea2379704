/**
 * The package as a user gets it: `npm run build:ts`, `npm pack`, the tarball unpacked into a fresh project's
 * node_modules/mac-lm, and imported by name from JavaScript (and type-checked from TypeScript). No registry access:
 * the package's dependencies are this checkout's node_modules (linked), and its native addon is this checkout's
 * build (what the package's install script, node-gyp rebuild, would produce). With the real models in the cache,
 * the README's example (examples/use-from-code.mjs) runs against the installed package.
 */
import { execFile } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { cachedFile } from "../helpers/model-cache.js";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "mac-lm-pack-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const smol = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");
const mini = cachedFile("all-MiniLM-L6-v2", "model.safetensors");

describe("the packed package", () => {
  const project = join(dir, "project");
  const pkg = join(project, "node_modules", "mac-lm");

  it("packs, installs into a fresh project and imports by name (JS and TypeScript)", async () => {
    await run("npm", ["run", "build:ts"], { cwd: root });
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], {
      cwd: root,
      maxBuffer: 64 << 20,
    });
    const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.d.ts");
    expect(files).toContain("examples/use-from-code.mjs");
    expect(files.some((f) => f.endsWith(".test.js"))).toBe(false);

    mkdirSync(pkg, { recursive: true });
    await run("tar", ["-xzf", join(dir, info!.filename), "-C", pkg, "--strip-components=1"]);
    symlinkSync(join(root, "node_modules"), join(pkg, "node_modules"), "dir");
    mkdirSync(join(pkg, "build", "Release"), { recursive: true });
    copyFileSync(join(root, "build", "Release", "mac_lm.node"), join(pkg, "build", "Release", "mac_lm.node"));
    writeFileSync(
      join(project, "package.json"),
      JSON.stringify({ name: "user-project", type: "module", private: true }),
    );

    writeFileSync(
      join(project, "check.mjs"),
      `import * as lib from "mac-lm";
import { Mac, MemoryBank, Tensor, MacLmError } from "mac-lm";
import { join } from "node:path";
const bank = MemoryBank.open(join(process.argv[2], "bank.sqlite"), { T: 2, d: 3 });
bank.putDocument({ id: "a", text: "Alpha.", entries: Tensor.from([1, 2, 3, 4, 5, 6], [1, 2, 3]) });
bank.putDocument({ id: "b", text: "Bravo.", entries: Tensor.from([6, 5, 4, 3, 2, 1], [1, 2, 3]) });
bank.removeDocument("a");
let refused = "";
try { await Mac.load("/nowhere", { bank: "/nowhere", readonly: true }); } catch (e) { refused = e instanceof MacLmError ? e.code : String(e); }
console.log(JSON.stringify({
  mac: typeof Mac.load, exports: Object.keys(lib).length, docs: bank.documents().map((d) => d.id),
  text: bank.documentText("b"), refused,
}));
bank.close();
`,
    );
    const out = await run(process.execPath, [join(project, "check.mjs"), dir], { cwd: project });
    expect(JSON.parse(out.stdout)).toEqual({
      mac: "function",
      exports: expect.any(Number) as number,
      docs: ["b"],
      text: "Bravo.",
      refused: "MACLM_BAD_ARGUMENT",
    });
    // The entry point resolves to the package in the project, not to this checkout.
    const where = await run(
      process.execPath,
      ["-e", 'console.log(import.meta.resolve?.("mac-lm") ?? require.resolve("mac-lm"))', "--input-type=module"],
      { cwd: project },
    );
    expect(where.stdout.trim()).toContain(join("project", "node_modules", "mac-lm", "dist", "index.js"));

    // TypeScript users get the types by the package name.
    writeFileSync(
      join(project, "check.ts"),
      `import { Mac, type AskResult, type MacDocument, type Source } from "mac-lm";
export async function demo(checkpoint: string): Promise<Source[]> {
  const mac = await Mac.load(checkpoint, { bank: "bank/" });
  const docs: MacDocument[] = [{ id: "x", text: "Some text.", title: "X" }];
  await mac.adapt(docs);
  const r: AskResult = await mac.ask("What?", { hierarchical: 16, maxSources: 3 });
  for await (const piece of mac.stream("What?")) void piece.toUpperCase();
  await mac.forget("x");
  await mac.close();
  return r.sources;
}
`,
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          skipLibCheck: true,
          typeRoots: [join(root, "node_modules", "@types")],
          types: ["node"],
        },
        files: ["check.ts"],
      }),
    );
    await run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", project], {
      cwd: project,
    });
  }, 300_000);

  it.skipIf(!(smol.present && mini.present))(
    `runs the README's example against the installed package${smol.skipNote}${mini.skipNote}`,
    async () => {
      expect(existsSync(pkg), "the first test installs the package").toBe(true);
      copyFileSync(join(root, "examples", "use-from-code.mjs"), join(project, "example.mjs"));
      const { stdout } = await run(
        process.execPath,
        [join(project, "example.mjs"), join(pkg, "checkpoints", "mac-default"), join(dir, "example-bank")],
        { cwd: project },
      );
      expect(stdout).toMatch(/documents: quellin \(\d+ chars\), kelt \(\d+ chars\)/);
      expect(stdout).toMatch(/Q: Where was Zorvath Quellin born\?\nA: .*\(\d+ ms\)/);
      expect(stdout).toMatch(/% {2}Zorvath Quellin: Zorvath Quellin was a glassmaker born in Mirefall in 1843\./);
      expect(stdout).toMatch(/after forget: quellin\n/);
      expect(readFileSync(join(project, "example.mjs"), "utf8")).toContain('from "mac-lm"');
    },
    300_000,
  );
});
