/**
 * A complete training run from files: a MAC config, a SQuAD-format data file split by article, a run folder with
 * checkpoints (resumed when present), config.json and metrics.jsonl (one JSON line per step/eval event, appended, so
 * the training curve survives interruptions; each invocation first appends a "start" line with its training options,
 * so a curriculum run in stages, e.g. --memory-per-question 1 then 0, records which steps ran how). Used by
 * `mac-lm train`.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve, isAbsolute } from "node:path";
import { MacLmError } from "../../errors.js";
import { claimFolder } from "../../io/out-folder.js";
import { type ArticleSplit, examplesOf, loadSquad, splitArticles } from "../../data/squad.js";
import { buildMac } from "../build.js";
import { type MacConfig, parseConfig } from "../config.js";
import { MacTrainer, type TrainEvent, type TrainOptions } from "./trainer.js";
import { nextTurn } from "../../tensor/index.js";

export interface RunOptions {
  config: MacConfig;
  data: string;
  out: string;
  train: Omit<TrainOptions, "checkpointDir">;
  split?: { val: number; test: number };
  /**
   * A SQuAD-format file whose articles (the first trainArticles, 0: all) are all training data; `data` then only
   * supplies the validation and test articles (its own training split is not used).
   */
  trainData?: string;
  trainArticles?: number;
  cacheDir?: string;
  onEvent?: (ev: TrainEvent) => void;
  /** Checked between steps; true stops after checkpointing. */
  shouldStop?: () => boolean;
}

export interface RunResult {
  step: number;
  split: { train: string[]; val: string[]; test: string[] };
}

export async function runTraining(opts: RunOptions): Promise<RunResult> {
  // Only an empty folder or one of our own runs on the same data: never append to someone else's files.
  claimFolder(opts.out, {
    kind: "training run",
    settings: { data: resolve(opts.data), split: opts.split ?? { val: 4, test: 6 } },
    legacyFile: "config.json",
    startOver: "give another --out to start a new run",
  });
  const cfgPath = join(opts.out, "config.json");
  if (existsSync(cfgPath)) {
    const saved = parseConfig(JSON.parse(readFileSync(cfgPath, "utf8")), cfgPath);
    if (JSON.stringify(saved) !== JSON.stringify(opts.config))
      throw new MacLmError(
        "MACLM_CONFIG_MISMATCH",
        `${opts.out} holds a run with another config (${cfgPath}); use a new --out folder`,
      );
  } else writeFileSync(cfgPath, JSON.stringify(opts.config, null, 2) + "\n");

  const split: ArticleSplit = splitArticles(loadSquad(opts.data), opts.split ?? { val: 4, test: 6 });
  if (opts.trainData) {
    const articles = loadSquad(opts.trainData);
    const n = opts.trainArticles && opts.trainArticles > 0 ? opts.trainArticles : articles.length;
    const overlap = articles.slice(0, n).filter((a) => [...split.val, ...split.test].some((b) => b.title === a.title));
    if (overlap.length > 0)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${opts.trainData}: article "${overlap[0]!.title}" is also a validation/test article of ${opts.data}`,
      );
    split.train = articles.slice(0, n);
  }
  const names = {
    train: split.train.map((a) => a.title),
    val: split.val.map((a) => a.title),
    test: split.test.map((a) => a.title),
  };
  writeFileSync(join(opts.out, "split.json"), JSON.stringify(names, null, 2) + "\n");

  const adapter = opts.config.baseAdapter;
  if (adapter !== undefined && !isAbsolute(adapter))
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `config.baseAdapter "${adapter}": a training run needs an absolute path (its run folder does not hold the file)`,
    );
  const mac = await buildMac(opts.config, { cacheDir: opts.cacheDir, baseAdapter: adapter });
  mac.cacheFrozenEncoders();
  const trainer = new MacTrainer(mac, examplesOf(split.train), examplesOf(split.val), {
    ...opts.train,
    checkpointDir: join(opts.out, "checkpoints"),
    teacherStore: opts.train.distillWeight ? join(opts.out, "teacher.sqlite") : undefined,
    windowLossStore: opts.train.objective === "select" ? join(opts.out, "window-losses.sqlite") : undefined,
  });
  const metrics = join(opts.out, "metrics.jsonl");
  appendFileSync(
    metrics,
    JSON.stringify({
      kind: "start",
      ...opts.train,
      trainData: opts.trainData,
      trainArticles: opts.trainArticles,
      trainExamples: trainer.train.length,
      time: new Date().toISOString(),
    }) + "\n",
  );
  try {
    for (const ev of trainer.fit()) {
      if (ev.kind === "step" || ev.kind === "eval")
        appendFileSync(metrics, JSON.stringify({ ...ev, time: new Date().toISOString() }) + "\n");
      opts.onEvent?.(ev);
      if (ev.kind === "checkpoint" && opts.shouldStop?.()) break;
      // Let the event loop turn: Node runs the finalizers of freed tensors' ArrayBuffers (each holds a small
      // native record) only then, and signal handlers too. A loop that never yields keeps every step's records,
      // which pin the malloc heap's pages (malloc_trim cannot return them): ~1 MB per step of the synthetic test's
      // tiny MAC, several MB per SQuAD step.
      await nextTurn();
    }
    return { step: trainer.state.step, split: names };
  } finally {
    trainer.dispose();
    mac.dispose();
    mac.base.dispose();
  }
}
