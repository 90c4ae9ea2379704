import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSquad, splitArticles } from "../../data/squad.js";
import type { QaStream } from "../stream.js";
import { archivalQaStream, camelsCsvStream, streamingQaStream } from "./camels-csv.js";
import { DEFAULT_SQUAD_SPLIT, squadStream } from "./squad.js";
import { syntheticQaStream } from "./synthetic.js";

const SQUAD = "../shared/data/squad/squad-dev-open.json";
const haveSquad = existsSync(SQUAD);
const skipNote = haveSquad ? "" : ` [SKIPPED: ${SQUAD} is absent]`;
const FIX = "test/fixtures/eval";

const tmp = mkdtempSync(join(tmpdir(), "maclm-eval-data-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const tmpFile = (name: string, text: string): string => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

/** Invariants of every stream: unique doc ids and texts, every question points to a doc of the stream. */
function expectWellFormed(s: QaStream): void {
  expect(new Set(s.docs.map((d) => d.id)).size).toBe(s.docs.length);
  expect(new Set(s.docs.map((d) => d.text)).size).toBe(s.docs.length);
  expect(new Set(s.questions.map((q) => q.id)).size).toBe(s.questions.length);
  const ids = new Set(s.docs.map((d) => d.id));
  for (const q of s.questions) {
    expect(ids.has(q.docId)).toBe(true);
    expect(q.question).toBe(q.question.trim());
    expect(q.question.length).toBeGreaterThan(0);
    expect(q.answers.length).toBeGreaterThan(0);
  }
}

describe("SQuAD stream", () => {
  it.skipIf(!haveSquad)(`the default split is the training run's (runs/squad-default/split.json)${skipNote}`, () => {
    const split = splitArticles(loadSquad(SQUAD), DEFAULT_SQUAD_SPLIT);
    const titles = (xs: { title: string }[]): string[] => xs.map((a) => a.title);
    // Copied from runs/squad-default/split.json (the run of src/mac/train/run.ts on this file), in its order.
    expect(titles(split.test)).toEqual([
      "French_and_Indian_War",
      "Private_school",
      "Jacksonville,_Florida",
      "1973_oil_crisis",
      "Amazon_rainforest",
      "Warsaw",
    ]);
    expect(titles(split.val)).toEqual([
      "Fresno,_California",
      "Victoria_(Australia)",
      "Ctenophora",
      "Scottish_Parliament",
    ]);
    expect(titles(split.train)).toEqual([
      "American_Broadcasting_Company",
      "Black_Death",
      "Imperialism",
      "Economic_inequality",
      "Apollo_program",
      "Victoria_and_Albert_Museum",
      "Genghis_Khan",
      "Civil_disobedience",
      "Super_Bowl_50",
      "United_Methodist_Church",
      "Oxygen",
      "Pharmacy",
      "Harvard_University",
      "Doctor_Who",
      "Construction",
      "Steam_engine",
      "Huguenot",
      "Computational_complexity_theory",
      "Force",
      "Rhine",
      "Southern_California",
      "Yuan_dynasty",
      "Chloroplast",
      "Normans",
      "European_Union_law",
      "Martin_Luther",
      "Immune_system",
      "Intergovernmental_Panel_on_Climate_Change",
      "University_of_Chicago",
      "Islamism",
    ]);
  });

  it.skipIf(!haveSquad)(`the test stream: the 6 test articles' 187 paragraphs and 917 questions${skipNote}`, () => {
    const s = squadStream(SQUAD, { split: "test" });
    expectWellFormed(s);
    expect(s.name).toBe("squad-test");
    expect(s.docs.length).toBe(187);
    expect(s.questions.length).toBe(917);
    expect([...new Set(s.docs.map((d) => d.article))]).toEqual([
      "French_and_Indian_War",
      "Private_school",
      "Jacksonville,_Florida",
      "1973_oil_crisis",
      "Amazon_rainforest",
      "Warsaw",
    ]);
    expect(s.docs[0]!.id).toBe("French_and_Indian_War#0");
    expect(s.docs.filter((d) => d.article === "Warsaw").map((d) => d.id)).toEqual(
      Array.from({ length: 49 }, (_, i) => `Warsaw#${i}`),
    );
    const q = s.questions[0]!;
    expect(q.id).toBe("French_and_Indian_War#0:0");
    expect(q.docId).toBe("French_and_Indian_War#0");
    // Each question's answers are spans of its document (SQuAD's guarantee, kept through the loader).
    const text = new Map(s.docs.map((d) => [d.id, d.text]));
    for (const x of s.questions) expect(x.answers.some((a) => text.get(x.docId)!.includes(a))).toBe(true);
    // The splits are disjoint by article and cover the file.
    const all = squadStream(SQUAD, { split: "all" });
    expect([all.docs.length, all.questions.length]).toEqual([1709, 8813]);
    const train = squadStream(SQUAD, { split: "train" });
    const val = squadStream(SQUAD, { split: "val" });
    const articles = (x: QaStream): Set<string> => new Set(x.docs.map((d) => d.article));
    expect(articles(train).size + articles(val).size + articles(s).size).toBe(40);
    for (const a of articles(s)) expect(articles(train).has(a) || articles(val).has(a)).toBe(false);
    expect(train.docs.length + val.docs.length + s.docs.length).toBe(1709);
  });

  it.skipIf(!haveSquad)(`maxDocs keeps whole documents with all their questions${skipNote}`, () => {
    const s = squadStream(SQUAD, { split: "test", maxDocs: 3 });
    expect(s.docs.map((d) => d.id)).toEqual([
      "French_and_Indian_War#0",
      "French_and_Indian_War#1",
      "French_and_Indian_War#2",
    ]);
    const full = squadStream(SQUAD, { split: "test" });
    expect(s.questions).toEqual(full.questions.filter((q) => s.docs.some((d) => d.id === q.docId)));
  });

  it("deduplicates paragraphs by exact text, keeping the first; questions point to the kept one", () => {
    const para = (context: string, q: string, a: string) => ({
      context,
      qas: [{ id: q, question: ` ${q}? `, answers: [{ text: a }, { text: ` ${a} ` }] }],
    });
    const file = tmpFile(
      "dup.json",
      JSON.stringify({
        data: [
          { title: "A", paragraphs: [para("Alpha text.", "qa", "Alpha"), para("Beta text.", "qb", "Beta")] },
          { title: "B", paragraphs: [para("Gamma text.", "qc", "Gamma"), para("Alpha text.", "qd", "text")] },
        ],
      }),
    );
    const s = squadStream(file, { split: "all" });
    expectWellFormed(s);
    expect(s.docs).toEqual([
      { id: "A#0", text: "Alpha text.", article: "A" },
      { id: "A#1", text: "Beta text.", article: "A" },
      { id: "B#0", text: "Gamma text.", article: "B" },
    ]);
    expect(s.questions.map((q) => [q.id, q.docId, q.question, q.answers])).toEqual([
      ["A#0:0", "A#0", "qa?", ["Alpha", "Alpha"]],
      ["A#1:0", "A#1", "qb?", ["Beta", "Beta"]],
      ["B#0:0", "B#0", "qc?", ["Gamma", "Gamma"]],
      ["B#1:0", "A#0", "qd?", ["text", "text"]],
    ]);
    expect(() => squadStream(file, { split: "dev" as "test" })).toThrow(/split must be train, val, test or all/);
    expect(() => squadStream(file, { split: "test" })).toThrow(/2 articles cannot give 4 val \+ 6 test/);
    expect(() => squadStream(file, { split: "all", maxDocs: 0 })).toThrow(/maxDocs must be an integer >= 1/);
  });
});

describe("CaMeLS/MAC CSV streams", () => {
  it("StreamingQA: quoted fields with commas, quotes and newlines; repeated documents kept once", () => {
    const file = `${FIX}/streamingqa-test.csv`;
    const s = streamingQaStream(file);
    expectWellFormed(s);
    expect(s.name).toBe("streamingqa-streamingqa-test");
    expect(s.docs.map((d) => [d.id, d.article])).toEqual([
      ["streamingqa-streamingqa-test#0", "streamingqa-streamingqa-test#0"],
      ["streamingqa-streamingqa-test#1", "streamingqa-streamingqa-test#1"],
      ["streamingqa-streamingqa-test#2", "streamingqa-streamingqa-test#2"],
    ]);
    expect(s.docs[0]!.text).toBe(
      'Mary Berry won the "Best Pie" contest, held in York, in 2019.\n' +
        "The judges, three bakers from Leeds, were unanimous; the pie used apples, pears and quince.",
    );
    expect(s.docs[2]!.text).toBe("Café Naïve, a bakery in Lyon, closed in 2018 after 40 years.");
    const [d0, d1, d2] = s.docs.map((d) => d.id);
    expect(s.questions.map((q) => [q.id.split(":")[1], q.docId, q.question, q.answers])).toEqual([
      ["1", d0, 'Who won the "Best Pie" contest in 2019?', ["Mary Berry", "Berry"]],
      ["2", d1, "When did the new bridge over the Tyne open?", ["3 March 2020", "March 2020"]],
      ["3", d0, "Where was the Best Pie contest held?", ["York"]],
      ["4", d2, "In which city was Café Naïve?", ["Lyon"]],
      ["5", d1, "How much did the Tyne bridge cost?", ["40 million pounds"]],
    ]);
    const two = camelsCsvStream(file, "streamingqa", { maxDocs: 2, name: "sqa" });
    expect(two.docs.map((d) => d.id)).toEqual(["sqa#0", "sqa#1"]);
    expect(two.questions.map((q) => q.id)).toEqual(["sqa:1", "sqa:2", "sqa:3", "sqa:5"]);
  });

  it("ArchivalQA: paragraphs (ans_paragraph) as documents, articles by doc_id; fullPassage: whole articles", () => {
    const file = `${FIX}/archivalqa-test.csv`;
    const s = archivalQaStream(file);
    expectWellFormed(s);
    expect(s.docs.map((d) => [d.id, d.article])).toEqual([
      ["1615001_0", "1615001"],
      ["1615001_1", "1615001"],
      ["1615002_0", "1615002"],
      ["1615001_2", "1615001"],
      ["1615002_1", "1615002"],
    ]);
    expect(s.docs[1]!.text).toBe('Senator Ann Cole said the vote was "a fair compromise, at last."');
    expect(s.docs[4]!.text).toBe(
      "The winning pitcher, Luis Ortega, struck out nine batters.\nHe has won four straight starts.",
    );
    expect(s.questions.map((q) => [q.docId, q.answers[0]])).toEqual([
      ["1615001_0", "62 to 38"],
      ["1615001_1", "a fair compromise"],
      ["1615002_0", "the Red Sox"],
      ["1615001_2", "March"],
      ["1615001_0", "Washington"],
      ["1615002_1", "nine"],
    ]);
    const full = camelsCsvStream(file, "archivalqa", { fullPassage: true });
    expectWellFormed(full);
    expect(full.docs.map((d) => d.id)).toEqual(["1615001", "1615002"]);
    expect(full.docs[0]!.text.split("\n")).toHaveLength(3);
    expect(full.questions.map((q) => q.docId)).toEqual([
      "1615001",
      "1615001",
      "1615002",
      "1615001",
      "1615001",
      "1615002",
    ]);
    // Without a doc_id column the article is para_id before its last "_".
    const noDocId = tmpFile(
      "arch-nodoc.csv",
      'question,answer,para_id,ans_paragraph\nWho?,Ann,nyt_a_7_3,"Ann said, ""yes."""\n',
    );
    const t = archivalQaStream(noDocId);
    expect(t.docs).toEqual([{ id: "nyt_a_7_3", text: 'Ann said, "yes."', article: "nyt_a_7" }]);
  });

  it("errors name the file, the row, its line and the column", () => {
    const bad = `${FIX}/streamingqa-bad.csv`;
    expect(() => streamingQaStream(bad)).toThrow(
      /streamingqa-bad\.csv: bad CSV: Invalid Record Length: expect 4, got 3 on line 4/,
    );
    const unclosed = tmpFile("unclosed.csv", ',question,answers,text\n0,Who?,Ann,"Ann won\n');
    expect(() => streamingQaStream(unclosed)).toThrow(/unclosed\.csv: bad CSV: Quote Not Closed/);
    const noAnswers = tmpFile("noanswers.csv", ",question,text\n0,Who?,Ann won.\n");
    expect(() => streamingQaStream(noAnswers)).toThrow(
      /noanswers\.csv: StreamingQA needs column "answers"; the header has "question", "text"/,
    );
    const empty = tmpFile("emptycell.csv", ',question,answers,text\n0,Who?,Ann,"Ann\nwon."\n1,Where?,,Ann won.\n');
    expect(() => streamingQaStream(empty)).toThrow(/emptycell\.csv: row 2 \(line 4\), column "answers": empty/);
    const slashes = tmpFile("slashes.csv", ",question,answers,text\n0,Who?,\\ \\,Ann won.\n");
    expect(() => streamingQaStream(slashes)).toThrow(/slashes\.csv: row 1 \(line 2\), column "answers": no answer/);
    const arch = tmpFile("arch.csv", "question,answer,para_id,ans_paragraph\nWho?,Ann,d_0,\n");
    expect(() => archivalQaStream(arch)).toThrow(/arch\.csv: row 1 \(line 2\), column "ans_paragraph": empty/);
    expect(() => archivalQaStream(arch, { fullPassage: true })).toThrow(/ArchivalQA needs column "ans_text"/);
    const clash = tmpFile("clash.csv", "question,answer,para_id,ans_paragraph\nA?,a,d_0,one\nB?,b,d_0,two\n");
    expect(() => archivalQaStream(clash)).toThrow(
      /clash\.csv: row 2 \(line 3\): document id "d_0" is already used by a different text/,
    );
    expect(() => streamingQaStream(join(tmp, "missing.csv"))).toThrow(/missing\.csv: not readable/);
    expect(() => streamingQaStream(tmpFile("blank.csv", ""))).toThrow(/blank\.csv: empty CSV/);
    expect(() => camelsCsvStream(bad, "squad" as "streamingqa")).toThrow(/format must be streamingqa or archivalqa/);
  });
});

describe("synthetic stream", () => {
  it("every generated document in order, questions pointing to them, one article per subject", () => {
    const opts = { seed: 3, numDocs: 12, factsPerDoc: 3, questionsPerDoc: 2, split: "test" as const };
    const s = syntheticQaStream(opts);
    expectWellFormed(s);
    expect(s.name).toBe("synthetic-test-3");
    expect(s.docs.length).toBe(12);
    expect(s.questions.length).toBe(24);
    expect(s.docs[0]!.id).toBe("syn-test-3-00");
    expect(new Set(s.docs.map((d) => d.article)).size).toBe(12);
    const text = new Map(s.docs.map((d) => [d.id, d.text]));
    for (const q of s.questions) expect(text.get(q.docId)).toContain(q.answers[0]);
    const none = syntheticQaStream({ ...opts, questionsPerDoc: 0, name: "bare" });
    expect([none.name, none.docs.length, none.questions.length]).toEqual(["bare", 12, 0]);
    expect(syntheticQaStream(opts)).toEqual(s);
  });
});
