/**
 * report.md of `mac-lm eval`: the papers' tables from results.json. Table 1 (online adaptation: the base LM, the
 * fine-tuning baselines and MAC) with each method's costs, Table 2 (retrieval with and without MAC), the memory
 * ablation (does the memory carry the documents' content?), knowledge retention, MAC's aggregation cost vs bank
 * size, the command to reproduce, the run's metadata and notes.
 * Scores are percent with 2 decimals, as the papers print them; the best score of a column is bold.
 */
import { PROMPT_TEMPLATES } from "../methods/types.js";
import { METHOD_LABELS, METHOD_NAMES, isOk, type MethodOkResult, type Results, type ResultMethod } from "./results.js";

export const TABLE1_METHODS: readonly ResultMethod[] = [
  "none",
  "uniform",
  "salient_spans",
  "camels",
  "mac",
  "mac_hierarchical",
];
export const TABLE2_METHODS: readonly ResultMethod[] = ["bm25", "dense", "oracle_context", "bm25_mac"];

/** 2 decimals, never "-0.00". */
export const fmt2 = (x: number): string => (Math.abs(x) < 0.005 ? 0 : x).toFixed(2);
/** 3e-5 → "3e-5", 0.01 → "0.01". */
const fmtLr = (x: number): string => (x < 1e-3 ? x.toExponential() : String(x));
/** 1000000 → "1,000,000" (independent of the locale). */
export const fmtInt = (n: number): string => String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");

const DASH = "—";
const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function table(header: string[], rows: string[][], align: ("l" | "r")[]): string {
  const sep = align.map((a) => (a === "r" ? "---:" : ":---"));
  return [header, sep, ...rows].map((r) => `| ${r.map(cell).join(" | ")} |`).join("\n");
}

type Score = "em" | "f1" | "em_prefix" | "f1_shortest";

/** Score columns with the column's best value in bold (all of them on a tie). */
function scoreCells(
  methods: readonly ResultMethod[],
  results: Results,
  keys: readonly Score[],
): Map<ResultMethod, string[]> {
  const ok = methods.map((m) => results.methods[m]).filter(isOk);
  const best = new Map(keys.map((k) => [k, Math.max(...ok.map((r) => Number(fmt2(r[k]))))]));
  const out = new Map<ResultMethod, string[]>();
  for (const m of methods) {
    const r = results.methods[m];
    out.set(
      m,
      keys.map((k) => {
        if (!isOk(r)) return DASH;
        const s = fmt2(r[k]);
        return ok.length > 1 && Number(s) === best.get(k) ? `**${s}**` : s;
      }),
    );
  }
  return out;
}

function label(m: ResultMethod, results: Results): string {
  return isOk(results.methods[m]) ? METHOD_LABELS[m] : `${METHOD_LABELS[m]} (not run)`;
}

function costCells(r: MethodOkResult | undefined): string[] {
  return r ? [fmt2(r.adapt_ms_per_doc), fmt2(r.peak_rss_mb), fmt2(r.answer_ms)] : [DASH, DASH, DASH];
}

/** Table 1 / Table 2: methods as rows, the four scores, then the costs. */
function methodTable(methods: readonly ResultMethod[], results: Results): string {
  const keys: Score[] = ["em", "f1", "em_prefix", "f1_shortest"];
  const scores = scoreCells(methods, results, keys);
  const rows = methods.map((m) => {
    const r = results.methods[m];
    return [label(m, results), ...scores.get(m)!, ...costCells(isOk(r) ? r : undefined)];
  });
  return table(
    ["Method", "EM", "F1", "prefix-EM", "shortest-F1", "adapt ms/doc", "peak RSS (MB)", "answer ms/question"],
    rows,
    ["l", "r", "r", "r", "r", "r", "r", "r"],
  );
}

