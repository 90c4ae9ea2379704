/**
 * results.json of `mac-lm eval`: the schema (zod), an atomic writer and a validating reader.
 *
 * Scores are in percent, as the papers report them (src/eval/metrics.ts scoreAll): em and f1 are the standard SQuAD
 * metrics (max over the reference answers), em_prefix and f1_shortest the MAC/CaMeLS variants (prefix match and F1
 * against the shortest reference). Every method of the benchmark has an entry: either its numbers (status "ok", the
 * default when status is omitted) or status "not_run" with the reason (e.g. CaMeLS infeasible on a CPU). The
 * retention curves give, per method, [extra_docs, f1_share] points: the share (percent) of the F1 on the first
 * documents' questions that is kept after adapting to extra_docs further documents (null when the initial F1 was 0).
 * aggregation_cost gives MAC's aggregation time and memory per bank size, full vs hierarchical. memory_ablation gives
 * MAC's mean answer loss (nats per answer token) on a sample of the stream's questions with no memory, the own
 * document alone, the own document among K − 1 others, K unrelated documents, and the document in the LM's context
 * instead of a memory (src/mac/ablation.ts), and the content gap unrelated_k − own_among_k; memory_ablation_f1 the
 * EM/F1 of the answers under the same conditions.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { MacLmError } from "../../errors.js";
import { type MethodName, PROMPT_TEMPLATES } from "../methods/types.js";

/** The benchmark's methods, in the order the report lists them. */
export const METHOD_NAMES = [
  "none",
  "uniform",
  "salient_spans",
  "camels",
  "mac",
  "mac_hierarchical",
  "bm25",
  "dense",
  "oracle_context",
  "bm25_mac",
] as const;
export type ResultMethod = (typeof METHOD_NAMES)[number];
// The report and the methods agree on the names (a compile error here means one of the lists changed).
const sameNames: [ResultMethod, MethodName] extends [MethodName, ResultMethod] ? true : never = true;
void sameNames;

/** Display names (the papers' spelling). */
export const METHOD_LABELS: Record<ResultMethod, string> = {
  none: "Base LM (no adaptation)",
  uniform: "Uniform",
  salient_spans: "Salient Spans",
  camels: "CaMeLS",
  mac: "MAC",
  mac_hierarchical: "MAC (hierarchical)",
  bm25: "BM25",
  dense: "Dense retrieval",
  oracle_context: "Oracle context (own paragraph)",
  bm25_mac: "BM25 + MAC",
};

const MethodNameSchema = z.enum(METHOD_NAMES);
const Percent = z.number().min(0).max(100);
const NonNeg = z.number().nonnegative();
const Count = z.number().int().nonnegative();
const Reason = z.string().trim().min(1);
/** Free-form settings (hyperparameters, config overrides): JSON scalars only. */
const Params = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]));

/** `status` may be omitted for results with numbers: it is "ok" then. */
const withDefaultStatus = (v: unknown): unknown =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !("status" in v) ? { ...v, status: "ok" } : v;

