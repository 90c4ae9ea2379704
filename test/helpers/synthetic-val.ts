/**
 * The small validation stream the fine-tuning and prompt-choice tests choose on: 12 synthetic documents of the tiny
 * vocabulary (validation split, seed 5), one fact and one question each, every document its own article.
 */
import { syntheticStream } from "../../src/data/synthetic.js";
import type { QaStream } from "../../src/eval/stream.js";

export function tinySyntheticVal(): QaStream {
  const s = syntheticStream({
    seed: 5,
    numDocs: 12,
    factsPerDoc: 1,
    questionsPerDoc: 1,
    split: "val",
    vocabulary: "tiny",
  });
  return {
    name: "synthetic-val",
    docs: s.documents.map((d) => ({ id: d.id, text: d.text, article: d.id })),
    questions: s.questions.map((q) => ({ id: q.id, docId: q.docId, question: q.question, answers: q.answers })),
  };
}
