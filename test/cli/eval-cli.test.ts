// `mac-lm eval` end to end as child processes on the real models (SmolLM2 + MiniLM from the model cache, filled by
// scripts/fetch-models.sh) and the shipped checkpoint: a tiny stream (3 held-out SQuAD paragraphs), several methods,
// retention and aggregation-cost points; results.json in the documented layout, the report, and resumption.
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli } from "../helpers/cli.js";
import { cachedFile } from "../helpers/model-cache.js";

const smol = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");
const mini = cachedFile("all-MiniLM-L6-v2", "model.safetensors");
const present = smol.present && mini.present;

const dir = mkdtempSync(join(tmpdir(), "mac-eval-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!present)(`mac-lm eval${present ? "" : smol.skipNote + mini.skipNote}`, () => {
  const out = join(dir, "out");
  const config = join(dir, "eval.json");
  writeFileSync(
    config,
    JSON.stringify({
      retention: { start: 2, points: 1, maxQuestions: 4, methods: ["mac", "bm25"] },
      cost: { sizes: [40] },
      ablation: { questions: 4, k: 2 },
      // The demo file has no validation articles to choose templates on (that is tested below).
      promptTemplate: "plain",
      groupSize: 4,
      maxNewTokens: 8,
    }),
  );
  const args = [
    "eval",
    "--data",
    "examples/squad-demo.json",
    "--split",
    "all",
    "--max-docs",
    "3",
    "--methods",
    "none,mac,mac_hierarchical,bm25,oracle_context,bm25_mac",
    "--config",
    config,
    "--out",
    out,
    "--batch-size",
    "8",
  ];

  it(
    "runs every method in its own process and writes results.json in the documented layout",
    { timeout: 900_000 },
    async () => {
      const r = await cli(args);
      expect(r.stderr + r.stdout).not.toMatch(/FAILED/);
      expect(r.code).toBe(0);
      const res = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
      expect(res.n_docs).toBe(3);
      expect(res.n_questions).toBeGreaterThan(5);
      for (const m of ["none", "mac", "mac_hierarchical", "bm25", "oracle_context", "bm25_mac"]) {
        const s = res.methods[m];
        expect(s.status, m).toBe("ok");
        for (const k of ["em", "f1", "em_prefix", "f1_shortest", "adapt_ms_per_doc", "peak_rss_mb", "answer_ms"])
          expect(typeof s[k], `${m}.${k}`).toBe("number");
        expect(s.f1).toBeGreaterThanOrEqual(0);
        expect(s.f1).toBeLessThanOrEqual(100);
        expect(s.peak_rss_mb).toBeGreaterThan(100);
        const preds = readFileSync(join(out, "predictions", `${m}.jsonl`), "utf8")
          .trim()
          .split("\n");
        expect(preds).toHaveLength(res.n_questions);
      }
      // MAC adapts by amortizing (a forward pass per document); "none" does nothing.
      expect(res.methods.mac.adapt_ms_per_doc).toBeGreaterThan(res.methods.none.adapt_ms_per_doc);
      // Retention: [extra documents, share of the initial F1] from 0 to the rest of the stream (R0 = min(2, ⌊3/2⌋) = 1).
      for (const m of ["mac", "bm25"]) {
        expect(res.retention[m].map((p: number[]) => p[0])).toEqual([0, 2]);
      }
      expect(res.retention.none).toBeUndefined();
      const cost = res.aggregation_cost.points;
      expect(cost.map((c: { mode: string }) => c.mode).sort()).toEqual(["full", "hierarchical"]);
      for (const c of cost) {
        expect(c.entries).toBe(40);
        expect(c.ms).toBeGreaterThan(0);
      }
      // The memory ablation: 4 questions, K = min(2, 3 documents − 1), losses (nats) and scores per condition.
      const conditions = ["none", "own_alone", "own_among_k", "unrelated_k", "in_context"];
      expect(res.memory_ablation).toMatchObject({ k: 2, questions: 4 });
      for (const c of conditions) {
        expect(res.memory_ablation[c], c).toBeGreaterThan(0);
        expect(res.memory_ablation_f1[c].f1, c).toBeGreaterThanOrEqual(0);
      }
      expect(res.memory_ablation.content_gap).toBeCloseTo(
        res.memory_ablation.unrelated_k - res.memory_ablation.own_among_k,
        3,
      );
      const ablated = readFileSync(join(out, "predictions", "ablation.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(ablated).toHaveLength(4);
      for (const a of ablated) expect(Object.keys(a.answer).sort()).toEqual([...conditions].sort());
      // The report: Markdown tables and both plots as SVG and PNG.
      const md = readFileSync(join(out, "report.md"), "utf8");
      expect(md).toMatch(/\| MAC \|/);
      expect(md).toMatch(/BM25 \+ MAC/);
      expect(md).toMatch(/\| Oracle context \(own paragraph\) \|/);
      expect(md).toMatch(/\*\*Content gap\*\* \(unrelated_k − own_among_k\): \*\*-?\d+\.\d{4} nats\*\*/);
      expect(md).toMatch(/\*\*MAC F1 as % of in-context F1\*\*/);
      for (const f of ["retention.svg", "cost.svg"]) expect(readFileSync(join(out, f), "utf8")).toMatch(/<svg/);
      for (const f of ["retention.png", "cost.png"])
        expect(readFileSync(join(out, f)).subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
      expect(res.methods.uniform).toEqual({ status: "not_run", reason: "not selected (--methods)" });
      expect(res.meta.git_commit === null || /^[0-9a-f]{40}$/.test(res.meta.git_commit)).toBe(true);
    },
  );

  it("resumes: finished methods are not run again, a missing one is", { timeout: 600_000 }, async () => {
    const before = readFileSync(join(out, "methods", "mac.json"), "utf8");
    unlinkSync(join(out, "methods", "bm25.json"));
    const r = await cli(args);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/mac: done earlier/);
    expect(r.stderr).toMatch(/ablation: done earlier/);
    expect(r.stderr).toMatch(/bm25: running/);
    expect(readFileSync(join(out, "methods", "mac.json"), "utf8")).toBe(before);
    expect(existsSync(join(out, "methods", "bm25.json"))).toBe(true);
  });

  it("chooses each prompting method's template on the validation stream and reports the choice", async () => {
    const out2 = join(dir, "prompts");
    const conf = join(dir, "prompts.json");
    writeFileSync(conf, JSON.stringify({ finetune: { valDocs: 2, valQuestions: 3 }, maxNewTokens: 6 }));
    const r = await cli([
      "eval",
      ...["--format", "synthetic", "--data", "seed=2,docs=3,facts=1,questions=1"],
      ...["--methods", "none,oracle_context", "--config", conf, "--out", out2, "--no-cost"],
    ]);
    expect(r.stderr + r.stdout).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    const res = JSON.parse(readFileSync(join(out2, "results.json"), "utf8"));
    const md = readFileSync(join(out2, "report.md"), "utf8");
    for (const m of ["none", "oracle_context"]) {
      const s = res.methods[m];
      expect(
        s.prompt_search.map((p: { template: string }) => p.template),
        m,
      ).toEqual(["plain", "chat"]);
      const best = Math.max(...s.prompt_search.map((p: { f1: number }) => p.f1));
      expect(s.prompt_search.find((p: { template: string }) => p.template === s.prompt_template).f1, m).toBe(best);
      expect(s.notes).toMatch(/prompt template chosen on 2 validation documents \/ 2 questions \(synthetic/);
      expect(md).toContain(
        `| ${m === "none" ? "Base LM (no adaptation)" : "Oracle context (own paragraph)"} | ${s.prompt_template} |`,
      );
    }
    expect(md).toContain("| Method | Template | validation F1: plain | validation F1: chat | Remark |");
    expect(res.memory_ablation).toBeUndefined(); // no MAC method: no ablation
  });

  it("refuses to mix results of a different stream into the same folder", async () => {
    const r = await cli(args.map((a) => (a === "3" ? "2" : a)));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /holds finished results of another run \(its "maxDocs" was 3, now 2\); rerun with its settings to resume it/,
    );
  });
});
