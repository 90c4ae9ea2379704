/**
 * Progress display for the commands (not a command itself): byte bars with rate and ETA on a terminal (cli-progress),
 * and one line per finished item when stderr is not a terminal (logs, CI, tests).
 */
import cliProgress from "cli-progress";
import type { CliIO } from "../main.js";

export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let x = n;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(x >= 100 ? 0 : 1)} ${units[i]}`;
}

export const formatSeconds = (s: number): string =>
  s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

/** One byte-progress bar at a time (files are fetched one after another). */
export class ByteBar {
  private bar: cliProgress.SingleBar | null = null;
  private t0 = 0;
  private start0 = 0;
  private label = "";
  private readonly tty: boolean;

  constructor(private readonly io: CliIO) {
    this.tty = io.stderr.isTTY === true;
  }

  /** Starts (or restarts) a bar for `label`; it is drawn once the total is known (start or first update). */
  start(label: string, total: number | null, done = 0): void {
    this.stop();
    this.label = label;
    this.t0 = performance.now();
    this.start0 = done;
    if (total !== null) this.draw(total, done);
  }

  private draw(total: number, done: number): void {
    if (!this.tty) return;
    this.bar = new cliProgress.SingleBar(
      {
        format: `{label} |{bar}| {percentage}% {done}/{size} {rate} ETA {eta_formatted}`,
        stream: this.io.stderr as NodeJS.WritableStream,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 40,
        fps: 8,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, done, { label: this.label, done: formatBytes(done), size: formatBytes(total), rate: "" });
  }

  /** `resumedFrom`: bytes that were on disk before this transfer (not counted in the rate). */
  update(done: number, total: number | null, resumedFrom = this.start0): void {
    if (total === null) return;
    this.start0 = resumedFrom;
    if (this.bar === null) {
      this.draw(total, done);
      if (this.bar === null) return;
    }
    const secs = (performance.now() - this.t0) / 1000;
    const rate = secs > 0.2 ? `${formatBytes((done - this.start0) / secs)}/s` : "";
    if (this.bar.getTotal() !== total) this.bar.setTotal(total);
    this.bar.update(done, { done: formatBytes(done), size: formatBytes(total), rate });
  }

  /** Stops the bar; `summary` is printed as a line (always, terminal or not). */
  stop(summary?: string): void {
    if (this.bar !== null) {
      this.bar.stop();
      this.bar = null;
    }
    if (summary !== undefined) this.io.stderr.write(`${summary}\n`);
  }

  /** Seconds since start(). */
  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  get current(): string {
    return this.label;
  }
}