function retentionTable(results: Results): string | null {
  const methods = METHOD_NAMES.filter((m) => results.retention[m] !== undefined);
  if (methods.length === 0) return null;
  const xs = [...new Set(methods.flatMap((m) => results.retention[m]!.map(([x]) => x)))].sort((a, b) => a - b);
  const rows = xs.map((x) => [
    fmtInt(x),
    ...methods.map((m) => {
      const p = results.retention[m]!.find(([px]) => px === x);
      return p === undefined ? DASH : p[1] === null ? "n/a" : fmt2(p[1]);
    }),
  ]);
  let s = table(["Additional documents", ...methods.map((m) => METHOD_LABELS[m])], rows, [
    "r",
    ...methods.map(() => "r" as const),
  ]);
  const f1 = results.retention_f1;
  if (f1) {
    const initial = methods.flatMap((m) => {
      const p = f1[m]?.[0];
      return p ? [`${METHOD_LABELS[m]} ${fmt2(p[1])}`] : [];
    });
    if (initial.length) s += `\n\nInitial F1 (100 %): ${initial.join(", ")}.`;
  }
  if (methods.some((m) => results.retention[m]!.some(([, v]) => v === null)))
    s += "\n\nn/a: the initial F1 was 0, so no share can be given.";
  return s;
}

function costTable(results: Results): string {
  const cost = results.aggregation_cost;
  if (cost.status !== "ok") return `Not measured: ${cost.reason}`;
  const sizes = [...new Set(cost.points.map((p) => p.entries))].sort((a, b) => a - b);
  const find = (n: number, mode: "full" | "hierarchical") =>
    cost.points.find((p) => p.entries === n && p.mode === mode);
  const rows = sizes.map((n) => {
    const f = find(n, "full");
    const h = find(n, "hierarchical");
    const pair = (p: typeof f): string[] =>
      p === undefined ? [DASH, DASH] : p.status === "ok" ? [fmt2(p.ms), fmt2(p.memory_mb)] : ["not run", DASH];
    const ratio = f?.status === "ok" && h?.status === "ok" && h.ms > 0 ? `${fmt2(f.ms / h.ms)}×` : DASH;
    return [fmtInt(n), ...pair(f), ...pair(h), ratio];
  });
  let s = table(
    ["Bank entries", "full ms", "full MB", "hierarchical ms", "hierarchical MB", "time full / hierarchical"],
    rows,
    ["r", "r", "r", "r", "r", "r"],
  );
  const details = [
    cost.group_size !== undefined ? `group size M = ${cost.group_size}` : "",
    cost.n_questions !== undefined
      ? `${cost.n_questions} question${cost.n_questions === 1 ? "" : "s"} per aggregation call`
      : "",
  ].filter(Boolean);
  if (details.length) s += `\n\n${details.join("; ")}.`;
  const skipped = cost.points.flatMap((p) => (p.status === "not_run" ? [p] : []));
  if (skipped.length)
    s += "\n\n" + skipped.map((p) => `- ${fmtInt(p.entries)} entries, ${p.mode}: not run: ${p.reason}`).join("\n");
  if (cost.notes) s += `\n\n${cost.notes}`;
  return s;
}

/** The methods that answer with the prompt MAC was trained with (bm25_mac only when no template was chosen for it). */
const MAC_PROMPTED: readonly ResultMethod[] = ["mac", "mac_hierarchical", "bm25_mac"];

