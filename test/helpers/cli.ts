// Runs the mac-lm command (bin/mac-lm.js) as a child process, as a user would, and collects its output.
import { spawn } from "node:child_process";
import { resolve } from "node:path";

export const BIN = resolve("bin/mac-lm.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `mac-lm ARGS` with extra environment variables; resolves when it exits (never rejects). */
export function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}
