/**
 * What the benchmarks and profilers in dev/bench share: statistics, the Python reference server client (one JSON
 * request per line on stdin, one reply per line on stdout), and a per-kernel timer for the profilers.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { kernels } from "../../src/tensor/index.js";
import { registerKernels } from "../../src/tensor/backend.js";

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** A Python reference server (dev/bench/SCRIPT): failures are replies ({error}), never exceptions. */
export class PythonReference {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private lines: AsyncIterableIterator<string> | null = null;
  failure: string | null = null;

  constructor(
    private readonly script: string,
    private readonly env: Record<string, string> = {},
  ) {}

  start(): void {
    const path = join(dirname(fileURLToPath(import.meta.url)), this.script);
    try {
      this.proc = spawn(process.env.PYTHON ?? "python3", [path], {
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, ...this.env },
      });
      this.proc.on("error", (e) => (this.failure = String(e)));
      this.proc.stderr.on("data", () => undefined);
      this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    } catch (e) {
      this.failure = String(e);
    }
  }

  async ask(req: object): Promise<Record<string, unknown>> {
    if (!this.proc || !this.lines || this.failure) return { error: this.failure ?? "python reference not running" };
    this.proc.stdin.write(JSON.stringify(req) + "\n");
    const next = await this.lines.next();
    if (next.done) {
      this.failure = "python reference exited";
      return { error: this.failure };
    }
    return JSON.parse(next.value) as Record<string, unknown>;
  }

  stop(): void {
    this.proc?.stdin.end();
  }
}

export interface KernelStat {
  n: number;
  ms: number;
}

/**
 * Wraps every registered CPU kernel with a timer (binary ops per operator); returns the live statistics table,
 * keyed by kernel name. For the profilers, never for a benchmark of record.
 */
export function profileKernels(): Map<string, KernelStat> {
  const k = kernels("cpu") as unknown as Record<string, (...a: unknown[]) => unknown>;
  const stats = new Map<string, KernelStat>();
  const wrapped: Record<string, unknown> = {};
  for (const name of Object.keys(k)) {
    const f = k[name]!;
    wrapped[name] = (...a: unknown[]) => {
      const t0 = process.hrtime.bigint();
      const r = f(...a);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const key = name === "binary" ? `binary.${String(a[0])}` : name;
      const s = stats.get(key) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += ms;
      stats.set(key, s);
      return r;
    };
  }
  registerKernels("cpu", wrapped);
  return stats;
}
