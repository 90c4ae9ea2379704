/** `mac-lm train`: trains MAC's networks on a SQuAD-format file (split by article), resumable, with a progress bar. */
import cliProgress from "cli-progress";
import { DEFAULT_CONFIG, readConfig } from "../../mac/config.js";
import { runTraining } from "../../mac/train/run.js";
import type { CliIO } from "../main.js";

export interface TrainCommandOptions {
  data: string;
  out: string;
  config?: string;
  steps: number;
  batchSize: number;
  keepRatio: number;
  memoryPerQuestion: number;
  gradAccum: number;
  lr: number;
  warmup: number;
  clip: number;
  seed: number;
  evalEvery: number;
  evalQuestions: number;
  ablationQuestions: number;
  trainData?: string;
  trainArticles: number;
  distill: number;
  distillTopK: number;
  groupByDocument?: boolean;
  objective: "qa" | "reconstruct" | "select";
  selectTau: number;
  textTokens: number;
  checkpointEvery: number;
  valArticles: number;
  testArticles: number;
  cache?: string;
}

export async function run(o: TrainCommandOptions, io: CliIO): Promise<void> {
  const config = o.config ? readConfig(o.config) : DEFAULT_CONFIG;
  let stop = false;
  const onSignal = (): void => {
    stop = true;
    io.stderr.write("\nmac-lm train: stopping at the next checkpoint (Ctrl-C again to abort)\n");
    process.once("SIGINT", () => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  const tty = io.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar(
        {
          format: "train |{bar}| {value}/{total} steps | loss {loss} | {rate} s/step | ETA {eta_formatted}",
          stream: io.stderr as NodeJS.WriteStream,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  let started = false;
  const t0 = performance.now();
  let first = 0;
  let lastStep = 0;
  try {
    const r = await runTraining({
      config,
      data: o.data,
      out: o.out,
      cacheDir: o.cache,
      split: { val: o.valArticles, test: o.testArticles },
      train: {
        steps: o.steps,
        batchSize: o.batchSize,
        keepRatio: o.keepRatio,
        memoryPerQuestion: o.memoryPerQuestion,
        gradAccum: o.gradAccum,
        lr: o.lr,
        warmupSteps: o.warmup,
        clip: o.clip,
        seed: o.seed,
        evalEvery: o.evalEvery,
        evalQuestions: o.evalQuestions,
        ablationQuestions: o.ablationQuestions,
        distillWeight: o.distill,
        distillTopK: o.distillTopK,
        groupByDocument: o.groupByDocument ?? false,
        objective: o.objective,
        textTokens: o.textTokens,
        selectTau: o.selectTau,
        checkpointEvery: o.checkpointEvery,
      },
      trainData: o.trainData,
      trainArticles: o.trainArticles,
      shouldStop: () => stop,
      onEvent: (ev) => {
        if (ev.kind === "resume") {
          io.stderr.write(`resumed from ${ev.path} (step ${ev.step})\n`);
          first = ev.step;
        } else if (ev.kind === "step") {
          lastStep = ev.step;
          const rate = ((performance.now() - t0) / 1000 / Math.max(1, ev.step - first)).toFixed(2);
          if (bar) {
            if (!started) bar.start(ev.steps, ev.step - 1, { loss: "-", rate: "-" });
            started = true;
            bar.update(ev.step, {
              loss:
                ev.kl !== undefined
                  ? `${ev.loss.toFixed(3)} (${ev.nll !== undefined ? `nll ${ev.nll.toFixed(3)} ` : ""}kl ${ev.kl.toFixed(3)})`
                  : ev.loss.toFixed(4),
              rate,
            });
          } else if (ev.step % 10 === 0 || ev.step === ev.steps)
            io.stderr.write(
              `step ${ev.step}/${ev.steps} loss ${ev.loss.toFixed(4)}${ev.kl !== undefined ? ` (${ev.nll !== undefined ? `nll ${ev.nll.toFixed(4)} ` : ""}kl ${ev.kl.toFixed(4)})` : ""} |g| ${ev.gradNorm.toFixed(2)} ${rate} s/step\n`,
            );
        } else if (ev.kind === "eval") {
          const s = ev.scores;
          const a = ev.ablation;
          const line =
            `eval @${ev.step}: loss ${ev.loss.toFixed(4)}` +
            (s ? ` EM ${s.em.toFixed(2)} F1 ${s.f1.toFixed(2)} (n=${s.n})` : "") +
            (a
              ? ` | answer loss: none ${a.none} alone ${a.own_alone} own/${a.k} ${a.own_among_k} unrelated/${a.k} ${a.unrelated_k} in-context ${a.in_context}; content gap ${a.content_gap} (n=${a.questions})`
              : "") +
            (ev.text
              ? ` | text loss (${ev.text.docs} docs): none ${ev.text.none} own ${ev.text.own} unrelated ${ev.text.unrelated}; gain ${ev.text.gain}`
              : "");
          if (bar) bar.stop();
          io.stderr.write(line + "\n");
          started = false;
        }
      },
    });
    bar?.stop();
    io.stdout.write(`trained to step ${r.step}; run folder ${o.out}\n`);
  } catch (e) {
    // Once steps have run, the folder holds checkpoints: say how to go on rather than leave the user guessing.
    if (lastStep > 0 && e instanceof Error)
      e.message +=
        `\n${o.out} is resumable (last step reached: ${lastStep}; checkpoints every ${o.checkpointEvery} steps): ` +
        `fix the cause and rerun the same command to continue from its newest checkpoint, or give another --out to start over`;
    throw e;
  } finally {
    bar?.stop();
    process.removeListener("SIGINT", onSignal);
  }
}