/** Which prompt template each method used and the validation F1 that chose it. */
function promptSection(results: Results): string {
  const rows: string[][] = [];
  const grids: string[] = [];
  for (const m of METHOD_NAMES) {
    const r = results.methods[m];
    if (!isOk(r)) continue;
    if (MAC_PROMPTED.includes(m) && r.prompt_template === undefined) {
      rows.push([
        METHOD_LABELS[m],
        "its checkpoint's",
        ...PROMPT_TEMPLATES.map(() => DASH),
        "the frame and template MAC was trained with",
      ]);
      continue;
    }
    if (r.prompt_template === undefined) {
      rows.push([METHOD_LABELS[m], "plain", ...PROMPT_TEMPLATES.map(() => DASH), "not chosen on validation"]);
      continue;
    }
    const search = r.prompt_search ?? [];
    const byLr = search.some((s) => s.lr !== undefined);
    const shown = byLr ? search.filter((s) => s.lr === r.lr) : search;
    const f1Of = (t: string): string => {
      const s = shown.find((x) => x.template === t);
      return s === undefined ? DASH : t === r.prompt_template ? `**${fmt2(s.f1)}**` : fmt2(s.f1);
    };
    const remark =
      search.length === 0
        ? "fixed, not chosen on validation"
        : byLr && r.lr !== undefined
          ? `at the chosen learning rate ${fmtLr(r.lr)}`
          : m === "bm25_mac"
            ? "for BM25's documents; the memory's window is read in MAC's frame"
            : "";
    rows.push([METHOD_LABELS[m], r.prompt_template, ...PROMPT_TEMPLATES.map(f1Of), remark]);
    if (byLr)
      grids.push(
        `- ${METHOD_LABELS[m]}: ` +
          search.map((s) => `${s.lr !== undefined ? fmtLr(s.lr) : DASH} ${s.template} ${fmt2(s.f1)}`).join(", "),
      );
  }
  if (rows.length === 0) return "No method ran.";
  const qa = results.meta.config.qaTemplate;
  const parts = [
    "Every method that prompts the base LM answers with the template that had the best F1 on the validation " +
      "documents (never the test stream): **plain**, the context documents (if any) then MAC's template " +
      (typeof qa === "string" ? `${JSON.stringify(qa)} ` : "") +
      "(what MAC was trained with), or **chat**, SmolLM2's chat template (a system turn asking for a short answer, " +
      "a user turn with the context and the question, then the assistant's turn). MAC keeps the template it was " +
      "trained with. BM25 + MAC over an extractive memory reads the memory's window in MAC's frame where the " +
      "memory's evidence wins and BM25's documents elsewhere; its template is chosen, among the same ones, for those.",
    table(["Method", "Template", ...PROMPT_TEMPLATES.map((t) => `validation F1: ${t}`), "Remark"], rows, [
      "l",
      "l",
      ...PROMPT_TEMPLATES.map(() => "r" as const),
      "l",
    ]),
  ];
  if (grids.length)
    parts.push(
      "Fine-tuning chooses its learning rate and template together, on the same adapted states (lr template F1):\n\n" +
        grids.join("\n"),
    );
  return parts.join("\n\n");
}

const ABLATION_ROWS = [
  ["none", "no memory"],
  ["own_alone", "the question's own document alone"],
  ["own_among_k", "its own document among K − 1 others (as MAC is used)"],
  ["unrelated_k", "K unrelated documents"],
  ["in_context", "no memory; the document in the LM's context (the ceiling)"],
] as const;

