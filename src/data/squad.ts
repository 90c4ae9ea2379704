/**
 * SQuAD-format data (v1.1 JSON: {data: [{title, paragraphs: [{context, qas: [{id, question, answers: [{text}]}]}]}]})
 * as MAC's examples, and a deterministic split by article (never by question).
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { MacLmError } from "../errors.js";
import { readTextFile } from "./text.js";
import type { TrainExample } from "../mac/train/trainer.js";

const SquadSchema = z.object({
  data: z.array(
    z.object({
      title: z.string(),
      paragraphs: z.array(
        z.object({
          context: z.string(),
          qas: z.array(
            z.object({ id: z.string(), question: z.string(), answers: z.array(z.object({ text: z.string() })) }),
          ),
        }),
      ),
    }),
  ),
});

export interface Article {
  title: string;
  examples: TrainExample[];
}

/** Reads a SQuAD JSON file; errors name the file and the offending field. */
export function loadSquad(file: string): Article[] {
  let json: unknown;
  try {
    json = JSON.parse(readTextFile(file, "utf8", "SQuAD file"));
  } catch (e) {
    if (e instanceof MacLmError) throw e;
    throw new MacLmError("MACLM_BAD_FILE", `${file}: not readable JSON (${(e as Error).message})`);
  }
  const parsed = SquadSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${file}: not SQuAD format at ${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
  }
  return parsed.data.data.map((a) => ({
    title: a.title,
    examples: a.paragraphs.flatMap((p, pi) =>
      p.qas
        .filter((qa) => qa.answers.length > 0)
        .map((qa) => ({
          docId: `${a.title}#${pi}`,
          document: p.context,
          question: qa.question.trim(),
          answers: qa.answers.map((x) => x.text.trim()),
        })),
    ),
  }));
}

export interface ArticleSplit {
  train: Article[];
  val: Article[];
  test: Article[];
}

/**
 * Splits articles by a hash of their titles (stable under reordering and additions): `val` and `test` articles
 * each, the rest train.
 */
export function splitArticles(articles: readonly Article[], counts: { val: number; test: number }): ArticleSplit {
  if (counts.val + counts.test >= articles.length)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `split: ${articles.length} articles cannot give ${counts.val} val + ${counts.test} test and leave any for training`,
    );
  const key = (t: string): string => createHash("sha256").update(t).digest("hex");
  const sorted = [...articles].sort((a, b) => (key(a.title) < key(b.title) ? -1 : 1));
  return {
    test: sorted.slice(0, counts.test),
    val: sorted.slice(counts.test, counts.test + counts.val),
    train: sorted.slice(counts.test + counts.val),
  };
}

export const examplesOf = (articles: readonly Article[]): TrainExample[] => articles.flatMap((a) => a.examples);
