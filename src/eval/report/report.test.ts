import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOMParser, type Document, type Element } from "@xmldom/xmldom";
import { afterAll, describe, expect, it } from "vitest";
import {
  costSpec,
  estimateTextWidth,
  fillNotRun,
  fmt2,
  fmtInt,
  parseResults,
  readResults,
  renderMarkdown,
  renderSvg,
  retentionSpec,
  svgToPng,
  writeFileAtomic,
  writeReport,
  writeResults,
  type ResultsInput,
} from "./index.js";

const ok = (em: number, f1: number, extra: Record<string, unknown> = {}) => ({
  em,
  f1,
  em_prefix: em + 1,
  f1_shortest: f1 - 1,
  adapt_ms_per_doc: 120.5,
  peak_rss_mb: 812.25,
  answer_ms: 33.333,
  ...extra,
});

function example(): ResultsInput {
  return {
    n_docs: 1200,
    n_questions: 3000,
    methods: {
      none: ok(1.5, 3.8, {
        adapt_ms_per_doc: 0,
        peak_rss_mb: 401.5,
        prompt_template: "chat",
        prompt_search: [
          { template: "plain", f1: 2, em: 1 },
          { template: "chat", f1: 3.5, em: 2 },
        ],
      }),
      uniform: ok(4.25, 9.1, {
        adapt_ms_per_doc: 2345.678,
        lr: 3e-5,
        lr_search: [
          { lr: 1e-5, f1: 8 },
          { lr: 3e-5, f1: 9.5 },
        ],
        prompt_template: "plain",
        prompt_search: [
          { lr: 1e-5, template: "plain", f1: 8 },
          { lr: 1e-5, template: "chat", f1: 8.5 },
          { lr: 3e-5, template: "plain", f1: 9.5 },
          { lr: 3e-5, template: "chat", f1: 7 },
        ],
      }),
      salient_spans: ok(5.0, 10.2),
      camels: { status: "not_run", reason: "needs a 1B-parameter weighting model; infeasible on 2 CPU cores" },
      mac: { status: "ok", ...ok(6.256, 10.444) },
      mac_hierarchical: ok(6.0, 10.1, {
        aggregation: "hierarchical",
        group_size: 16,
        n: 3000,
        retention_f1_start: null,
      }),
      bm25: ok(12.0, 18.5, { retrieved_k: 1, adapt_ms_per_doc: 0.42, prompt_template: "plain" }),
      dense: ok(11.0, 17.25, { retrieved_k: 1 }),
      oracle_context: ok(13.0, 20.5, { retrieved_k: 1 }),
      bm25_mac: ok(14.5, 21.75, { retrieved_k: 1, answer_ms: 97.125 }),
    },
    retention: {
      mac: [
        [0, 100],
        [200, 97.5],
        [400, 95],
        [800, 93.25],
      ],
      uniform: [
        [0, 100],
        [200, 80],
        [400, 66.5],
        [800, 50],
      ],
      salient_spans: [
        [0, 100],
        [200, 85],
        [400, 70],
        [800, 61],
      ],
      bm25: [
        [0, 100],
        [200, 99],
        [400, 98],
        [800, 97],
      ],
    },
    retention_f1: { mac: [[0, 10.4]] },
    memory_ablation: {
      k: 8,
      questions: 128,
      none: 3.1,
      own_alone: 2.2,
      own_among_k: 2.4,
      unrelated_k: 3.5,
      in_context: 1.2,
      content_gap: 1.1,
    },
    memory_ablation_f1: {
      none: { em: 1, f1: 3 },
      own_alone: { em: 9, f1: 14 },
      own_among_k: { em: 8, f1: 12.5 },
      unrelated_k: { em: 2, f1: 4 },
      in_context: { em: 30, f1: 41 },
      share_of_in_context: (100 * 12.5) / 41,
      predictions: "predictions/ablation.jsonl",
      seconds: 600,
      peak_rss_mb: 1500,
    },
    retention_setup: { initial_docs: 200, n_questions: 150 },
    aggregation_cost: {
      group_size: 16,
      n_questions: 16,
      points: [
        // As the worker writes a point (src/eval/worker.ts).
        {
          entries: 1000,
          mode: "full",
          group_size: null,
          tokens_per_entry: 8,
          width: 576,
          ms: 12.5,
          memory_mb: 40,
          repetitions: 3,
        },
        { entries: 1000, mode: "hierarchical", ms: 10, memory_mb: 12 },
        { entries: 10000, mode: "full", ms: 130, memory_mb: 400 },
        { entries: 10000, mode: "hierarchical", ms: 60, memory_mb: 14 },
        { entries: 100000, mode: "full", ms: 1400, memory_mb: 4000.125 },
        { entries: 100000, mode: "hierarchical", ms: 520, memory_mb: 18 },
      ],
    },
    meta: {
      command: "mac-lm eval --data squad-dev-open.json --out runs/eval",
      git_commit: "014c557",
      git_dirty: true,
      started_at: "2025-01-01T10:00:00.000Z",
      finished_at: "2025-01-01T12:34:56.000Z",
      base_model: "smollm2-135m-instruct",
      checkpoint: "checkpoints/mac-default",
      checkpoint_step: 450,
      config: { numSlots: 8, base: "smollm2-135m-instruct", qaTemplate: "Question: {question}\nAnswer:" },
      decoding: "greedy",
      machine: { platform: "linux", arch: "x64", cpus: 2, cpu_model: "Test CPU", mem_gb: 15.6, node: "v20.20.2" },
      data: { file: "../shared/data/squad/squad-dev-open.json", format: "squad", split: "test" },
      seed: 0,
    },
    notes: ["A smoke run."],
  };
}

