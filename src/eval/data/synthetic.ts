/**
 * The seeded synthetic knowledge stream (src/data/synthetic.ts) as an evaluation stream: every generated document,
 * in generation order (also those without questions), each its own article (its subject entity).
 *
 *   const stream = syntheticQaStream({ seed: 1, numDocs: 100, factsPerDoc: 4, questionsPerDoc: 2, split: "test" });
 *
 * Splits are the generator's: disjoint name words per split, so a test stream shares no entity with training.
 */
import { type SyntheticStreamOptions, syntheticStream } from "../../data/synthetic.js";
import { MacLmError } from "../../errors.js";
import type { QaStream } from "../stream.js";
import { streamFromRows } from "./dedup.js";

export function syntheticQaStream(opts: SyntheticStreamOptions & { name?: string }): QaStream {
  const s = syntheticStream(opts);
  const name = opts.name ?? `synthetic-${opts.split}-${opts.seed}`;
  const byId = new Map(s.documents.map((d) => [d.id, d]));
  const documents = s.documents.map((d) => ({ docId: d.id, text: d.text, article: d.subject, where: d.id }));
  const rows = s.questions.map((q) => {
    const d = byId.get(q.docId);
    if (!d) throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: question ${q.id} names unknown document ${q.docId}`);
    return {
      docId: d.id,
      text: d.text,
      article: d.subject,
      questionId: q.id,
      question: q.question,
      answers: q.answers,
      where: q.id,
    };
  });
  return streamFromRows(name, rows, { documents });
}