const MethodOk = z.strictObject({
  status: z.literal("ok"),
  em: Percent,
  f1: Percent,
  em_prefix: Percent,
  f1_shortest: Percent,
  /** Adaptation time per stream document (ms; 0 for methods that do not adapt). */
  adapt_ms_per_doc: NonNeg,
  /** Peak resident set size of the process that ran the method (MB). */
  peak_rss_mb: z.number().positive(),
  /** Mean answering time per question (ms), adaptation excluded. */
  answer_ms: NonNeg,
  n_questions: Count.optional(),
  /** Questions scored (scoreAll's n; the same as n_questions). */
  n: Count.optional(),
  n_docs: Count.optional(),
  adapt_s_total: NonNeg.optional(),
  answer_s_total: NonNeg.optional(),
  /** Fine-tuning baselines: the learning rate used, and the validation search that chose it. */
  lr: z.number().positive().optional(),
  lr_search: z.array(z.strictObject({ lr: z.number().positive(), f1: Percent })).optional(),
  /**
   * Methods that prompt the base LM: the prompt template used, and the validation F1 of every candidate that chose
   * it (fine-tuning: every learning rate × template).
   */
  prompt_template: z.enum(PROMPT_TEMPLATES).optional(),
  prompt_search: z
    .array(
      z.strictObject({
        template: z.enum(PROMPT_TEMPLATES),
        f1: Percent,
        em: Percent.optional(),
        lr: z.number().positive().optional(),
      }),
    )
    .optional(),
  epochs: Count.optional(),
  /** Retrieval: documents put into the context, and the context's token budget. */
  retrieved_k: z.number().int().positive().optional(),
  max_context_tokens: z.number().int().positive().optional(),
  /** BM25 + MAC over an extractive memory: λ of the fused score BM25(d) + λ·memory(d) (src/eval/methods/mac.ts). */
  memory_weight: z.number().nonnegative().optional(),
  /** MAC: how the memory bank is aggregated, and the hierarchical group size M. */
  aggregation: z.enum(["full", "hierarchical"]).optional(),
  group_size: z.number().int().positive().optional(),
  /** Retention as the worker measured it (the curve itself is in the top-level `retention`). */
  retention_f1_start: Percent.nullable().optional(),
  retention_start_docs: Count.nullable().optional(),
  retention_questions: Count.nullable().optional(),
  params: Params.optional(),
  /** Where the per-question predictions were written (relative to the output folder). */
  predictions: z.string().optional(),
  notes: z.string().optional(),
});

const MethodNotRun = z.strictObject({
  status: z.literal("not_run"),
  reason: Reason,
  notes: z.string().optional(),
  params: Params.optional(),
});

const MethodResultSchema = z.preprocess(withDefaultStatus, z.discriminatedUnion("status", [MethodOk, MethodNotRun]));

/** [extra_docs, f1_share (percent of the initial F1; null when the initial F1 was 0)], extra_docs increasing. */
const RetentionCurve = z
  .array(z.tuple([Count, NonNeg.nullable()]))
  .min(1)
  .superRefine((pts, ctx) => {
    for (let i = 1; i < pts.length; i++)
      if (pts[i]![0] <= pts[i - 1]![0])
        ctx.addIssue({
          code: "custom",
          path: [i, 0],
          message: `extra_docs must increase (${pts[i - 1]![0]} then ${pts[i]![0]})`,
        });
  });

/** The same points with the raw F1 (percent) instead of the share. */
const RetentionF1Curve = z.array(z.tuple([Count, Percent])).min(1);

const CostPointOk = z.strictObject({
  status: z.literal("ok"),
  /** Memory bank size (entries). */
  entries: z.number().int().positive(),
  mode: z.enum(["full", "hierarchical"]),
  /** Time of one aggregation (ms, a median over the repetitions). */
  ms: NonNeg,
  /** Memory the aggregation needs (MB): the process's peak RSS growth while it ran. */
  memory_mb: NonNeg,
  repetitions: z.number().int().positive().optional(),
  ms_std: NonNeg.optional(),
  peak_rss_mb: z.number().positive().optional(),
  /** Hierarchical: group size M (null for full). */
  group_size: z.number().int().positive().nullable().optional(),
  /** T latent tokens per entry and their width d. */
  tokens_per_entry: z.number().int().positive().optional(),
  width: z.number().int().positive().optional(),
});
const CostPointNotRun = z.strictObject({
  status: z.literal("not_run"),
  entries: z.number().int().positive(),
  mode: z.enum(["full", "hierarchical"]),
  reason: Reason,
});
const CostPoint = z.preprocess(withDefaultStatus, z.discriminatedUnion("status", [CostPointOk, CostPointNotRun]));

const CostOk = z.strictObject({
  status: z.literal("ok"),
  points: z
    .array(CostPoint)
    .min(1)
    .superRefine((pts, ctx) => {
      const seen = new Set<string>();
      pts.forEach((p, i) => {
        const key = `${p.entries}/${p.mode}`;
        if (seen.has(key)) ctx.addIssue({ code: "custom", path: [i], message: `duplicate point ${key}` });
        seen.add(key);
      });
    }),
  group_size: z.number().int().positive().optional(),
  /** Questions aggregated per measured call. */
  n_questions: z.number().int().positive().optional(),
  notes: z.string().optional(),
});
const CostNotRun = z.strictObject({ status: z.literal("not_run"), reason: Reason });
const AggregationCostSchema = z.preprocess(withDefaultStatus, z.discriminatedUnion("status", [CostOk, CostNotRun]));