/** Tests poke at arbitrary fields of the results JSON. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

/** A deep copy of the example with `edit` applied. */
function mutated(edit: (r: Loose) => void): unknown {
  const r = structuredClone(example()) as Loose;
  edit(r);
  return r;
}

const badField = (json: unknown): string => {
  try {
    parseResults(json, "results.json");
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected a validation error");
};

const tmpDirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "maclm-report-"));
  tmpDirs.push(d);
  return d;
};
afterAll(() => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("results schema", () => {
  it("accepts a full example and fills the defaults", () => {
    const r = parseResults(example());
    expect(r.schema_version).toBe(1);
    expect(r.methods.none.status).toBe("ok"); // status omitted → ok
    expect(r.methods.camels).toEqual({
      status: "not_run",
      reason: "needs a 1B-parameter weighting model; infeasible on 2 CPU cores",
    });
    expect(r.aggregation_cost.status).toBe("ok");
    expect(r.methods.mac.status === "ok" && r.methods.mac.f1).toBe(10.444);
    expect(r.retention.mac?.[3]).toEqual([800, 93.25]);
  });

  it("accepts a minimal run (cost not measured, no retention, nothing but MAC)", () => {
    const partial = fillNotRun({ mac: ok(1, 2) }, "not selected (--methods)");
    const r = parseResults({
      ...example(),
      methods: partial,
      retention: {},
      retention_f1: undefined,
      retention_setup: undefined,
      aggregation_cost: { status: "not_run", reason: "--no-cost" },
      meta: { ...example().meta, git_commit: null, checkpoint: null, decoding: { numBeams: 12, numBeamGroups: 4 } },
    });
    expect(r.methods.bm25).toEqual({ status: "not_run", reason: "not selected (--methods)" });
    expect(r.methods.mac.status).toBe("ok");
  });

  it.each([
    ["a score above 100", (r: Loose) => (r.methods.mac.f1 = 104), /methods\.mac\.f1: Too big/],
    ["a missing method", (r: Loose) => delete r.methods.camels, /methods\.camels: /],
    ["an unknown method", (r: Loose) => (r.methods.rag = ok(1, 2)), /methods: Unrecognized key: "rag"/],
    [
      "a misspelt field",
      (r: Loose) => (r.methods.uniform.f1_shortes = 3),
      /methods\.uniform: Unrecognized key: "f1_shortes"/,
    ],
    ["a missing metric", (r: Loose) => delete r.methods.dense.peak_rss_mb, /methods\.dense\.peak_rss_mb: /],
    ["not_run without a reason", (r: Loose) => (r.methods.camels = { status: "not_run" }), /methods\.camels\.reason/],
    ["an unknown status", (r: Loose) => (r.methods.camels.status = "failed"), /methods\.camels\.status/],
    ["a NaN score", (r: Loose) => (r.methods.bm25.em = NaN), /methods\.bm25\.em: /],
    [
      "retention not increasing",
      (r: Loose) => (r.retention.mac[2][0] = 200),
      /retention\.mac\[2\]\[0\]: extra_docs must increase/,
    ],
    ["a bad retention point", (r: Loose) => (r.retention.uniform[1] = [200]), /retention\.uniform\[1\]/],
    [
      "a duplicate cost point",
      (r: Loose) => (r.aggregation_cost.points[1].mode = "full"),
      /aggregation_cost\.points\[1\]: duplicate point 1000\/full/,
    ],
    [
      "a bad cost mode",
      (r: Loose) => (r.aggregation_cost.points[0].mode = "flat"),
      /aggregation_cost\.points\[0\]\.mode/,
    ],
    [
      "a negative time",
      (r: Loose) => (r.aggregation_cost.points[2].ms = -1),
      /aggregation_cost\.points\[2\]\.ms: Too small/,
    ],
    ["a bad commit", (r: Loose) => (r.meta.git_commit = "HEAD"), /meta\.git_commit: must be a git commit hash/],
    ["a bad date", (r: Loose) => (r.meta.started_at = "yesterday"), /meta\.started_at: /],
    ["a missing n_docs", (r: Loose) => delete r.n_docs, /results\.json: n_docs: /],
    [
      "a content gap that is not unrelated_k − own_among_k",
      (r: Loose) => (r.memory_ablation.content_gap = 2),
      /memory_ablation\.content_gap: must be unrelated_k − own_among_k/,
    ],
    [
      "an ablation without a condition",
      (r: Loose) => delete r.memory_ablation.in_context,
      /memory_ablation\.in_context: /,
    ],
    [
      "an ablation F1 above 100",
      (r: Loose) => (r.memory_ablation_f1.own_alone.f1 = 140),
      /memory_ablation_f1\.own_alone\.f1: Too big/,
    ],
  ])("rejects %s, naming the field", (_what, edit, message) => {
    expect(badField(mutated(edit))).toMatch(message);
  });

  it("reads back what it wrote; a bad file is named with its field", () => {
    const dir = tmp();
    const file = join(dir, "results.json");
    const written = writeResults(file, example());
    expect(readResults(file)).toEqual(written);
    writeFileSync(file, JSON.stringify(mutated((r) => (r.n_questions = -3))));
    expect(() => readResults(file)).toThrow(
      new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: n_questions: Too small`),
    );
    writeFileSync(file, "{ not json");
    expect(() => readResults(file)).toThrow(/not readable JSON/);
  });

  it("writes atomically: no temp files left, and invalid results are kept aside, not written", () => {
    const dir = tmp();
    writeFileAtomic(join(dir, "a.txt"), "one");
    writeFileAtomic(join(dir, "a.txt"), "two");
    expect(readFileSync(join(dir, "a.txt"), "utf8")).toBe("two");
    expect(() => writeFileAtomic(join(dir, "missing", "b.txt"), "x")).toThrow();
    expect(() =>
      writeResults(join(dir, "results.json"), mutated((r) => (r.methods.mac.em = 101)) as ResultsInput),
    ).toThrow(/methods\.mac\.em/);
    expect(readdirSync(dir).sort()).toEqual(["a.txt", "results.invalid.json"]);
    expect(JSON.parse(readFileSync(join(dir, "results.invalid.json"), "utf8")).methods.mac.em).toBe(101);
  });
});

describe("markdown report", () => {
  const md = renderMarkdown(parseResults(example()), { plots: { retention: "retention.svg", cost: "cost.svg" } });
  const rowOf = (label: string, text = md): string[] => {
    const line = text.split("\n").find((l) => l.startsWith(`| ${label} |`));
    if (!line) throw new Error(`no row "${label}" in\n${md}`);
    return line
      .slice(2, -2)
      .split(" | ")
      .map((c) => c.trim());
  };
  const section = (title: string): string => md.split(`## ${title}`)[1]!.split("\n## ")[0]!;

  it("formats numbers like the paper", () => {
    expect(fmt2(6.256)).toBe("6.26");
    expect(fmt2(-0.001)).toBe("0.00");
    expect(fmt2(100)).toBe("100.00");
    expect(fmtInt(100000)).toBe("100,000");
    expect(fmtInt(999)).toBe("999");
  });

  it("has Table 1 with scores, costs, the best score in bold and CaMeLS marked not run", () => {
    const t1 = section("Table 1: online adaptation");
    expect(t1).toContain(
      "| Method | EM | F1 | prefix-EM | shortest-F1 | adapt ms/doc | peak RSS (MB) | answer ms/question |",
    );
    expect(rowOf("Base LM (no adaptation)")).toEqual([
      "Base LM (no adaptation)",
      "1.50",
      "3.80",
      "2.50",
      "2.80",
      "0.00",
      "401.50",
      "33.33",
    ]);
    expect(rowOf("Uniform")).toEqual(["Uniform", "4.25", "9.10", "5.25", "8.10", "2345.68", "812.25", "33.33"]);
    expect(rowOf("MAC")).toEqual(["MAC", "**6.26**", "**10.44**", "**7.26**", "**9.44**", "120.50", "812.25", "33.33"]);
    expect(rowOf("CaMeLS (not run)").slice(1)).toEqual(Array(7).fill("—"));
    // Table 1 lists only the online-adaptation methods, in the paper's order.
    const order = ["Base LM", "Uniform", "Salient Spans", "CaMeLS", "MAC |", "MAC (hierarchical)"].map((s) =>
      t1.indexOf(`| ${s}`),
    );
    expect(order.every((i, k) => i > 0 && (k === 0 || i > order[k - 1]!))).toBe(true);
    expect(t1).not.toContain("BM25");
  });

  it("has Table 2 with the retrievers and BM25 + MAC", () => {
    const t2 = section("Table 2: retrieval augmentation");
    expect(t2).toContain("| BM25 | 12.00 | 18.50 |");
    expect(t2).toContain("| Dense retrieval | 11.00 | 17.25 |");
    expect(rowOf("BM25 + MAC").slice(0, 3)).toEqual(["BM25 + MAC", "**14.50**", "**21.75**"]);
    expect(rowOf("BM25 + MAC")[7]).toBe("97.13");
    expect(t2).not.toContain("Uniform");
  });

  it("has Table 2 with the oracle context as the retrievers' ceiling", () => {
    expect(section("Table 2: retrieval augmentation")).toContain("| Oracle context (own paragraph) | 13.00 | 20.50 |");
  });

  it("has the prompts: each method's template and the validation F1 that chose it", () => {
    const p = section("Prompts");
    expect(p).toContain('then MAC\'s template "Question: {question}\\nAnswer:"');
    expect(p).toContain("| Method | Template | validation F1: plain | validation F1: chat | Remark |");
    expect(rowOf("Base LM (no adaptation)", p)).toEqual(["Base LM (no adaptation)", "chat", "2.00", "**3.50**", ""]);
    expect(rowOf("Uniform", p)).toEqual(["Uniform", "plain", "**9.50**", "7.00", "at the chosen learning rate 3e-5"]);
    expect(rowOf("Salient Spans", p)).toEqual(["Salient Spans", "plain", "—", "—", "not chosen on validation"]);
    expect(rowOf("BM25", p)).toEqual(["BM25", "plain", "—", "—", "fixed, not chosen on validation"]);
    expect(rowOf("BM25 + MAC", p)).toEqual([
      "BM25 + MAC",
      "its checkpoint's",
      "—",
      "—",
      "the frame and template MAC was trained with",
    ]);
    expect(p).toContain("- Uniform: 1e-5 plain 8.00, 1e-5 chat 8.50, 3e-5 plain 9.50, 3e-5 chat 7.00");
  });

  it("has the memory ablation: losses and scores per condition, the content gap, the share of in-context F1", () => {
    const a = section("Memory ablation: does the memory carry the documents' content?");
    expect(a).toContain("MAC's answers to 128 questions sampled from the stream, with K = 8 documents");
    expect(a).toContain("| Condition | Memory | Answer loss (nats/token) | EM | F1 |");
    expect(rowOf("`own_among_k`")).toEqual([
      "`own_among_k`",
      "its own document among K − 1 others (as MAC is used)",
      "2.4000",
      "8.00",
      "12.50",
    ]);
    expect(rowOf("`in_context`").slice(2)).toEqual(["1.2000", "30.00", "41.00"]);
    expect(a).toContain("**Content gap** (unrelated_k − own_among_k): **1.1000 nats** per answer token.");
    expect(a).toContain(
      "**MAC F1 as % of in-context F1** (own_among_k / in_context, the same questions): **30.49 %**.",
    );
    expect(a).toContain("On the whole stream: MAC F1 10.44 / oracle-context F1 20.50 = 50.95 %");
    const none = renderMarkdown(
      parseResults({ ...example(), memory_ablation: undefined, memory_ablation_f1: undefined }),
    );
    expect(none).toContain(
      "## Memory ablation: does the memory carry the documents' content?\n\nNot measured (no MAC method, or --ablation-questions 0).",
    );
  });

  it("has the retention table, the cost table and the plots", () => {
    const ret = section("Knowledge retention");
    expect(ret).toContain("| Additional documents | Uniform | Salient Spans | MAC | BM25 |");
    expect(rowOf("800")).toEqual(["800", "50.00", "61.00", "93.25", "97.00"]);
    expect(ret).toContain("Initial F1 (100 %): MAC 10.40.");
    expect(ret).toContain("![Knowledge retention](retention.svg)");
    const cost = section("MAC aggregation cost");
    expect(rowOf("100,000")).toEqual(["100,000", "1400.00", "4000.13", "520.00", "18.00", "2.69×"]);
    expect(rowOf("1,000")).toEqual(["1,000", "12.50", "40.00", "10.00", "12.00", "1.25×"]);
    expect(cost).toContain("group size M = 16");
    expect(cost).toContain("![Aggregation cost](cost.svg)");
  });

  it("has the command, the metadata and the notes", () => {
    expect(section("Reproduce")).toContain("```sh\nmac-lm eval --data squad-dev-open.json --out runs/eval\n```");
    const run = section("Run");
    expect(run).toContain("| Base model | smollm2-135m-instruct |");
    expect(run).toContain("| MAC checkpoint | `checkpoints/mac-default` (step 450) |");
    expect(run).toContain("| Decoding | greedy |");
    expect(run).toContain("| Finished | 2025-01-01T12:34:56.000Z (2 h 34 min) |");
    expect(run).toContain("Test CPU, 2 CPUs, 15.60 GB RAM, linux-x64");
    expect(run).toContain("| Git commit | 014c557 (uncommitted changes) |");
    expect(run).toContain('"numSlots": 8');
    const notes = section("Notes");
    expect(notes).toContain("**CaMeLS** was not run: needs a 1B-parameter weighting model; infeasible on 2 CPU cores");
    expect(notes).toContain(
      "**Uniform**: learning rate 3e-5; chosen on validation documents among 1e-5 (F1 8.00), 3e-5 (F1 9.50)",
    );
    expect(notes).toContain("- A smoke run.");
  });

  it("says what was not measured", () => {
    const r = parseResults({
      ...example(),
      retention: {},
      aggregation_cost: { status: "not_run", reason: "--no-cost" },
    });
    const m = renderMarkdown(r);
    expect(m).toContain("## Knowledge retention\n\nNot measured.");
    expect(m).toContain("## MAC aggregation cost\n\nNot measured: --no-cost");
    expect(m).not.toContain("![");
  });
});

/** Parses an SVG strictly: any XML error fails. */
function parseSvg(svg: string): Document {
  const errors: string[] = [];
  let doc: Document;
  try {
    doc = new DOMParser({ onError: (level, msg) => errors.push(`${level}: ${msg}`) }).parseFromString(
      svg,
      "image/svg+xml",
    );
  } catch (e) {
    errors.push((e as Error).message);
  }
  if (errors.length) throw new Error(`invalid SVG: ${errors.join("; ")}`);
  expect(doc!.documentElement?.nodeName).toBe("svg");
  return doc!;
}

const elements = (doc: Document, tag: string): Element[] => Array.from(doc.getElementsByTagName(tag));
const byRole = (doc: Document, role: string): Element[] =>
  elements(doc, "path").filter((e) => e.getAttribute("aria-roledescription") === role);
/** The texts inside groups of class `role-<role>` (legend labels, axis labels). */
const texts = (doc: Document, role: string): string[] =>
  elements(doc, "g")
    .filter((g) => (g.getAttribute("class") ?? "").split(" ").includes(`role-${role}`))
    .flatMap((g) => elements(g as unknown as Document, "text").map((t) => t.textContent ?? ""));

function pngSize(png: Buffer): { width: number; height: number } {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(png.subarray(12, 16).toString("latin1")).toBe("IHDR");
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe("plots", () => {
  const results = parseResults(example());

  it("the XML check catches a broken SVG", () => {
    expect(() => parseSvg('<svg xmlns="http://www.w3.org/2000/svg"><g></svg>')).toThrow(/invalid SVG/);
  });

  it("retention: one line per method with its points, a legend naming the methods, PNG at 2×", async () => {
    const svg = await renderSvg(retentionSpec(results)!);
    const doc = parseSvg(svg);
    const lines = byRole(doc, "line mark");
    expect(lines).toHaveLength(4);
    const methodOf = (e: Element) => /method: ([^;]+)/.exec(e.getAttribute("aria-label") ?? "")?.[1];
    expect(lines.map(methodOf)).toEqual(["Uniform", "Salient Spans", "MAC", "BM25"]);
    // 4 points each: M + 3 L segments; distinct colours.
    for (const l of lines) expect((l.getAttribute("d")!.match(/L/g) ?? []).length).toBe(3);
    expect(new Set(lines.map((l) => l.getAttribute("stroke"))).size).toBe(4);
    expect(texts(doc, "legend-label")).toEqual(["Uniform", "Salient Spans", "MAC", "BM25"]);
    expect(texts(doc, "axis-title")).toEqual(["additional documents", "share of initial F1 kept (%)"]);
    expect(svg).toContain("Knowledge retention");

    const { width, height } = pngSize(await svgToPng(svg));
    const w = Number(doc.documentElement!.getAttribute("width"));
    const h = Number(doc.documentElement!.getAttribute("height"));
    expect(w).toBeGreaterThan(560); // plot 520 + axis + legend
    expect(w).toBeLessThan(900); // no runaway margins from text width guesses
    expect(width).toBe(2 * w);
    expect(height).toBe(2 * h);
  });

  it("retention skips undefined shares and is absent without data", async () => {
    const r = parseResults({
      ...example(),
      retention: {
        none: [
          [0, null],
          [200, null],
        ],
        mac: [
          [0, 100],
          [200, 90],
        ],
      },
    });
    expect(renderMarkdown(r)).toContain("| 200 | n/a | 90.00 |");
    const doc = parseSvg(await renderSvg(retentionSpec(r)!));
    expect(byRole(doc, "line mark")).toHaveLength(1);
    expect(retentionSpec(parseResults({ ...example(), retention: {} }))).toBeNull();
  });

  it("aggregation cost: full vs hierarchical in both panels, log x with the bank sizes", async () => {
    const svg = await renderSvg(costSpec(results)!);
    const doc = parseSvg(svg);
    const lines = byRole(doc, "line mark");
    expect(lines).toHaveLength(4); // time and memory × full and hierarchical
    const modes = lines.map((l) => /aggregation: (\w+)/.exec(l.getAttribute("aria-label") ?? "")?.[1]).sort();
    expect(modes).toEqual(["full", "full", "hierarchical", "hierarchical"]);
    expect(texts(doc, "legend-label")).toEqual(["full", "hierarchical"]);
    const axisLabels = texts(doc, "axis-label");
    for (const s of ["1k", "10k", "100k"]) expect(axisLabels.filter((t) => t === s)).toHaveLength(2);
    expect(texts(doc, "axis-title")).toEqual(
      expect.arrayContaining(["memory bank entries (log scale)", "time per aggregation (ms)", "memory (MB)"]),
    );
    const { width, height } = pngSize(await svgToPng(svg, 1));
    expect(width).toBe(Number(doc.documentElement!.getAttribute("width")));
    expect(height).toBeGreaterThan(250);
    expect(costSpec(parseResults({ ...example(), aggregation_cost: { status: "not_run", reason: "off" } }))).toBeNull();
  });

  it("estimates text widths close to a sans-serif font's", () => {
    // DejaVu Sans 11 px: "Salient Spans" is about 75 px wide; Vega's canvas-less guess would be 114.
    expect(estimateTextWidth("Salient Spans", 11)).toBeGreaterThan(65);
    expect(estimateTextWidth("Salient Spans", 11)).toBeLessThan(90);
    expect(estimateTextWidth("method", 12, true)).toBeGreaterThan(estimateTextWidth("method", 12));
  });
});

describe("writeReport", () => {
  it("writes results.json, report.md and both plots, atomically", async () => {
    const dir = join(tmp(), "out");
    const { files, warnings, results } = await writeReport(dir, example());
    expect(warnings).toEqual([]);
    const names = ["results.json", "retention.svg", "retention.png", "cost.svg", "cost.png", "report.md"];
    expect(files).toEqual(names.map((n) => join(dir, n)));
    expect(readdirSync(dir).sort()).toEqual([...names].sort()); // no temp files left
    expect(readResults(join(dir, "results.json"))).toEqual(results);
    const md = readFileSync(join(dir, "report.md"), "utf8");
    expect(md).toContain("![Knowledge retention](retention.svg)");
    expect(md).toContain("| MAC | **6.26** |");
    parseSvg(readFileSync(join(dir, "cost.svg"), "utf8"));
    pngSize(readFileSync(join(dir, "retention.png")));

    // A rerun over the same folder replaces the files; without data for the plots they are not written.
    const again = await writeReport(dir, {
      ...example(),
      retention: {},
      aggregation_cost: { status: "not_run", reason: "x" },
    });
    expect(again.files.map((f) => f.slice(dir.length + 1))).toEqual(["results.json", "report.md"]);
  });

  it("throws on invalid results naming the field, keeping them as results.invalid.json", async () => {
    const dir = tmp();
    await expect(writeReport(dir, mutated((r) => delete r.meta.command) as ResultsInput)).rejects.toThrow(
      /meta\.command/,
    );
    expect(readdirSync(dir)).toEqual(["results.invalid.json"]);
  });
});
