/**
 * Builds a QaStream from (document, question, answers) rows, the shape every QA data file comes in: documents are
 * deduplicated by exact text (the first occurrence's id, article and position are kept) and each question points to
 * the kept document (mac-reference §4: SQuAD and ArchivalQA streams are deduplicated paragraphs).
 */
import { MacLmError } from "../../errors.js";
import type { QaStream, StreamDoc, StreamQuestion } from "../stream.js";

export interface QaRow {
  /** The id the document gets if this row is its first occurrence. */
  docId: string;
  text: string;
  article: string;
  questionId: string;
  question: string;
  answers: string[];
  /** Where the row came from, for error messages ("squad.json: Warsaw#3 question 2", "test.csv row 7"). */
  where: string;
}

/** A document without a question (StreamFromRowsOptions.documents). */
export type DocRow = Pick<QaRow, "docId" | "text" | "article" | "where">;

export interface StreamFromRowsOptions {
  /** Keep only the first `maxDocs` (deduplicated) documents and their questions. Whole documents, never questions. */
  maxDocs?: number;
  /**
   * Documents that come first, in this order, whether or not a row asks about them (a stream may hold documents
   * without questions). Deduplicated like the rows' documents.
   */
  documents?: Iterable<DocRow>;
}

export function streamFromRows(name: string, rows: Iterable<QaRow>, opts: StreamFromRowsOptions = {}): QaStream {
  if (opts.maxDocs !== undefined && !(Number.isInteger(opts.maxDocs) && opts.maxDocs >= 1))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${name}: maxDocs must be an integer >= 1, got ${opts.maxDocs}`);
  const byText = new Map<string, StreamDoc>();
  const firstWhere = new Map<string, string>(); // doc id -> where it first appeared
  const questionIds = new Map<string, string>();
  const docs: StreamDoc[] = [];
  const questions: StreamQuestion[] = [];
  const docOf = (r: DocRow): StreamDoc => {
    let doc = byText.get(r.text);
    if (!doc) {
      const clash = firstWhere.get(r.docId);
      if (clash !== undefined)
        throw new MacLmError(
          "MACLM_DUPLICATE_ID",
          `${r.where}: document id "${r.docId}" is already used by a different text (first at ${clash})`,
        );
      doc = { id: r.docId, text: r.text, article: r.article };
      byText.set(r.text, doc);
      firstWhere.set(doc.id, r.where);
      docs.push(doc);
    }
    return doc;
  };
  for (const d of opts.documents ?? []) docOf(d);
  for (const r of rows) {
    const doc = docOf(r);
    const firstQ = questionIds.get(r.questionId);
    if (firstQ !== undefined)
      throw new MacLmError(
        "MACLM_DUPLICATE_ID",
        `${r.where}: question id "${r.questionId}" is already used (first at ${firstQ})`,
      );
    questionIds.set(r.questionId, r.where);
    questions.push({ id: r.questionId, docId: doc.id, question: r.question, answers: r.answers });
  }
  if (opts.maxDocs === undefined || opts.maxDocs >= docs.length) return { name, docs, questions };
  const kept = docs.slice(0, opts.maxDocs);
  const keptIds = new Set(kept.map((d) => d.id));
  return { name, docs: kept, questions: questions.filter((q) => keptIds.has(q.docId)) };
}
