/**
 * Starts a real `mac-lm serve` process on a free loopback port, over the shipped checkpoint (`real`) or the tiny test
 * model (tiny-server.ts), and resolves with its URL once it prints "listening …". Used by the browser test and the
 * load test (dev/bench/serve.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const root = resolve(import.meta.dirname, "../..");

export function spawnServer(bank: string, opts: { real: boolean }): Promise<{ proc: ChildProcess; url: string }> {
  const args = opts.real
    ? [
        join(root, "bin", "mac-lm.js"),
        "serve",
        "-c",
        join(root, "checkpoints", "mac-default"),
        "-b",
        bank,
        "--port",
        "0",
      ]
    : ["--import", "tsx", join(root, "test", "server", "tiny-server.ts"), bank];
  return new Promise((done, fail) => {
    const proc = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr!.on("data", (b: Buffer) => {
      stderr += b.toString();
      process.stderr.write(b);
    });
    proc.on("exit", (code) => fail(new Error(`server exited (${code}) before listening: ${stderr}`)));
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      const m = /listening (?:on )?(http\S+)/.exec(line);
      if (m) done({ proc, url: m[1]! });
    });
  });
}
