import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedFile } from "../../../test/helpers/model-cache.js";
import { expectClose } from "../../../test/helpers/numeric.js";
import { squadStream } from "../data/squad.js";
import type { QaStream, StreamDoc, StreamQuestion } from "../stream.js";
import { Bm25Retriever, type DenseRetriever, type Retriever, bm25Query, createRetriever } from "./retrieval.js";

const doc = (id: string, text: string): StreamDoc => ({ id, text, article: id });

const TOY = [
  doc("pie", 'Mary Berry won the "Best Pie" contest, held in York, in 2019.'),
  doc("bridge", "The new bridge over the Tyne, which cost 40 million pounds, opened in March 2020."),
  doc("cafe", "Café Naïve, a bakery in Lyon, closed in 2018 after forty years of baking bread."),
  doc("near", "The village of Near Sawrey lies near Lake Windermere; its inn is called The Tower Bank Arms."),
];

const SQUAD = "../shared/data/squad/squad-dev-open.json";
const haveSquad = existsSync(SQUAD);
const squadNote = haveSquad ? "" : ` [SKIPPED: ${SQUAD} is absent]`;

/** One SQuAD test article (21 paragraphs) and 50 of its questions, evenly spaced. */
function article(name: string): { docs: StreamDoc[]; questions: StreamQuestion[] } {
  const s: QaStream = squadStream(SQUAD, { split: "test" });
  const all = s.questions.filter((q) => q.docId.startsWith(`${name}#`));
  const step = Math.floor(all.length / 50);
  return {
    docs: s.docs.filter((d) => d.article === name),
    questions: all.filter((_, i) => i % step === 0).slice(0, 50),
  };
}

function recallAt(r: Retriever, questions: readonly StreamQuestion[], k: number): number {
  const found = r.searchMany(
    questions.map((q) => q.question),
    k,
  );
  return questions.filter((q, i) => found[i]!.some((d) => d.id === q.docId)).length / questions.length;
}

describe("BM25 retriever (SQLite FTS5)", () => {
  let r: Bm25Retriever;
  beforeAll(() => {
    r = new Bm25Retriever();
    r.add(TOY);
  });
  afterAll(() => r.dispose());

  it("queries are the OR of quoted distinct word tokens, function words dropped unless nothing else is left", () => {
    expect(bm25Query('Who won the "Best Pie" contest?')).toBe('"won" OR "best" OR "pie" OR "contest"');
    expect(bm25Query("Who was it?")).toBe('"who" OR "was" OR "it"');
    expect(bm25Query('NEAR(a b) AND "x* OR -y ^z col:w')).toBe(
      '"near" OR "b" OR "x" OR "y" OR "z" OR "col" OR "w"', // "and", "or", "a": function words
    );
    expect(bm25Query("?! ... ()")).toBeNull();
    expect(bm25Query("")).toBeNull();
  });

  it("ranks the document that shares the rare terms first; k limits the result; stems and accents fold", () => {
    expect(r.size).toBe(4);
    expect(r.search("Who won the Best Pie contest in 2019?", 1).map((d) => d.id)).toEqual(["pie"]);
    expect(r.search("How much did the Tyne bridge cost?", 2)[0]!.id).toBe("bridge");
    expect(r.search("Which cafe bakes bread in Lyon?", 4)[0]!.id).toBe("cafe"); // café, baking
    expect(r.search("inn near Windermere", 10).map((d) => d.id)).toEqual(["near"]); // only matches come back
    expect(r.search("zebra quokka", 3)).toEqual([]);
  });

  it("scores named documents as the ranking does: scored()'s scores, 0 without a shared term; unknown ids refused", () => {
    const q = "Which bakery in Lyon bakes bread, near the Tyne bridge?";
    const ranked = r.scored(q, 4);
    expect(ranked.map((x) => x.doc.id)).toEqual(["cafe", "bridge", "near"]); // "pie" shares no term
    for (let i = 1; i < ranked.length; i++) expect(ranked[i]!.score).toBeLessThan(ranked[i - 1]!.score);
    const ids = ["near", "pie", "cafe", "bridge"];
    const byId = new Map(ranked.map((x) => [x.doc.id, x.score]));
    r.scoresOf(q, ids).forEach((s, i) => expect(s).toBeCloseTo(byId.get(ids[i]!) ?? 0, 10));
    expect(r.scoresOf("?!", ["pie"])).toEqual([0]);
    expect(() => r.scoresOf(q, ["pie", "nope"])).toThrow(/bm25 scoresOf: no document "nope" is indexed/);
  });

  it("hostile queries (quotes, NEAR, *, parentheses, column filters, operators) are searched as plain words", () => {
    const hostile = [
      '"',
      '""',
      "'",
      "*",
      "(",
      ")",
      "NEAR",
      "NEAR(",
      "NEAR(pie contest, 2)",
      "pie AND",
      "OR OR OR",
      "NOT",
      "text:pie",
      "^pie",
      "-pie",
      "+",
      'Best" OR "Pie*',
      "{pie}",
      "pie; DROP TABLE docs; --",
      "\u0301\u0301",
      "\0",
    ];
    for (const q of hostile) expect(() => r.search(q, 2)).not.toThrow();
    expect(r.search('What "Best Pie"* (contest) NEAR/2 won? text:Berry', 1)[0]!.id).toBe("pie");
    expect(r.search("NEAR", 1)[0]!.id).toBe("near"); // the word, not the operator
    expect(r.search("pie; DROP TABLE docs; --", 1)[0]!.id).toBe("pie");
    expect(r.size).toBe(4);
  });

  it("grows with the stream; ids already indexed are skipped; errors after dispose", () => {
    const g = new Bm25Retriever();
    expect(g.search("pie", 1)).toEqual([]);
    g.add(TOY.slice(0, 2));
    expect(g.search("Lyon bakery", 1)).toEqual([]);
    g.add([...TOY, TOY[0]!, { ...TOY[2]!, text: "other text" }]);
    expect(g.size).toBe(4);
    expect(g.search("Lyon bakery", 1)[0]).toEqual(TOY[2]);
    expect(() => g.search("pie", 0)).toThrow(/k must be an integer >= 1/);
    g.dispose();
    expect(() => g.search("pie", 1)).toThrow(/bm25 retriever: search after dispose/);
    g.dispose();
  });

  it.skipIf(!haveSquad)(
    `SQuAD Amazon_rainforest (21 paragraphs, 50 questions): recall@1 >= 0.8, @3 >= 0.9${squadNote}`,
    () => {
      const a = article("Amazon_rainforest");
      expect([a.docs.length, a.questions.length]).toEqual([21, 50]);
      const b = new Bm25Retriever();
      b.add(a.docs);
      const r1 = recallAt(b, a.questions, 1);
      const r3 = recallAt(b, a.questions, 3);
      b.dispose();
      // Measured: 0.90 and 0.98.
      expect(r1).toBeGreaterThanOrEqual(0.8);
      expect(r3).toBeGreaterThanOrEqual(0.9);
    },
  );
});