/** Nats per answer token. */
const Nats = z.number().nonnegative();

const MemoryAblationSchema = z
  .strictObject({
    /** Documents in the own_among_k and unrelated_k memories. */
    k: z.number().int().positive(),
    questions: z.number().int().positive(),
    none: Nats,
    own_alone: Nats,
    own_among_k: Nats,
    unrelated_k: Nats,
    in_context: Nats,
    /** unrelated_k − own_among_k (negative when the own document's entry hurts). */
    content_gap: z.number(),
  })
  .superRefine((a, ctx) => {
    if (Math.abs(a.content_gap - (a.unrelated_k - a.own_among_k)) > 2e-4)
      ctx.addIssue({
        code: "custom",
        path: ["content_gap"],
        message: `must be unrelated_k − own_among_k = ${a.unrelated_k - a.own_among_k}, got ${a.content_gap}`,
      });
  });

const ConditionScores = z.strictObject({ em: Percent, f1: Percent });
const MemoryAblationF1Schema = z.strictObject({
  none: ConditionScores,
  own_alone: ConditionScores,
  own_among_k: ConditionScores,
  unrelated_k: ConditionScores,
  in_context: ConditionScores,
  /** 100 · F1(own_among_k) / F1(in_context): MAC's F1 as a share of the in-context ceiling's (null if that is 0). */
  share_of_in_context: NonNeg.nullable(),
  /** Per-question answers and losses (relative to the output folder). */
  predictions: z.string().optional(),
  seconds: NonNeg.optional(),
  peak_rss_mb: z.number().positive().optional(),
});

const Json = z.record(z.string(), z.unknown());

const MetaSchema = z.strictObject({
  /** The command line that produced the results (the report's "to reproduce"). */
  command: z.string(),
  git_commit: z
    .string()
    .regex(/^[0-9a-f]{7,40}$/, "must be a git commit hash (7–40 hex digits)")
    .nullable(),
  git_dirty: z.boolean().optional(),
  started_at: z.iso.datetime({ offset: true }),
  finished_at: z.iso.datetime({ offset: true }),
  base_model: z.string().min(1),
  /** The LoRA adapter merged into the base LM for every method (config.baseAdapter), or null. */
  base_adapter: z.string().min(1).nullable().optional(),
  /** MAC checkpoint folder (null when no MAC method ran). */
  checkpoint: z.string().nullable(),
  checkpoint_step: Count.optional(),
  /** The MAC configuration (src/mac/config.ts). */
  config: Json,
  /** "greedy" / "beam", or the generation options. */
  decoding: z.union([z.string().min(1), Json]),
  machine: z.strictObject({
    platform: z.string(),
    arch: z.string(),
    cpus: z.number().int().positive(),
    cpu_model: z.string(),
    mem_gb: z.number().positive(),
    node: z.string(),
    os_release: z.string().optional(),
    threads: z.number().int().positive().optional(),
  }),
  data: z
    .strictObject({
      file: z.string(),
      format: z.string().optional(),
      split: z.string().optional(),
      sha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional(),
    })
    .optional(),
  /** The eval spec as run (src/eval/run.ts EvalSpec). */
  spec: Json.optional(),
  seed: z.number().int().optional(),
  version: z.string().optional(),
});

export const ResultsSchema = z.strictObject({
  schema_version: z.literal(1).default(1),
  n_docs: Count,
  n_questions: Count,
  methods: z.record(MethodNameSchema, MethodResultSchema),
  retention: z.partialRecord(MethodNameSchema, RetentionCurve),
  retention_f1: z.partialRecord(MethodNameSchema, RetentionF1Curve).optional(),
  /** How retention was measured: documents adapted to first, and the questions on them asked again. */
  retention_setup: z
    .strictObject({ initial_docs: z.number().int().positive(), n_questions: z.number().int().positive() })
    .optional(),
  aggregation_cost: AggregationCostSchema,
  memory_ablation: MemoryAblationSchema.optional(),
  memory_ablation_f1: MemoryAblationF1Schema.optional(),
  meta: MetaSchema,
  /** Run-wide remarks for the report. */
  notes: z.array(z.string()).optional(),
});

