/**
 * Gathers a run's unit files (OUT/methods/*.json, OUT/ablation.json, OUT/cost/*.json) into results.json (schema:
 * src/eval/report/results.ts) and writes the report (report.md, retention and cost plots as SVG and PNG). Units not
 * finished yet appear as not run, so a partial run still gives a truthful report.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { arch, cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import { openSafetensors } from "../io/safetensors.js";
import { readConfig } from "../mac/config.js";
import { weightsFolder } from "../mac/io.js";
import { type MethodResultInput, type ResultsInput, fillNotRun, writeReport } from "./report/index.js";
import type { MemoryAblation } from "../mac/ablation.js";
import type { ResultMethod } from "./report/results.js";
import { type EvalSpec, ablationFile, costFile, methodFile, runsAblation, units } from "./run.js";

const readJson = (file: string): Record<string, unknown> =>
  JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;

function git(args: string[]): string | null {
  try {
    return execFileSync("git", args, { stdio: ["ignore", "pipe", "ignore"] }).toString();
  } catch {
    return null;
  }
}

function checkpointStep(checkpoint: string): number | undefined {
  try {
    const r = openSafetensors(join(weightsFolder(checkpoint), "model.safetensors"));
    const step = Number(r.metadata.step);
    r.close();
    return Number.isInteger(step) && step > 0 ? step : undefined;
  } catch {
    return undefined;
  }
}

/** results.json's memory_ablation and memory_ablation_f1 from OUT/ablation.json, or a note on why they are absent. */
function collectAblation(
  spec: EvalSpec,
  out: string,
): Pick<ResultsInput, "memory_ablation" | "memory_ablation_f1"> & { note?: string } {
  if (!runsAblation(spec)) return {};
  const f = ablationFile(out);
  if (!existsSync(f)) return { note: "The memory ablation has not finished: rerun the same command to continue." };
  const r = readJson(f) as {
    status: string;
    reason?: string;
    losses: MemoryAblation;
    scores: Record<string, { em: number; f1: number }>;
    seconds: number;
    peak_rss_mb: number;
  };
  if (r.status !== "ok") return { note: `The memory ablation was not run: ${r.reason}.` };
  const ceiling = r.scores.in_context!.f1;
  return {
    memory_ablation: r.losses,
    memory_ablation_f1: {
      none: r.scores.none!,
      own_alone: r.scores.own_alone!,
      own_among_k: r.scores.own_among_k!,
      unrelated_k: r.scores.unrelated_k!,
      in_context: r.scores.in_context!,
      share_of_in_context: ceiling > 0 ? (100 * r.scores.own_among_k!.f1) / ceiling : null,
      predictions: "predictions/ablation.jsonl",
      seconds: r.seconds,
      peak_rss_mb: r.peak_rss_mb,
    },
  };
}

export const startedFile = (out: string): string => join(out, "started.json");

export function collectResults(spec: EvalSpec, out: string): ResultsInput {
  const methods: Partial<Record<ResultMethod, MethodResultInput>> = {};
  const retention: Partial<Record<ResultMethod, [number, number | null][]>> = {};
  const retentionF1: Partial<Record<ResultMethod, [number, number][]>> = {};
  let nDocs = 0;
  let nQuestions = 0;
  let setup: { initial_docs: number; n_questions: number } | undefined;
  for (const m of spec.methods) {
    const f = methodFile(out, m);
    if (!existsSync(f)) {
      methods[m] = { status: "not_run", reason: "not finished: rerun the same command to continue" };
      continue;
    }
    const r = readJson(f);
    const { name: _name, retention: curve, retention_f1: rawCurve, ...rest } = r;
    methods[m] = { ...rest, predictions: `predictions/${m}.jsonl` } as MethodResultInput;
    if (r.status === "not_run") delete (methods[m] as { predictions?: string }).predictions;
    if (Array.isArray(curve)) retention[m] = curve as [number, number | null][];
    if (Array.isArray(rawCurve)) retentionF1[m] = rawCurve as [number, number][];
    if (typeof r.n_docs === "number") nDocs = r.n_docs;
    if (typeof r.n_questions === "number") nQuestions = r.n_questions;
    if (typeof r.retention_start_docs === "number" && typeof r.retention_questions === "number")
      setup ??= { initial_docs: r.retention_start_docs, n_questions: r.retention_questions };
  }
  const points = units(spec, out)
    .filter((u) => u.id.startsWith("cost:"))
    .map((u) => {
      const [, n, mode] = u.id.split(":") as [string, string, "full" | "hierarchical"];
      const f = costFile(out, Number(n), mode);
      return existsSync(f)
        ? {
            status: "ok" as const,
            ...(readJson(f) as { entries: number; mode: "full"; ms: number; memory_mb: number }),
          }
        : { status: "not_run" as const, entries: Number(n), mode, reason: "not finished: rerun the same command" };
    });
  const config = readConfig(join(spec.checkpoint, "config.json"));
  const started = existsSync(startedFile(out))
    ? (readJson(startedFile(out)).started_at as string)
    : new Date().toISOString();
  // Remarks about the run written by hand (a JSON array of strings), e.g. what disturbed a measurement.
  const notesFile = join(out, "notes.json");
  const { note: ablationNote, ...ablation } = collectAblation(spec, out);
  const written = existsSync(notesFile) ? (JSON.parse(readFileSync(notesFile, "utf8")) as string[]) : [];
  const notes = ablationNote ? [...written, ablationNote] : written.length > 0 ? written : undefined;
  const commit = git(["rev-parse", "HEAD"])?.trim() ?? null;
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  return {
    n_docs: nDocs,
    n_questions: nQuestions,
    ...(notes ? { notes } : {}),
    methods: fillNotRun(methods, "not selected (--methods)"),
    retention,
    retention_f1: retentionF1,
    ...(setup ? { retention_setup: setup } : {}),
    aggregation_cost:
      points.length > 0
        ? { points, group_size: spec.groupSize, n_questions: 1 }
        : { status: "not_run", reason: "not selected (--no-cost, or no MAC method)" },
    ...ablation,
    meta: {
      command: spec.command,
      git_commit: commit && /^[0-9a-f]{40}$/.test(commit) ? commit : null,
      ...(status !== null ? { git_dirty: status.trim().length > 0 } : {}),
      started_at: started,
      finished_at: new Date().toISOString(),
      base_model: config.base,
      base_adapter: config.baseAdapter ?? null,
      checkpoint: spec.checkpoint,
      ...(checkpointStep(spec.checkpoint) !== undefined ? { checkpoint_step: checkpointStep(spec.checkpoint) } : {}),
      config: config as unknown as Record<string, unknown>,
      decoding: spec.decoding,
      machine: {
        platform: platform(),
        arch: arch(),
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model ?? "unknown",
        mem_gb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
        node: process.version,
        os_release: release(),
      },
      data: { file: spec.data, format: spec.format, split: spec.split },
      spec: spec as unknown as Record<string, unknown>,
      seed: spec.seed,
    },
  };
}

export async function assembleResults(spec: EvalSpec, out: string): Promise<string[]> {
  const { warnings } = await writeReport(out, collectResults(spec, out));
  return warnings;
}
