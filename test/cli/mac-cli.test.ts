// `mac-lm train`, `adapt` and `ask` end to end as child processes, on the real default configuration (SmolLM2 +
// MiniLM from the model cache, which CI fills with scripts/fetch-models.sh): a short training run that is resumed,
// then online adaptation into a durable bank and questions answered with and without it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli } from "../helpers/cli.js";
import { cachedFile } from "../helpers/model-cache.js";

const smol = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");
const mini = cachedFile("all-MiniLM-L6-v2", "model.safetensors");
const present = smol.present && mini.present;

const dir = mkdtempSync(join(tmpdir(), "mac-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A small SQuAD-format file: 4 articles of one paragraph each (1 val, 0 test, 3 train).
const squad = {
  data: ["Alpha", "Beta", "Gamma", "Delta"].map((title, i) => ({
    title,
    paragraphs: [
      {
        context: `${title} Tower was built in ${1880 + i} by the ${title} company in the city of ${title}ville.`,
        qas: [
          { id: `${i}a`, question: `When was ${title} Tower built?`, answers: [{ text: `${1880 + i}` }] },
          { id: `${i}b`, question: `Where is ${title} Tower?`, answers: [{ text: `${title}ville` }] },
        ],
      },
    ],
  })),
};

describe.skipIf(!present)(`mac-lm train / adapt / ask${present ? "" : smol.skipNote + mini.skipNote}`, () => {
  const data = join(dir, "squad.json");
  const run = join(dir, "run");
  const bank = join(dir, "bank");
  writeFileSync(data, JSON.stringify(squad));
  const common = [
    "--data",
    data,
    "--out",
    run,
    "--batch-size",
    "2",
    "--checkpoint-every",
    "1",
    "--eval-every",
    "0",
    "--val-articles",
    "1",
    "--test-articles",
    "0",
  ];

  it("trains, checkpoints, and resumes where it stopped", async () => {
    const first = await cli(["train", ...common, "--steps", "1"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/trained to step 1/);
    // A curriculum in two stages: the second resumes with each question's memory its own document alone.
    const second = await cli(["train", ...common, "--steps", "2", "--memory-per-question", "1"]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/resumed from .*step-0000001 \(step 1\)/);
    const lines = readFileSync(join(run, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { kind: string; step?: number; memoryPerQuestion?: number });
    expect(lines.map((l) => [l.kind, l.step ?? l.memoryPerQuestion])).toEqual([
      ["start", 0],
      ["step", 1],
      ["start", 1],
      ["step", 2],
    ]);
    expect(JSON.parse(readFileSync(join(run, "split.json"), "utf8")).val).toHaveLength(1);
  }, 240_000);

  it("adapts to documents durably and answers with and without the memory", async () => {
    const docs = ["Zorvath Quellin was born in Mirefall in 1843.", "The Kelt company makes glass boats."];
    const a = await cli(["adapt", "-c", run, "-b", bank, ...docs]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/2 documents, 2 entries \(0 already present\)/);
    const again = await cli(["adapt", "-c", run, "-b", bank, docs[0]!]);
    expect(again.stdout).toMatch(/2 documents, 2 entries \(1 already present\)/);
    const q = await cli([
      "ask",
      "-c",
      run,
      "-b",
      bank,
      "--compare",
      "--sources",
      "-n",
      "4",
      "Where was Zorvath Quellin born?",
    ]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toMatch(/Q: Where was Zorvath Quellin born\?\nA \(memory of 2 documents\): .*\n/);
    expect(q.stdout).toMatch(/\nA \(no memory\): /);
    // --sources: both documents with their attention shares, the closest sentence as the snippet.
    expect(q.stdout).toMatch(/ +\d+\.\d % {2}[0-9a-f]{24}: Zorvath Quellin was born in Mirefall in 1843\.\n/);
    expect(q.stdout).toMatch(/ +\d+\.\d % {2}[0-9a-f]{24}: The Kelt company makes glass boats\.\n/);
    const h = await cli(["ask", "-c", run, "-b", bank, "--hierarchical", "2", "-n", "2", "Who makes glass boats?"]);
    expect(h.code, h.stderr).toBe(0);
    const bad = await cli(["ask", "-c", run, "-b", join(dir, "nowhere"), "Q?"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no memory bank at/);
  }, 240_000);
});
