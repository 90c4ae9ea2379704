/**
 * `mac-lm eval`: the benchmark. Every method runs the protocol of protocol.ts on the same stream and the same frozen
 * base LM, each in its own child process (so that its peak memory is its own and a crash costs only that method),
 * and writes OUT/methods/<name>.json when it finishes. The aggregation-cost points (bank sizes × full/hierarchical)
 * run the same way into OUT/cost/. A rerun with the same OUT skips everything already written: interrupt it at
 * any time and run the same command again. The memory ablation (src/mac/ablation.ts: MAC's answer loss and F1 with
 * no memory, the own document alone, among K − 1 others, K unrelated ones, and the document in context) is one more
 * unit, OUT/ablation.json. Then results.json, report.md and the plots are (re)written.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { MacLmError } from "../errors.js";
import { claimFolder } from "../io/out-folder.js";
import { type MethodName, PROMPT_TEMPLATES } from "./methods/types.js";

export const ALL_METHODS: readonly MethodName[] = [
  "none",
  "mac",
  "mac_hierarchical",
  "uniform",
  "salient_spans",
  "camels",
  "bm25",
  "dense",
  "oracle_context",
  "bm25_mac",
];

export const EvalSpecSchema = z.object({
  /** The stream's source file and its format. */
  data: z.string(),
  format: z.enum(["squad", "streamingqa", "archivalqa", "synthetic"]).default("squad"),
  /** Which articles form the stream (SQuAD: the split of the training run; the test articles by default). */
  split: z.enum(["train", "val", "test", "all"]).default("test"),
  /** MAC checkpoint folder (config.json + model.safetensors, or a training run folder). */
  checkpoint: z.string(),
  cache: z.string().optional(),
  methods: z.array(z.enum(ALL_METHODS as [MethodName, ...MethodName[]])).min(1),
  /** greedy, or the paper's diverse beam search (12 beams / 4 groups / penalty 10). */
  decoding: z.enum(["greedy", "beam"]).default("greedy"),
  maxNewTokens: z.number().int().positive().default(16),
  batchSize: z.number().int().positive().default(16),
  /** Hierarchical aggregation group size M, and documents retrieved into the context. */
  groupSize: z.number().int().min(2).default(16),
  k: z.number().int().positive().default(1),
  /**
   * The prompt template of every method that prompts the base LM (none, fine-tuning, retrieval, oracle context);
   * omitted: each method's is chosen on the validation documents (methods/prompts.ts). MAC methods always use the
   * template they were trained with.
   */
  promptTemplate: z.enum(PROMPT_TEMPLATES).optional(),
  /** At most this many documents of the stream (its first ones), with their questions; 0: all. */
  maxDocs: z.number().int().nonnegative().default(0),
  retention: z
    .object({
      start: z.number().int().positive().default(200),
      points: z.number().int().positive().default(3),
      maxQuestions: z.number().int().positive().default(150),
      methods: z.array(z.string()).default(["mac", "uniform", "salient_spans", "bm25"]),
    })
    .prefault({}),
  finetune: z
    .object({
      /** A fixed learning rate; omitted: chosen on validation documents among the candidates. */
      lr: z.number().positive().optional(),
      lrCandidates: z.array(z.number().positive()).default([2.5e-5, 1e-4]),
      valDocs: z.number().int().positive().default(16),
      valQuestions: z.number().int().positive().default(48),
      maxLength: z.number().int().positive().default(384),
    })
    .prefault({}),
  /** The memory ablation on a seeded sample of the stream's questions (0 questions: not run; needs a MAC method). */
  ablation: z
    .object({
      questions: z.number().int().nonnegative().default(128),
      k: z.number().int().positive().default(8),
    })
    .prefault({}),
  cost: z
    .object({
      sizes: z.array(z.number().int().positive()).default([1000, 10000, 100000]),
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  seed: z.number().int().default(0),
  /** The command line that produced this run (for the report). */
  command: z.string().default(""),
});
export type EvalSpec = z.infer<typeof EvalSpecSchema>;
export type EvalSpecInput = z.input<typeof EvalSpecSchema>;

/** Spec fields whose change invalidates finished results (the rest, e.g. the method list, may grow on a rerun). */
const IDENTITY_KEYS = [
  "data",
  "format",
  "split",
  "checkpoint",
  "decoding",
  "maxNewTokens",
  "groupSize",
  "k",
  "promptTemplate",
  "maxDocs",
  "retention",
  "finetune",
  "ablation",
  "seed",
] as const;

export const specFile = (out: string): string => join(out, "spec.json");
export const methodFile = (out: string, name: string): string => join(out, "methods", `${name}.json`);
export const ablationFile = (out: string): string => join(out, "ablation.json");
export const costFile = (out: string, size: number, mode: string): string => join(out, "cost", `${size}-${mode}.json`);

/** Writes JSON atomically (temp file + rename): a crash never leaves a half-written result that a rerun trusts. */
export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 1) + "\n");
  renameSync(tmp, file);
}

