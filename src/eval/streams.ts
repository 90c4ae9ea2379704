/**
 * The stream a run evaluates on, from its spec: a SQuAD JSON file (the articles of one split of our training
 * run's article split), a CaMeLS/MAC CSV split of StreamingQA or ArchivalQA (the whole file is the stream), or the
 * synthetic stream (--data "seed=2,docs=100,facts=4,questions=2": its test split).
 */
import { MacLmError } from "../errors.js";
import { camelsCsvStream } from "./data/camels-csv.js";
import { squadStream } from "./data/squad.js";
import { syntheticQaStream } from "./data/synthetic.js";
import type { EvalSpec } from "./run.js";
import type { QaStream } from "./stream.js";

/** The first `maxDocs` documents of a stream and only their questions (0: the whole stream). */
export function truncateStream(stream: QaStream, maxDocs: number): QaStream {
  if (maxDocs <= 0 || maxDocs >= stream.docs.length) return stream;
  const docs = stream.docs.slice(0, maxDocs);
  const keep = new Set(docs.map((d) => d.id));
  return { ...stream, docs, questions: stream.questions.filter((q) => keep.has(q.docId)) };
}

/** "seed=2,docs=100,facts=4,questions=2" → synthetic stream options (test split). */
export function parseSyntheticData(data: string): {
  seed: number;
  numDocs: number;
  factsPerDoc: number;
  questionsPerDoc: number;
} {
  const o: Record<string, number> = { seed: 2, docs: 100, facts: 4, questions: 2 };
  for (const part of data
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [k, v] = part.split("=");
    if (!k || !(k in o) || v === undefined || !/^\d+$/.test(v))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `eval: synthetic --data must look like "seed=2,docs=100,facts=4,questions=2", got "${data}" (at "${part}")`,
      );
    o[k] = Number(v);
  }
  return { seed: o.seed!, numDocs: o.docs!, factsPerDoc: o.facts!, questionsPerDoc: o.questions! };
}

export function loadEvalStream(spec: Pick<EvalSpec, "data" | "format" | "split" | "maxDocs">): QaStream {
  let stream: QaStream;
  switch (spec.format) {
    case "squad":
      stream = squadStream(spec.data, { split: spec.split });
      break;
    case "streamingqa":
    case "archivalqa":
      stream = camelsCsvStream(spec.data, spec.format);
      break;
    case "synthetic":
      stream = syntheticQaStream({ ...parseSyntheticData(spec.data), split: "test" });
      break;
  }
  if (stream.docs.length === 0 || stream.questions.length === 0)
    throw new MacLmError("MACLM_BAD_FILE", `eval: ${spec.data} gives no documents or no questions`);
  return truncateStream(stream, spec.maxDocs);
}