export type Results = z.output<typeof ResultsSchema>;
export type MethodResult = z.output<typeof MethodOk> | z.output<typeof MethodNotRun>;
export type MethodOkResult = z.output<typeof MethodOk>;
export type CostResult = z.output<typeof CostOk> | z.output<typeof CostNotRun>;
export type CostPointResult = z.output<typeof CostPointOk> | z.output<typeof CostPointNotRun>;
export type Meta = z.output<typeof MetaSchema>;
export type MemoryAblationResult = z.output<typeof MemoryAblationSchema>;
export type MemoryAblationF1Result = z.output<typeof MemoryAblationF1Schema>;

/** What a writer may pass: status may be omitted where there are numbers, schema_version is filled in. */
type Optional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;
export type MethodResultInput = Optional<z.input<typeof MethodOk>, "status"> | z.input<typeof MethodNotRun>;
export type CostInput =
  | (Omit<z.input<typeof CostOk>, "status" | "points"> & {
      status?: "ok";
      points: (Optional<z.input<typeof CostPointOk>, "status"> | z.input<typeof CostPointNotRun>)[];
    })
  | z.input<typeof CostNotRun>;
export type ResultsInput = Omit<
  z.input<typeof ResultsSchema>,
  "methods" | "aggregation_cost" | "schema_version" | "retention"
> & {
  schema_version?: 1;
  methods: Record<ResultMethod, MethodResultInput>;
  retention: Partial<Record<ResultMethod, [number, number | null][]>>;
  aggregation_cost: CostInput;
};

export const isOk = (m: MethodResult): m is MethodOkResult => m.status === "ok";

/** Methods not in `partial` become status "not_run" with `reason` (e.g. "not selected (--methods)"). */
export function fillNotRun(
  partial: Partial<Record<ResultMethod, MethodResultInput>>,
  reason: string,
): Record<ResultMethod, MethodResultInput> {
  const out = {} as Record<ResultMethod, MethodResultInput>;
  for (const m of METHOD_NAMES) out[m] = partial[m] ?? { status: "not_run", reason };
  return out;
}

/** "methods.mac.f1", "retention.mac[1][0]". */
function fmtPath(path: readonly PropertyKey[]): string {
  let s = "";
  for (const p of path) s += typeof p === "number" ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || "(root)";
}

/** Validates results; the error names the file (or `source`) and each bad field. */
export function parseResults(json: unknown, source = "results"): Results {
  const r = ResultsSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues;
    const shown = issues.slice(0, 5).map((i) => `${fmtPath(i.path)}: ${i.message}`);
    if (issues.length > 5) shown.push(`… ${issues.length - 5} more`);
    throw new MacLmError("MACLM_BAD_FILE", `${source}: ${shown.join("; ")}`);
  }
  return r.data;
}

export function readResults(file: string): Results {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new MacLmError("MACLM_BAD_FILE", `${file}: not readable JSON (${(e as Error).message})`);
  }
  return parseResults(json, file);
}

/** Writes a file atomically: a temp file next to it, then rename (readers never see a half-written file). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Validates and writes results.json atomically; returns the validated results (defaults filled in). Results that do
 * not validate are still kept, as `<file>.invalid.json` (an evaluation run is too costly to lose to a typo in the
 * schema), and the error names the bad fields.
 */
export function writeResults(file: string, results: ResultsInput): Results {
  let parsed: Results;
  try {
    parsed = parseResults(results, file);
  } catch (e) {
    writeFileAtomic(file.replace(/\.json$/, "") + ".invalid.json", JSON.stringify(results, null, 1) + "\n");
    throw e;
  }
  writeFileAtomic(file, JSON.stringify(parsed, null, 1) + "\n");
  return parsed;
}
