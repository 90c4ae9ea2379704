/**
 * A SQuAD-format file (v1.1 JSON) as an evaluation stream: the paragraphs of chosen articles, in article order then
 * paragraph order, deduplicated by text, with their questions.
 *
 *   const stream = squadStream("../shared/data/squad/squad-dev-open.json", { split: "test" });
 *
 * The split is src/data/squad.ts splitArticles (by a hash of the article titles, never by question) with the
 * counts of mac-lm's training run (DEFAULT_SQUAD_SPLIT: 4 val and 6 test of the 40 open articles, the rest train),
 * so the "test" stream holds no article MAC was trained or validated on. "all" keeps the file's article order.
 * Question ids are "<docId>:<k>", k the question's index among its paragraph's answerable questions.
 */
import { basename } from "node:path";
import { type Article, loadSquad, splitArticles } from "../../data/squad.js";
import { MacLmError } from "../../errors.js";
import type { QaStream } from "../stream.js";
import { type QaRow, streamFromRows } from "./dedup.js";

export type SquadStreamSplit = "train" | "val" | "test" | "all";

/** The article counts of runs/squad-default (src/mac/train/run.ts): 4 val, 6 test, the rest train. */
export const DEFAULT_SQUAD_SPLIT: Readonly<{ val: number; test: number }> = Object.freeze({ val: 4, test: 6 });

export interface SquadStreamOptions {
  /** Default "test". */
  split?: SquadStreamSplit;
  /** Articles in the val and test splits (default DEFAULT_SQUAD_SPLIT). */
  splitCounts?: { val: number; test: number };
  /** Keep only the first maxDocs documents of the split (and their questions). */
  maxDocs?: number;
  /** Default "squad-<split>". */
  name?: string;
}

/** The articles of one split, in the order the stream uses. */
export function squadSplitArticles(
  articles: readonly Article[],
  split: SquadStreamSplit,
  counts: { val: number; test: number } = DEFAULT_SQUAD_SPLIT,
): Article[] {
  if (split === "all") return [...articles];
  if (!["train", "val", "test"].includes(split))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `squadStream: split must be train, val, test or all, got "${split}"`);
  return splitArticles(articles, counts)[split];
}

export function squadStream(file: string, opts: SquadStreamOptions = {}): QaStream {
  const split = opts.split ?? "test";
  const articles = squadSplitArticles(loadSquad(file), split, opts.splitCounts ?? DEFAULT_SQUAD_SPLIT);
  const name = opts.name ?? `squad-${split}`;
  function* rows(): Generator<QaRow> {
    for (const a of articles) {
      const seen = new Map<string, number>();
      for (const ex of a.examples) {
        const k = seen.get(ex.docId) ?? 0;
        seen.set(ex.docId, k + 1);
        const where = `${basename(file)}: ${ex.docId} question ${k}`;
        if (ex.question === "") throw new MacLmError("MACLM_BAD_FILE", `${where}: empty question`);
        yield {
          docId: ex.docId,
          text: ex.document,
          article: a.title,
          questionId: `${ex.docId}:${k}`,
          question: ex.question,
          answers: ex.answers,
          where,
        };
      }
    }
  }
  return streamFromRows(name, rows(), { maxDocs: opts.maxDocs });
}
