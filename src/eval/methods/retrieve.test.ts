import { afterAll, describe, expect, it } from "vitest";
import { CharTokenizer } from "../../../test/helpers/char-tokenizer.js";
import { GPT2_TINY } from "../../../test/mac/tiny-mac.js";
import { loadCausalLM } from "../../models/load.js";
import type { StreamDoc, StreamQuestion } from "../stream.js";
import { answerPrompts } from "./answer.js";
import { Bm25Retriever } from "./retrieval.js";
import { OracleContextMethod } from "./oracle.js";
import { RetrievalMethod, createRetrievalMethod } from "./retrieve.js";
import type { MethodContext } from "./types.js";

// The tiny GPT-2 has 32 positions and the character tokenizer one token per character: prompts of <= 29
// characters (3 new tokens).
const base = loadCausalLM(GPT2_TINY, { freeze: true });
afterAll(() => base.dispose());
const ctx: MethodContext = {
  base,
  tokenizer: new CharTokenizer(),
  qaTemplate: "{question}",
  decoding: { maxNewTokens: 3 },
  batchSize: 2,
  seed: 0,
};

const DOCS: StreamDoc[] = [
  { id: "d0", text: "zo is in mi.", article: "zo" },
  { id: "d1", text: "qu eats ry.", article: "qu" },
  { id: "d2", text: "lu born 1843.", article: "lu" },
];
const QUESTIONS: StreamQuestion[] = [
  { id: "q0", docId: "d1", question: "qu eats what?", answers: ["ry"] },
  { id: "q1", docId: "d0", question: "where is zo?", answers: ["mi"] },
  { id: "q2", docId: "d2", question: "when lu born?", answers: ["1843"] },
];

describe("bm25 method (tiny GPT-2)", () => {
  it("adapting indexes the documents; each question is answered after its top-1 document", async () => {
    const m = await createRetrievalMethod("bm25", ctx);
    expect([m.name, m.k]).toEqual(["bm25", 1]);
    // Before adapting nothing is retrieved: the bare question.
    expect(m.prompts(QUESTIONS.slice(0, 1))).toEqual(["qu eats what?"]);
    await m.adapt(DOCS.slice(0, 2));
    await m.adapt(DOCS.slice(2));
    expect(m.retrieve(QUESTIONS).map((ds) => ds.map((d) => d.id))).toEqual([["d1"], ["d0"], ["d2"]]);
    const prompts = m.prompts(QUESTIONS);
    expect(prompts).toEqual([
      "qu eats ry.\n\nqu eats what?",
      "zo is in mi.\n\nwhere is zo?",
      "lu born 1843.\n\nwhen lu born?",
    ]);
    for (const [i, q] of QUESTIONS.entries()) expect(prompts[i]).toContain(DOCS.find((d) => d.id === q.docId)!.text);
    const progress: number[][] = [];
    const answers = await m.answer(QUESTIONS, (done, total) => progress.push([done, total]));
    expect(answers).toHaveLength(3);
    // The answers are the base LM's greedy continuations of exactly those prompts.
    expect(answers).toEqual(await answerPrompts(ctx, prompts));
    expect(progress).toEqual([
      [2, 3],
      [3, 3],
    ]);
    m.dispose();
    expect(() => m.prompts(QUESTIONS)).toThrow(/after dispose/);
  });

  it("k documents best first; maxContextTokens cuts each document; options are checked", async () => {
    const r = new Bm25Retriever();
    const m = new RetrievalMethod("bm25", ctx, r, { k: 2, maxContextTokens: 5 });
    await m.adapt(DOCS);
    const docsOf = m.retrieve([{ id: "x", docId: "d0", question: "is zo born in mi?", answers: ["yes"] }])[0]!;
    expect(docsOf.map((d) => d.id)).toEqual(["d0", "d2"]);
    expect(m.prompts([{ id: "x", docId: "d0", question: "zo?", answers: ["mi"] }])).toEqual(["zo is\n\nzo?"]);
    m.dispose();
    await expect(createRetrievalMethod("bm25", ctx, { k: 0 })).rejects.toThrow(/bm25: k must be an integer >= 1/);
    await expect(createRetrievalMethod("bm25", ctx, { maxContextTokens: 1.5 })).rejects.toThrow(/maxContextTokens/);
    await expect(createRetrievalMethod("dense", ctx, { retriever: new Bm25Retriever() })).rejects.toThrow(
      /a bm25 retriever given for dense/,
    );
  });
});

describe("oracle_context method (tiny GPT-2)", () => {
  it("answers each question after its own document, whatever a retriever would rank first", async () => {
    const m = new OracleContextMethod(ctx, { maxContextTokens: 12 });
    // A question that shares its words with another document: BM25 ranks that one first, the oracle never does.
    const misleading: StreamQuestion = { id: "q3", docId: "d0", question: "qu eats in mi?", answers: ["mi"] };
    expect(m.prompts([misleading])).toEqual(["qu eats in mi?"]); // nothing adapted yet: the bare question
    await m.adapt(DOCS.slice(0, 2));
    expect(m.prompts([misleading, QUESTIONS[2]!])).toEqual(["zo is in mi.\n\nqu eats in mi?", "when lu born?"]);
    await m.adapt(DOCS);
    const prompts = m.prompts(QUESTIONS);
    // Each document cut to 12 tokens (characters here), as the retrieval methods cut theirs.
    expect(prompts).toEqual([
      "qu eats ry.\n\nqu eats what?",
      "zo is in mi.\n\nwhere is zo?",
      "lu born 1843\n\nwhen lu born?",
    ]);
    const bm25 = await createRetrievalMethod("bm25", ctx, { maxContextTokens: 12 });
    await bm25.adapt(DOCS);
    expect(bm25.retrieve([misleading])[0]!.map((d) => d.id)).toEqual(["d1"]);
    expect(m.prompts([misleading])).toEqual(["zo is in mi.\n\nqu eats in mi?"]);
    bm25.dispose();
    expect(await m.answer(QUESTIONS)).toEqual(await answerPrompts(ctx, prompts));
    m.dispose();
    expect(() => m.prompts(QUESTIONS)).toThrow(/oracle_context: prompts after dispose/);
    expect(() => new OracleContextMethod(ctx, { maxContextTokens: 0 })).toThrow(/maxContextTokens/);
  });
});
