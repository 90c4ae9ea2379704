/**
 * One unit of `mac-lm eval` (run.ts), normally in its own process: a method's protocol run (protocol.ts), the
 * memory ablation (src/mac/ablation.ts), or one point of MAC's aggregation cost. Writes its result file atomically
 * when done; nothing is written on failure.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import { type GenerateOptions, MAC_DECODING } from "../generate/index.js";
import { openSafetensors } from "../io/safetensors.js";
import { ABLATION_CONDITIONS, memoryAblation } from "../mac/ablation.js";
import type { MemoryAggregator } from "../mac/aggregate/hierarchical.js";
import { createAggregator } from "../mac/build.js";
import { aggregateFull, aggregateHierarchical } from "../mac/aggregate/hierarchical.js";
import { loadBase } from "../mac/build.js";
import { baseAdapterPath, entrySlots, readConfig } from "../mac/config.js";
import { loadMac, weightsFolder } from "../mac/io.js";
import type { MacModel } from "../mac/model.js";
import { trainingAnswer } from "../mac/train/trainer.js";
import { type Tensor, noGrad, releaseFreedMemory, scope, slice } from "../tensor/index.js";
import { Rng, randn } from "../tensor/random.js";
import { scoreAll } from "../data/qa-metrics.js";
import { createMethod } from "./methods/index.js";
import type { MethodContext, MethodName } from "./methods/types.js";
import { retentionPlan, runProtocol } from "./protocol.js";
import {
  type EvalSpec,
  EvalSpecSchema,
  MAC_METHOD_NAMES,
  ablationFile,
  costFile,
  methodFile,
  specFile,
  writeJsonAtomic,
} from "./run.js";
import { loadEvalStream } from "./streams.js";

export interface WorkerHooks {
  progress?: (phase: string, done: number, total: number) => void;
}

const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;

export function readSpec(out: string): EvalSpec {
  if (!existsSync(specFile(out))) throw new MacLmError("MACLM_BAD_ARGUMENT", `eval worker: no ${specFile(out)}`);
  return EvalSpecSchema.parse(JSON.parse(readFileSync(specFile(out), "utf8")));
}

/** How every unit answers: greedy or the paper's beam search, and the questions per batch that fit it. */
function decodingOf(spec: EvalSpec): { decoding: GenerateOptions; batchSize: number } {
  return {
    decoding: { ...(spec.decoding === "beam" ? MAC_DECODING : {}), maxNewTokens: spec.maxNewTokens },
    batchSize: spec.decoding === "beam" ? Math.max(1, Math.floor(spec.batchSize / 4)) : spec.batchSize,
  };
}

export async function runWorker(unit: string, out: string, hooks: WorkerHooks = {}): Promise<void> {
  const spec = readSpec(out);
  if (unit.startsWith("cost:")) {
    const [, n, mode] = unit.split(":");
    return runCostPoint(spec, out, Number(n), mode as "full" | "hierarchical");
  }
  if (unit === "ablation") return runAblation(spec, out, hooks);
  const name = unit as MethodName;
  if (!spec.methods.includes(name)) throw new MacLmError("MACLM_BAD_ARGUMENT", `eval worker: unknown unit ${unit}`);
  const stream = loadEvalStream(spec);
  const config = readConfig(join(spec.checkpoint, "config.json"));
  let mac: MacModel | null = null;
  let base, tokenizer;
  if (MAC_METHOD_NAMES.includes(name)) {
    mac = await loadMac(spec.checkpoint, { cacheDir: spec.cache });
    base = mac.base;
    tokenizer = mac.baseTokenizer;
  } else
    ({ model: base, tokenizer } = await loadBase(config.base, {
      cacheDir: spec.cache,
      baseAdapter: baseAdapterPath(config, spec.checkpoint),
    }));
  const ctx: MethodContext = {
    base,
    tokenizer,
    qaTemplate: config.qaTemplate,
    ...decodingOf(spec),
    seed: spec.seed,
  };
  try {
    const made = await createMethod(name, ctx, spec, mac, hooks.progress);
    if ("unavailable" in made) {
      writeJsonAtomic(methodFile(out, name), { name, status: "not_run", reason: made.unavailable });
      return;
    }
    const method = made.method;
    try {
      const plan = spec.retention.methods.includes(name)
        ? retentionPlan(stream, {
            start: spec.retention.start,
            points: spec.retention.points,
            maxQuestions: spec.retention.maxQuestions,
            seed: spec.seed,
          })
        : null;
      const r = await runProtocol(method, stream, plan, { progress: hooks.progress });
      const predFile = join(out, "predictions", `${name}.jsonl`);
      writeFileSync(predFile, r.predictions.map((p) => JSON.stringify(p)).join("\n") + "\n");
      writeJsonAtomic(methodFile(out, name), {
        name,
        status: "ok",
        ...r.scores,
        adapt_ms_per_doc: r.adaptMsPerDoc,
        adapt_s_total: r.adaptSTotal,
        peak_rss_mb: peakRssMb(),
        answer_ms: r.answerMs,
        n_docs: stream.docs.length,
        n_questions: stream.questions.length,
        retention: r.retention,
        retention_f1: r.retentionF1,
        retention_f1_start: r.retentionF1Start,
        retention_start_docs: plan?.start ?? null,
        retention_questions: plan?.questions.length ?? null,
        ...made.info,
        ...(method.info ? { params: method.info() } : {}),
      });
    } finally {
      method.dispose();
    }
  } finally {
    mac?.dispose();
    base.dispose();
  }
}

