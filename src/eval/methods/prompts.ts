/**
 * Fair prompts: a method that prompts the base LM gets the template (answer.ts PROMPT_TEMPLATES) with the best F1 on
 * validation documents — the same validation stream and sample the fine-tuning learning rate is chosen on, never
 * the test stream — so that no method's score comes from a prompt the others were denied. A fresh method is made
 * for each candidate, adapted to the validation documents and asked their questions; ties go to the earlier
 * candidate. (Fine-tuning chooses its learning rate and template together: finetune.ts selectLearningRate.)
 */
import { MacLmError } from "../../errors.js";
import { scoreAll } from "../../data/qa-metrics.js";
import type { QaStream, StreamDoc, StreamQuestion } from "../stream.js";
import type { PromptTemplate } from "./answer.js";
import type { QaMethod } from "./types.js";

export interface ValidationSample {
  /** Validation documents adapted to (the first ones of the stream). Default 24. */
  maxDocs?: number;
  /** Of their questions, the first ones answered. Default 64. */
  maxQuestions?: number;
  /** Documents the validation stream must not share (the test stream): an error names the first shared one. */
  forbidden?: readonly StreamDoc[];
}

/** The validation documents and questions a choice is made on. */
export function validationSample(
  op: string,
  val: QaStream,
  o: ValidationSample,
): { docs: StreamDoc[]; questions: StreamQuestion[] } {
  const docs = val.docs.slice(0, o.maxDocs ?? 24);
  if (o.forbidden) {
    const texts = new Set(o.forbidden.map((d) => d.text));
    const shared = docs.find((d) => texts.has(d.text));
    if (shared)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: validation document ${shared.id} is also in the test stream`);
  }
  const ids = new Set(docs.map((d) => d.id));
  const questions = val.questions.filter((q) => ids.has(q.docId)).slice(0, o.maxQuestions ?? 64);
  if (docs.length === 0 || questions.length === 0)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${op}: ${val.name} gives ${docs.length} documents and ${questions.length} questions to validate on`,
    );
  return { docs, questions };
}

export interface PromptCandidateResult {
  template: PromptTemplate;
  f1: number;
  em: number;
  seconds: number;
}

export interface PromptSelection {
  template: PromptTemplate;
  results: PromptCandidateResult[];
  docs: number;
  questions: number;
}

/** The candidate template with the best validation F1; `make` builds a fresh method prompting with a template. */
export async function selectPromptTemplate(
  make: (template: PromptTemplate) => QaMethod | Promise<QaMethod>,
  val: QaStream,
  candidates: readonly PromptTemplate[],
  o: ValidationSample & {
    progress?: (template: PromptTemplate, phase: "adapt" | "answer", done: number, total: number) => void;
  } = {},
): Promise<PromptSelection> {
  if (candidates.length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", "selectPromptTemplate: no candidate templates");
  const { docs, questions } = validationSample("selectPromptTemplate", val, o);
  const results: PromptCandidateResult[] = [];
  for (const template of candidates) {
    const t0 = performance.now();
    const m = await make(template);
    try {
      await m.adapt(docs, (d, n) => o.progress?.(template, "adapt", d, n));
      const preds = await m.answer(questions, (d, n) => o.progress?.(template, "answer", d, n));
      const sc = scoreAll(
        preds,
        questions.map((q) => q.answers),
      );
      results.push({ template, f1: sc.f1, em: sc.em, seconds: (performance.now() - t0) / 1000 });
    } finally {
      m.dispose();
    }
  }
  let best = results[0]!;
  for (const r of results) if (r.f1 > best.f1) best = r;
  return { template: best.template, results, docs: docs.length, questions: questions.length };
}