/** The memory ablation: losses and scores per condition, the content gap and MAC's share of the in-context F1. */
function ablationSection(results: Results): string {
  const a = results.memory_ablation;
  const f = results.memory_ablation_f1;
  if (!a) return "Not measured (no MAC method, or --ablation-questions 0).";
  const rows = ABLATION_ROWS.map(([c, what]) => [
    `\`${c}\``,
    what,
    a[c].toFixed(4),
    f ? fmt2(f[c].em) : DASH,
    f ? fmt2(f[c].f1) : DASH,
  ]);
  const parts = [
    `MAC's answers to ${fmtInt(a.questions)} questions sampled from the stream, with K = ${a.k} documents in the ` +
      "memories (distractors from the stream's documents): the answer loss (nats per answer token, on the shortest " +
      "reference as MAC trains) and the EM/F1 of the answers, decoded as the methods decode, with MAC's prompt " +
      "template in every condition (in_context: the document's tokens, then that prompt, as the distillation " +
      "teacher reads them; the oracle-context method is the same LM and paragraph with its validated prompt).",
    table(["Condition", "Memory", "Answer loss (nats/token)", "EM", "F1"], rows, ["l", "l", "r", "r", "r"]),
    `**Content gap** (unrelated_k − own_among_k): **${a.content_gap.toFixed(4)} nats** per answer token. ` +
      "A memory that carries the documents' content lowers the loss of the own document's questions; one that only " +
      "learned an answer format gives a gap near 0.",
  ];
  if (f)
    parts.push(
      `**MAC F1 as % of in-context F1** (own_among_k / in_context, the same questions): ` +
        (f.share_of_in_context === null ? "n/a (the in-context F1 is 0)" : `**${fmt2(f.share_of_in_context)} %**`) +
        ".",
    );
  const mac = results.methods.mac;
  const oracle = results.methods.oracle_context;
  if (mac && oracle && isOk(mac) && isOk(oracle))
    parts.push(
      `On the whole stream: MAC F1 ${fmt2(mac.f1)} / oracle-context F1 ${fmt2(oracle.f1)} = ` +
        (oracle.f1 > 0 ? `${fmt2((100 * mac.f1) / oracle.f1)} %` : "n/a") +
        " (each method with its own prompt).",
    );
  return parts.join("\n\n");
}

function duration(a: string, b: string): string {
  const s = Math.max(0, (Date.parse(b) - Date.parse(a)) / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${Math.round(s % 60)} s` : `${fmt2(s)} s`;
}

function metadata(results: Results): string {
  const m = results.meta;
  const rows: [string, string][] = [];
  if (m.data)
    rows.push([
      "Data",
      [
        `\`${m.data.file}\``,
        m.data.format,
        m.data.split && `split ${m.data.split}`,
        m.data.sha256 && `sha256 ${m.data.sha256}`,
      ]
        .filter(Boolean)
        .join(", "),
    ]);
  rows.push(["Stream", `${fmtInt(results.n_docs)} documents, ${fmtInt(results.n_questions)} questions`]);
  rows.push([
    "Base model",
    m.base_adapter ? `${m.base_model} + QA adapter ${m.base_adapter} (every method)` : m.base_model,
  ]);
  rows.push([
    "MAC checkpoint",
    m.checkpoint === null
      ? DASH
      : `\`${m.checkpoint}\`${m.checkpoint_step !== undefined ? ` (step ${m.checkpoint_step})` : ""}`,
  ]);
  rows.push(["Decoding", typeof m.decoding === "string" ? m.decoding : `\`${JSON.stringify(m.decoding)}\``]);
  if (m.seed !== undefined) rows.push(["Seed", String(m.seed)]);
  rows.push(["Started", m.started_at]);
  rows.push(["Finished", `${m.finished_at} (${duration(m.started_at, m.finished_at)})`]);
  const mc = m.machine;
  rows.push([
    "Machine",
    `${mc.cpu_model}, ${mc.cpus} CPUs${mc.threads !== undefined ? ` (${mc.threads} threads used)` : ""}, ${fmt2(mc.mem_gb)} GB RAM, ${mc.platform}-${mc.arch}${mc.os_release ? ` ${mc.os_release}` : ""}`,
  ]);
  rows.push(["Node.js", mc.node]);
  if (m.version) rows.push(["mac-lm", m.version]);
  rows.push([
    "Git commit",
    m.git_commit === null ? "unknown" : `${m.git_commit}${m.git_dirty ? " (uncommitted changes)" : ""}`,
  ]);
  return (
    table(
      ["", ""],
      rows.map(([k, v]) => [k, v]),
      ["l", "l"],
    ) +
    "\n\n<details><summary>MAC configuration</summary>\n\n```json\n" +
    JSON.stringify(m.config, null, 2) +
    "\n```\n\n</details>" +
    (m.spec
      ? "\n\n<details><summary>Eval spec</summary>\n\n```json\n" +
        JSON.stringify(m.spec, null, 2) +
        "\n```\n\n</details>"
      : "")
  );
}

