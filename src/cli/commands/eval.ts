/**
 * `mac-lm eval`: the benchmark (src/eval/run.ts). Without --checkpoint/--config it evaluates the shipped checkpoint
 * of the default configuration. Each method runs in a child process (`mac-lm eval --worker UNIT --out DIR`, hidden),
 * with a progress bar per phase; rerunning the same command resumes.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import cliProgress from "cli-progress";
import { MacLmError } from "../../errors.js";
import { ALL_METHODS, type EvalSpecInput, runEval } from "../../eval/run.js";
import type { MethodName } from "../../eval/methods/types.js";
import type { CliIO } from "../main.js";

export interface EvalCommandOptions {
  data?: string;
  out: string;
  config?: string;
  checkpoint?: string;
  format?: string;
  split?: string;
  methods?: string;
  decoding?: string;
  maxDocs?: number;
  batchSize?: number;
  lr?: number;
  prompt?: string;
  cost?: boolean;
  ablationQuestions?: number;
  ablationK?: number;
  worker?: string;
  reportOnly?: boolean;
  cache?: string;
}

/**
 * The checkpoint shipped in the package for the demo and the benchmark: the extractive memory, the one whose memory
 * carries the documents' content (results/training/extractive), over the base LM QA-tuned by a LoRA adapter that
 * every compared method shares (checkpoints/mac-extractive-qa at the package root; results/eval/qa-adapter).
 * checkpoints/mac-extractive (the same memory over the plain LM) and mac-default (the learned-latent MAC) ship beside it.
 */
export const SHIPPED_CHECKPOINT = fileURLToPath(new URL("../../../checkpoints/mac-extractive-qa", import.meta.url));

/** A progress bar per phase on a terminal; otherwise a line when a phase ends. */
function phaseProgress(io: CliIO, unit: string): (phase: string, done: number, total: number) => void {
  let bar: cliProgress.SingleBar | null = null;
  let current = "";
  let t0 = performance.now();
  return (phase, done, total) => {
    if (phase !== current) {
      bar?.stop();
      bar = null;
      current = phase;
      t0 = performance.now();
      if (io.stderr.isTTY)
        (bar = new cliProgress.SingleBar(
          {
            format: `${unit} ${phase} |{bar}| {value}/{total} {rate}/s ETA {eta_formatted}`,
            stream: io.stderr as NodeJS.WritableStream,
            etaBuffer: 20,
            barsize: 24,
          },
          cliProgress.Presets.shades_classic,
        )).start(total, 0, { rate: "0.0" });
    }
    const secs = (performance.now() - t0) / 1000;
    bar?.update(done, { rate: secs > 0 ? (done / secs).toFixed(1) : "0.0" });
    if (done >= total) {
      bar?.stop();
      bar = null;
      if (!io.stderr.isTTY) io.stderr.write(`${unit} ${phase}: ${total} in ${secs.toFixed(1)} s\n`);
      current = "";
    }
  };
}

export async function run(o: EvalCommandOptions, io: CliIO): Promise<void> {
  if (o.worker) {
    const { runWorker } = await import("../../eval/worker.js");
    await runWorker(o.worker, o.out, { progress: phaseProgress(io, o.worker) });
    return;
  }
  let fromFile: Partial<EvalSpecInput> = {};
  if (o.config) {
    if (!existsSync(o.config)) throw new MacLmError("MACLM_BAD_ARGUMENT", `eval: --config ${o.config} does not exist`);
    try {
      fromFile = JSON.parse(readFileSync(o.config, "utf8")) as Partial<EvalSpecInput>;
    } catch (e) {
      throw new MacLmError("MACLM_BAD_FILE", `${o.config}: not readable JSON (${(e as Error).message})`);
    }
  }
  const data = o.data ?? fromFile.data;
  if (!data) throw new MacLmError("MACLM_BAD_ARGUMENT", "eval: --data FILE is required");
  const checkpoint = o.checkpoint ?? fromFile.checkpoint ?? SHIPPED_CHECKPOINT;
  if (!existsSync(checkpoint))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `eval: checkpoint ${checkpoint} does not exist`);
  const spec: EvalSpecInput = {
    ...fromFile,
    data,
    checkpoint,
    cache: o.cache ?? fromFile.cache,
    methods: o.methods
      ? (o.methods.split(",").map((s) => s.trim()) as MethodName[])
      : (fromFile.methods ?? [...ALL_METHODS]),
    ...(o.format ? { format: o.format as EvalSpecInput["format"] } : {}),
    ...(o.split ? { split: o.split as EvalSpecInput["split"] } : {}),
    ...(o.decoding ? { decoding: o.decoding as EvalSpecInput["decoding"] } : {}),
    ...(o.maxDocs !== undefined ? { maxDocs: o.maxDocs } : {}),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
    ...(o.lr !== undefined ? { finetune: { ...fromFile.finetune, lr: o.lr } } : {}),
    ...(o.prompt ? { promptTemplate: o.prompt as EvalSpecInput["promptTemplate"] } : {}),
    ...(o.cost === false ? { cost: { ...fromFile.cost, enabled: false } } : {}),
    ...(o.ablationQuestions !== undefined || o.ablationK !== undefined
      ? {
          ablation: {
            ...fromFile.ablation,
            ...(o.ablationQuestions !== undefined ? { questions: o.ablationQuestions } : {}),
            ...(o.ablationK !== undefined ? { k: o.ablationK } : {}),
          },
        }
      : {}),
    command: `mac-lm ${process.argv.slice(2).join(" ")}`,
  };
  const failed = await runEval(spec, o.out, {
    log: (l) => io.stderr.write(`eval: ${l}\n`),
    reportOnly: o.reportOnly,
  });
  io.stdout.write(`eval: results in ${o.out}/results.json, report ${o.out}/report.md\n`);
  if (failed.length > 0)
    throw new MacLmError(
      "MACLM_EVAL_FAILED",
      `eval: ${failed.join(", ")} failed (the error is above); ${o.out} keeps what finished: fix the cause and rerun the same command to resume, or give another --out to start over`,
    );
}
