/**
 * Fair prompts: the two templates' layout (answer.ts qaPrompt), and the choice among them on validation documents
 * (prompts.ts selectPromptTemplate; fine-tuning's joint choice with the learning rate in finetune.ts) with the tiny
 * GPT-2 pretrained on the synthetic facts, which can answer a synthetic question when the fact is in its context.
 */
import { afterAll, describe, expect, it } from "vitest";
import { tinyVocabulary } from "../../data/synthetic.js";
import { loadCausalLM } from "../../models/load.js";
import { WordTokenizer } from "../../tokenizers/index.js";
import { scoreAll } from "../../data/qa-metrics.js";
import { tinySyntheticVal } from "../../../test/helpers/synthetic-val.js";
import { CHAT_INSTRUCTIONS, answerPrompts, qaPrompt } from "./answer.js";
import { createFinetuneMethod, selectLearningRate } from "./finetune.js";
import { createNoneMethod } from "./mac.js";
import { OracleContextMethod } from "./oracle.js";
import { selectPromptTemplate } from "./prompts.js";
import type { MethodContext, PromptTemplate } from "./types.js";

const PATH = "test/fixtures/models/gpt2-synthetic";
const base = loadCausalLM(PATH, { freeze: true });
afterAll(() => base.dispose());
const ctx: MethodContext = {
  base,
  tokenizer: new WordTokenizer(tinyVocabulary()),
  qaTemplate: "{question}",
  decoding: { maxNewTokens: 3 },
  batchSize: 8,
  seed: 0,
};
const val = tinySyntheticVal();

describe("prompt templates", () => {
  it("plain: the context, a blank line, MAC's template; chat: SmolLM2's chat turns with a short-answer instruction", () => {
    const c = { qaTemplate: "Question: {question}\nAnswer:" };
    expect(qaPrompt(c, " Who? ")).toBe("Question: Who?\nAnswer:");
    expect(qaPrompt({ ...c, promptTemplate: "plain" }, "Who?", [" A. ", "B."])).toBe(
      "A.\n\nB.\n\nQuestion: Who?\nAnswer:",
    );
    expect(qaPrompt({ ...c, promptTemplate: "chat" }, " Who? ")).toBe(
      `<|im_start|>system\n${CHAT_INSTRUCTIONS.bare}<|im_end|>\n<|im_start|>user\nQuestion: Who?<|im_end|>\n` +
        "<|im_start|>assistant\n",
    );
    expect(qaPrompt({ ...c, promptTemplate: "chat" }, "Who?", [" A. ", "B."])).toBe(
      `<|im_start|>system\n${CHAT_INSTRUCTIONS.context}<|im_end|>\n` +
        "<|im_start|>user\nContext: A.\n\nB.\n\nQuestion: Who?<|im_end|>\n<|im_start|>assistant\n",
    );
  });
});

describe("choosing the template on validation documents (gpt2-synthetic)", () => {
  const opts = { maxDocs: 10, maxQuestions: 8 };
  const load = () => loadCausalLM(PATH);
  const ftOpts = { ctx, load, ...opts, options: { maxLength: 64 } };

  it("fine-tuning: every learning rate adapts once, then answers with every template; the best pair wins", async () => {
    const both = await selectLearningRate("uniform", val, [1e-3, 3e-3, 3e-2], {
      ...ftOpts,
      templates: ["chat", "plain"],
    });
    expect(both.results.map((r) => [r.lr, r.template])).toEqual([
      [1e-3, "chat"],
      [1e-3, "plain"],
      [3e-3, "chat"],
      [3e-3, "plain"],
      [3e-2, "chat"],
      [3e-2, "plain"],
    ]);
    const best = both.results.reduce((a, b) => (b.f1 > a.f1 ? b : a));
    expect(best.f1).toBeGreaterThan(0);
    expect([both.lr, both.template]).toEqual([best.lr, best.template]);
    // The template only changes the answering: the plain scores are those of a plain-only selection.
    const plain = await selectLearningRate("uniform", val, [1e-3, 3e-3, 3e-2], ftOpts);
    expect(plain.results.map((r) => [r.template, r.f1, r.meanLoss])).toEqual(
      both.results.filter((r) => r.template === "plain").map((r) => [r.template, r.f1, r.meanLoss]),
    );
    expect(both.results[0]!.meanLoss).toBe(both.results[1]!.meanLoss);
  });

  it("selectPromptTemplate adapts a fresh method per template and keeps the best F1, not the first", async () => {
    const grid = await selectLearningRate("uniform", val, [3e-3], { ...ftOpts, templates: ["chat", "plain"] });
    const made: PromptTemplate[] = [];
    const make = (t: PromptTemplate) => (
      made.push(t),
      createFinetuneMethod("uniform", { ...ctx, promptTemplate: t }, load, { lr: 3e-3, maxLength: 64 })
    );
    const sel = await selectPromptTemplate(make, val, ["chat", "plain"], opts);
    expect(made).toEqual(["chat", "plain"]);
    expect({ docs: sel.docs, questions: sel.questions }).toEqual({ docs: 10, questions: 8 });
    expect(sel.results.map((r) => [r.template, r.f1])).toEqual(grid.results.map((r) => [r.template, r.f1]));
    // Fine-tuned on the plain facts, the model answers a plain question; the chat turns (words it never saw)
    // throw it off.
    expect(sel.results[1]!.f1).toBeGreaterThan(sel.results[0]!.f1);
    expect(sel.template).toBe("plain");
  });

  it("the oracle context's choice is scored on its own prompts; ties go to the earlier candidate", async () => {
    const sel = await selectPromptTemplate(
      (t) => new OracleContextMethod({ ...ctx, promptTemplate: t }),
      val,
      ["chat", "plain"],
      opts,
    );
    const docOf = new Map(val.docs.map((d) => [d.id, d.text]));
    const questions = val.questions.slice(0, 8);
    for (const r of sel.results) {
      const c = { ...ctx, promptTemplate: r.template };
      const preds = await answerPrompts(
        c,
        questions.map((q) => qaPrompt(c, q.question, [docOf.get(q.docId)!])),
      );
      expect(r.f1).toBe(
        scoreAll(
          preds,
          questions.map((q) => q.answers),
        ).f1,
      );
    }
    // Without context the model cannot know the answers: both templates score the same (0).
    const none = await selectPromptTemplate(
      (t) => createNoneMethod({ ...ctx, promptTemplate: t }),
      val,
      ["chat", "plain"],
      opts,
    );
    expect(none.results.map((r) => r.f1)).toEqual([0, 0]);
    expect(none.template).toBe("chat");
  });

  it("refuses validation documents of the test stream, and an empty candidate list", async () => {
    const make = (t: PromptTemplate) => createNoneMethod({ ...ctx, promptTemplate: t });
    await expect(selectPromptTemplate(make, val, ["plain"], { ...opts, forbidden: [val.docs[2]!] })).rejects.toThrow(
      /selectPromptTemplate: validation document .* is also in the test stream/,
    );
    await expect(selectPromptTemplate(make, val, [])).rejects.toThrow(/no candidate templates/);
  });
});