function notes(results: Results): string[] {
  const out: string[] = [];
  for (const m of METHOD_NAMES) {
    const r = results.methods[m];
    if (r.status === "not_run")
      out.push(`**${METHOD_LABELS[m]}** was not run: ${r.reason}${r.notes ? ` ${r.notes}` : ""}`);
    else {
      const bits = [
        r.lr !== undefined ? `learning rate ${fmtLr(r.lr)}` : "",
        r.lr_search?.length
          ? `chosen on validation documents among ${r.lr_search.map((s) => `${fmtLr(s.lr)} (F1 ${fmt2(s.f1)})`).join(", ")}`
          : "",
        r.epochs !== undefined ? `${r.epochs} epoch${r.epochs === 1 ? "" : "s"}` : "",
        r.retrieved_k !== undefined
          ? `${r.retrieved_k} retrieved document${r.retrieved_k === 1 ? "" : "s"} in the context` +
            (r.max_context_tokens !== undefined ? ` (at most ${r.max_context_tokens} tokens)` : "")
          : "",
        r.group_size !== undefined ? `group size ${r.group_size}` : "",
        r.n_questions !== undefined && r.n_questions !== results.n_questions
          ? `${fmtInt(r.n_questions)} questions`
          : "",
        r.notes ?? "",
      ].filter(Boolean);
      if (bits.length) out.push(`**${METHOD_LABELS[m]}**: ${bits.join("; ")}`);
    }
  }
  return [...out, ...(results.notes ?? [])];
}

export interface MarkdownOptions {
  /** Plot files to embed (relative to the report), e.g. { retention: "retention.svg", cost: "cost.svg" }. */
  plots?: { retention?: string; cost?: string };
}

/** The report as Markdown. */
export function renderMarkdown(results: Results, opts: MarkdownOptions = {}): string {
  const dataName = results.meta.data?.file.split(/[\\/]/).pop();
  const parts: string[] = [
    `# mac-lm eval${dataName ? `: ${dataName}` : ""}`,
    `${fmtInt(results.n_docs)} documents and ${fmtInt(results.n_questions)} questions; base model ${results.meta.base_model}${results.meta.base_adapter ? ` with the QA adapter ${results.meta.base_adapter}, shared by every method` : ""}. ` +
      "Scores in percent: EM and F1 are the standard SQuAD metrics (maximum over the reference answers); prefix-EM " +
      "and shortest-F1 are the MAC/CaMeLS variants (prediction starts with the gold answer; F1 against the shortest " +
      "reference). Costs: adaptation time per document, peak resident memory of the method's process, answering " +
      "time per question.",
    "## Table 1: online adaptation",
    methodTable(TABLE1_METHODS, results),
    "## Table 2: retrieval augmentation",
    methodTable(TABLE2_METHODS, results),
    "## Prompts",
    promptSection(results),
    "## Memory ablation: does the memory carry the documents' content?",
    ablationSection(results),
    "## Knowledge retention",
  ];
  const ret = retentionTable(results);
  parts.push(
    ret === null
      ? "Not measured."
      : "Share of the initial F1 (%) on the first documents' questions that is kept after adapting to more documents.\n\n" +
          ret +
          (opts.plots?.retention ? `\n\n![Knowledge retention](${opts.plots.retention})` : ""),
  );
  parts.push("## MAC aggregation cost", costTable(results));
  if (opts.plots?.cost) parts.push(`![Aggregation cost](${opts.plots.cost})`);
  parts.push("## Reproduce", "```sh\n" + (results.meta.command || "(command not recorded)") + "\n```");
  parts.push("## Run", metadata(results));
  const n = notes(results);
  if (n.length) parts.push("## Notes", n.map((s) => `- ${s}`).join("\n"));
  return parts.join("\n\n") + "\n";
}