/**
 * The memory ablation on a seeded sample of the stream's questions: MAC's answer loss (on the training answer, the
 * shortest reference) and its answers, decoded as the methods decode, under each condition; K = min(spec K,
 * documents − 1), the distractors from the stream's documents. Per-question answers and losses go to
 * predictions/ablation.jsonl.
 */
async function runAblation(spec: EvalSpec, out: string, hooks: WorkerHooks): Promise<void> {
  const stream = loadEvalStream(spec);
  const pool = stream.docs.map((d) => d.text);
  const K = Math.min(spec.ablation.k, pool.length - 1);
  if (K < 1) {
    writeJsonAtomic(ablationFile(out), { status: "not_run", reason: "the stream has a single document" });
    return;
  }
  const order = new Rng(spec.seed).shuffle(stream.questions.map((_, i) => i));
  const sample = order
    .slice(0, spec.ablation.questions)
    .sort((a, b) => a - b)
    .map((i) => stream.questions[i]!);
  const text = new Map(stream.docs.map((d) => [d.id, d.text]));
  const { decoding, batchSize } = decodingOf(spec);
  const mac = await loadMac(spec.checkpoint, { cacheDir: spec.cache });
  try {
    const t0 = performance.now();
    const { summary, records } = await memoryAblation(
      mac,
      sample.map((q) => ({ document: text.get(q.docId)!, question: q.question, answer: trainingAnswer(q.answers) })),
      pool,
      { k: K, generate: decoding, batchSize, onProgress: (d, n) => hooks.progress?.("ablation", d, n) },
    );
    const refs = sample.map((q) => q.answers);
    const scores = Object.fromEntries(
      ABLATION_CONDITIONS.map((c) => {
        const s = scoreAll(
          records.map((r) => r.answer![c]),
          refs,
        );
        return [c, { em: s.em, f1: s.f1 }];
      }),
    );
    writeFileSync(
      join(out, "predictions", "ablation.jsonl"),
      sample
        .map((q, i) => JSON.stringify({ id: q.id, question: q.question, answers: q.answers, ...records[i]! }))
        .join("\n") + "\n",
    );
    writeJsonAtomic(ablationFile(out), {
      status: "ok",
      losses: summary,
      scores,
      seconds: (performance.now() - t0) / 1000,
      peak_rss_mb: peakRssMb(),
    });
  } finally {
    mac.dispose();
    mac.base.dispose();
  }
}

/**
 * One point of the aggregation cost: the checkpoint's aggregator alone (no base LM, so the process's memory is the
 * aggregation's), one question against a bank of n random entries (T, d): "full" holds the whole bank (n, T, d) and
 * attends over all n·T tokens at once; "hierarchical" streams it in groups of M (as MemoryBank.groups() yields
 * them) and never holds more than a group per level. Time: median over repetitions; memory: the process's peak RSS
 * growth over what it held before the bank existed.
 */
async function runCostPoint(spec: EvalSpec, out: string, n: number, mode: "full" | "hierarchical"): Promise<void> {
  const config = readConfig(join(spec.checkpoint, "config.json"));
  const r = openSafetensors(join(weightsFolder(spec.checkpoint), "model.safetensors"));
  let agg: MemoryAggregator;
  try {
    const widthOf = config.aggregator.kind === "select" ? "norm_q" : "cross_attention_list.0.norm1";
    const d = r.info(`aggregator.${widthOf}.weight`).shape[0]!;
    agg = createAggregator(config, d, new Rng(0));
    for (const [k, t] of agg.namedParameters()) {
      const src = r.load(`aggregator.${k}`, { dtype: "float32" });
      t.data.set(src.data);
      src.dispose();
    }
  } finally {
    r.close();
  }
  agg.eval();
  const T = entrySlots(config);
  const d = agg.dim;
  const M = spec.groupSize;
  const rng = new Rng(spec.seed + n);
  const q0 = randn([1, T, d], { rng });
  // Entries' values do not change the cost; one group of M random entries is copied for every group streamed.
  const pool = randn([Math.min(M, n), T, d], { rng });
  const chunkOf = (m: number): Tensor => (m === pool.dim(0) ? pool.clone() : slice(pool, 0, 0, m));
  releaseFreedMemory();
  const before = process.memoryUsage().rss / 2 ** 20;
  const reps = n <= 10000 ? 3 : 1;
  const times: number[] = [];
  for (let i = 0; i < reps; i++)
    noGrad(() =>
      scope(() => {
        if (mode === "full") {
          const bank = randn([n, T, d], { rng });
          const t0 = performance.now();
          aggregateFull(agg, q0, bank);
          times.push(performance.now() - t0);
        } else {
          // The bank streamed in groups of M, each freed once consumed (MemoryBank.groups() yields fresh tensors).
          function* groups(): Generator<Tensor> {
            for (let off = 0; off < n; off += M) {
              const c = chunkOf(Math.min(M, n - off));
              yield c;
              c.dispose();
            }
          }
          const t0 = performance.now();
          aggregateHierarchical(agg, q0, groups(), M);
          times.push(performance.now() - t0);
        }
      }),
    );
  times.sort((a, b) => a - b);
  writeJsonAtomic(costFile(out, n, mode), {
    entries: n,
    mode,
    group_size: mode === "hierarchical" ? M : null,
    tokens_per_entry: T,
    width: d,
    ms: times[Math.floor(times.length / 2)]!,
    memory_mb: Math.max(0, peakRssMb() - before),
    repetitions: reps,
  });
}