/**
 * Creates OUT (or checks that an existing OUT was made by an equivalent spec) and writes spec.json. Finished
 * method results of an older spec with other identity fields are never mixed in: that is an error naming the field.
 */
export function prepareOut(specIn: EvalSpecInput, out: string): EvalSpec {
  const spec = EvalSpecSchema.parse(specIn);
  // Never write report.md / results.json over another tool's files: an empty folder or one of our eval runs.
  claimFolder(out, {
    kind: "eval run",
    settings: {},
    legacyFile: "spec.json",
    startOver: "give another --out to start a new run",
  });
  mkdirSync(join(out, "methods"), { recursive: true });
  mkdirSync(join(out, "cost"), { recursive: true });
  mkdirSync(join(out, "predictions"), { recursive: true });
  // A run that finished nothing (it failed at once, e.g. on a wrong --format) does not bind the folder's settings.
  if (existsSync(specFile(out)) && finishedUnits(out) > 0) {
    const old = EvalSpecSchema.parse(JSON.parse(readFileSync(specFile(out), "utf8")));
    for (const key of IDENTITY_KEYS)
      if (JSON.stringify(old[key]) !== JSON.stringify(spec[key]))
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `eval: ${out} holds finished results of another run (its "${key}" was ${JSON.stringify(old[key])}, now ${JSON.stringify(spec[key])}); rerun with its settings to resume it, or give another --out to start a new run`,
        );
    spec.methods = [...new Set([...old.methods, ...spec.methods])].filter((m) => spec.methods.includes(m));
    // The report's "reproduce" command is the one that started the run (a resume is the same command).
    if (old.command) spec.command = old.command;
  }
  writeJsonAtomic(specFile(out), spec);
  const started = join(out, "started.json");
  if (!existsSync(started)) writeJsonAtomic(started, { started_at: new Date().toISOString() });
  return spec;
}

/** Unit result files already written in `out`. */
function finishedUnits(out: string): number {
  return ["methods", "cost"].reduce(
    (n, sub) =>
      n + (existsSync(join(out, sub)) ? readdirSync(join(out, sub)).filter((f) => f.endsWith(".json")).length : 0),
    0,
  );
}

export interface EvalHooks {
  /** A line for the console (what starts, what is skipped). */
  log?: (line: string) => void;
  /** Run each unit in this process instead of a child (tests; peak RSS is then the whole process's). */
  inProcess?: boolean;
  /** The command that runs a worker: [executable, ...args] before "eval --worker ..." (default: this CLI). */
  workerCommand?: string[];
  /** Run nothing: only (re)write results.json and the report from the units finished so far. */
  reportOnly?: boolean;
}

/** The methods that load the MAC checkpoint. */
export const MAC_METHOD_NAMES: readonly MethodName[] = ["mac", "mac_hierarchical", "bm25_mac"];
const hasMac = (spec: EvalSpec): boolean => spec.methods.some((m) => MAC_METHOD_NAMES.includes(m));

/** Whether the run has the memory ablation unit. */
export const runsAblation = (spec: EvalSpec): boolean => spec.ablation.questions > 0 && hasMac(spec);

/** The work units of a run, in order: the memory ablation, every method, then the cost points. */
export function units(spec: EvalSpec, out: string): { id: string; file: string }[] {
  const u: { id: string; file: string }[] = runsAblation(spec) ? [{ id: "ablation", file: ablationFile(out) }] : [];
  u.push(...spec.methods.map((m) => ({ id: m, file: methodFile(out, m) })));
  if (spec.cost.enabled && (spec.methods.includes("mac") || spec.methods.includes("mac_hierarchical")))
    for (const n of spec.cost.sizes)
      for (const mode of ["full", "hierarchical"]) u.push({ id: `cost:${n}:${mode}`, file: costFile(out, n, mode) });
  return u;
}

function runChild(cmd: string[], out: string, unit: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, [...cmd.slice(1), "eval", "--worker", unit, "--out", out], {
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Runs every unit not yet written (each in a child process), then writes the report. Returns failed units. */
export async function runEval(specIn: EvalSpecInput, out: string, hooks: EvalHooks = {}): Promise<string[]> {
  const spec = prepareOut(specIn, out);
  const log = hooks.log ?? (() => {});
  const failed: string[] = [];
  const cmd = hooks.workerCommand ?? [process.execPath, ...process.execArgv, process.argv[1]!];
  for (const u of hooks.reportOnly ? [] : units(spec, out)) {
    if (existsSync(u.file)) {
      log(`${u.id}: done earlier (${u.file})`);
      continue;
    }
    log(`${u.id}: running`);
    if (hooks.inProcess) {
      const { runWorker } = await import("./worker.js");
      await runWorker(u.id, out);
    } else {
      const code = await runChild(cmd, out, u.id);
      if (code !== 0 || !existsSync(u.file)) {
        log(`${u.id}: FAILED (exit ${code}; its error is above)`);
        failed.push(u.id);
      }
    }
  }
  const { assembleResults } = await import("./assemble.js");
  for (const w of await assembleResults(spec, out)) log(`report: ${w}`);
  return failed;
}