interface MiniLmExpected {
  dir: string;
  sentences: string[];
  embeddings: number[][];
}

const minilm = JSON.parse(readFileSync("test/fixtures/models/all-minilm-l6-v2.json", "utf8")) as MiniLmExpected;
const weights = cachedFile(minilm.dir, "model.safetensors");

describe("dense retriever (all-MiniLM-L6-v2)", () => {
  let dense: DenseRetriever | null = null;
  const get = async (): Promise<DenseRetriever> =>
    (dense ??= (await createRetriever("dense", { encoder: dirname(weights.path) })) as DenseRetriever);
  afterAll(() => dense?.dispose());

  it.skipIf(!weights.present)(
    `embeds text as sentence-transformers does (the reference embeddings of test/parity/minilm)${weights.skipNote}`,
    async () => {
      const d = await get();
      expect(d.dim).toBe(384);
      const e = d.embed(minilm.sentences);
      expectClose(e, minilm.embeddings.flat(), { rtol: 0, atol: 1e-5 }, "sentence embeddings");
      // Texts past 256 tokens are cut to [CLS] + 254 tokens + [SEP] (max_seq_length), not rejected.
      const long = Array.from({ length: 400 }, (_, i) => `word${i}`).join(" ");
      const x = d.embed([long]);
      let norm = 0;
      for (const v of x) norm += v * v;
      expect(norm).toBeCloseTo(1, 5);
    },
  );

  it.skipIf(!weights.present || !haveSquad)(
    `SQuAD Amazon_rainforest (21 paragraphs, 50 questions): recall@1 >= 0.7, @3 >= 0.9, best first${weights.present ? squadNote : weights.skipNote}`,
    async () => {
      const d = await get();
      const a = article("Amazon_rainforest");
      d.add(a.docs);
      d.add(a.docs.slice(0, 3)); // already indexed: skipped
      expect(d.size).toBe(21);
      const r1 = recallAt(d, a.questions, 1);
      const r3 = recallAt(d, a.questions, 3);
      // Measured: 0.84 and 1.00.
      expect(r1).toBeGreaterThanOrEqual(0.7);
      expect(r3).toBeGreaterThanOrEqual(0.9);
      // The order is by cosine similarity, best first, and search() agrees with searchMany().
      const q = a.questions[0]!.question;
      const top = d.search(q, 5);
      expect(top.map((x) => x.id)).toEqual(d.searchMany([q], 5)[0]!.map((x) => x.id));
      const qe = d.embed([q]);
      const cos = top.map((x) => d.embeddingOf(x.id)!.reduce((s, v, c) => s + v * qe[c]!, 0));
      for (let i = 1; i < cos.length; i++) expect(cos[i]!).toBeLessThanOrEqual(cos[i - 1]! + 1e-6);
      expect(d.search(q, 100)).toHaveLength(21);
      // scoresOf gives those cosines for named documents, in the order asked.
      const asked = [top[2]!.id, top[0]!.id];
      d.scoresOf(q, asked).forEach((s, i) => expect(s).toBeCloseTo(cos[[2, 0][i]!]!, 5));
      expect(() => d.scoresOf(q, ["nope"])).toThrow(/dense scoresOf: no document "nope" is indexed/);
    },
  );
});
