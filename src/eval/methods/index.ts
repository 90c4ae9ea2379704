/**
 * Builds a compared method by name from the run's spec (src/eval/run.ts). A method that cannot run here says why
 * ({unavailable}) instead of producing numbers. Every method that prompts the base LM gets its prompt template
 * (answer.ts) chosen on the validation stream unless the spec fixes one (prompts.ts); fine-tuning chooses its
 * learning rate and template together; MAC methods keep the template they were trained with.
 */
import { MacLmError } from "../../errors.js";
import type { MacModel } from "../../mac/model.js";
import type { EvalSpec } from "../run.js";
import { createMacMethod, createNoneMethod } from "./mac.js";
import { OracleContextMethod } from "./oracle.js";
import { createRetrievalMethod } from "./retrieve.js";
import { CAMELS_UNAVAILABLE } from "./camels.js";
import { PROMPT_TEMPLATES, type PromptTemplate } from "./answer.js";
import { type FinetuneKind, baseLoader, createFinetuneMethod, selectLearningRate } from "./finetune.js";
import { selectPromptTemplate } from "./prompts.js";
import { squadStream } from "../data/squad.js";
import { syntheticQaStream } from "../data/synthetic.js";
import { loadEvalStream, parseSyntheticData } from "../streams.js";
import type { QaStream } from "../stream.js";
import type { MethodContext, MethodName, QaMethod } from "./types.js";

/** Retrieved documents are cut to this many base-LM tokens each (SQuAD paragraphs rarely exceed it). */
const MAX_CONTEXT_TOKENS = 512;

const retrievalOptions = (spec: EvalSpec) => ({
  k: spec.k,
  maxContextTokens: MAX_CONTEXT_TOKENS,
  cacheDir: spec.cache,
});

export type MadeMethod = { method: QaMethod; info: Record<string, unknown> } | { unavailable: string };

export async function createMethod(
  name: MethodName,
  ctx: MethodContext,
  spec: EvalSpec,
  mac: MacModel | null,
  progress?: (phase: string, done: number, total: number) => void,
): Promise<MadeMethod> {
  const needMac = (): MacModel => {
    if (!mac) throw new Error(`createMethod: ${name} needs the MAC checkpoint loaded`);
    return mac;
  };
  switch (name) {
    case "none":
      return promptedMethod(ctx, spec, (c) => createNoneMethod(c), {}, progress);
    case "mac":
      return { method: createMacMethod(needMac(), ctx), info: { aggregation: "full" } };
    case "mac_hierarchical":
      return {
        method: createMacMethod(needMac(), ctx, { groupSize: spec.groupSize }),
        info: { aggregation: "hierarchical", group_size: spec.groupSize },
      };
    case "bm25":
    case "dense":
      return promptedMethod(
        ctx,
        spec,
        (c) => createRetrievalMethod(name, c, retrievalOptions(spec)),
        { retrieved_k: spec.k, max_context_tokens: MAX_CONTEXT_TOKENS },
        progress,
      );
    case "oracle_context":
      return promptedMethod(
        ctx,
        spec,
        (c) => new OracleContextMethod(c, { maxContextTokens: MAX_CONTEXT_TOKENS }),
        { retrieved_k: 1, max_context_tokens: MAX_CONTEXT_TOKENS },
        progress,
      );
    case "bm25_mac": {
      const info = {
        aggregation: "full",
        retrieved_k: spec.k,
        max_context_tokens: MAX_CONTEXT_TOKENS,
      };
      // An extractive memory gives text: BM25 + MAC then prompts the LM as BM25 does, with the template chosen on
      // validation among the same candidates (the fair baselines); a mixing memory's φ* keeps MAC's frame.
      if (needMac().selects) {
        const made = await promptedMethod(
          ctx,
          spec,
          async (c) =>
            createMacMethod(needMac(), c, {
              retrieval: await createRetrievalMethod("bm25", c, retrievalOptions(spec)),
              name: "bm25_mac",
              memoryWeight: BM25_MAC_MEMORY_WEIGHT,
            }),
          { ...info, memory_weight: BM25_MAC_MEMORY_WEIGHT },
          progress,
        );
        if ("method" in made)
          made.info.notes = `the memory's window (MAC's frame) where it lies in BM25's first document or its fused score BM25 + ${BM25_MAC_MEMORY_WEIGHT}·memory beats that document's, else the retrieved documents; ${String(made.info.notes ?? "")}`;
        return made;
      }
      const retrieval = await createRetrievalMethod("bm25", ctx, retrievalOptions(spec));
      return {
        method: createMacMethod(needMac(), ctx, { retrieval, name: "bm25_mac" }),
        info: { ...info, notes: "the retrieved documents in context, the LM modulated by MAC's φ*" },
      };
    }
    case "uniform":
    case "salient_spans":
      return finetuneMethod(name, ctx, spec, progress);
    case "camels":
      return { unavailable: CAMELS_UNAVAILABLE };
  }
}

/** λ of BM25 + MAC's fused score, chosen on all 631 validation questions (results/eval/bm25-mac-fusion). */
const BM25_MAC_MEMORY_WEIGHT = 1;

const validationOptions = (spec: EvalSpec) => ({
  maxDocs: spec.finetune.valDocs,
  maxQuestions: spec.finetune.valQuestions,
  forbidden: loadEvalStream(spec).docs,
});
const sampleNote = (what: string, sel: { docs: number; questions: number }, val: QaStream): string =>
  `${what} chosen on ${sel.docs} validation documents / ${sel.questions} questions (${val.name})`;

/** A method that prompts the base LM, with the spec's template or the one chosen on the validation stream. */
async function promptedMethod(
  ctx: MethodContext,
  spec: EvalSpec,
  make: (ctx: MethodContext) => QaMethod | Promise<QaMethod>,
  info: Record<string, unknown>,
  progress?: (phase: string, done: number, total: number) => void,
): Promise<MadeMethod> {
  const withTemplate = (t: PromptTemplate): MethodContext => ({ ...ctx, promptTemplate: t });
  if (spec.promptTemplate !== undefined)
    return {
      method: await make(withTemplate(spec.promptTemplate)),
      info: { ...info, prompt_template: spec.promptTemplate },
    };
  const val = validationStream(spec);
  if (val === null)
    return {
      method: await make(withTemplate("plain")),
      info: { ...info, prompt_template: "plain", notes: "prompt template plain: no validation stream for this format" },
    };
  const sel = await selectPromptTemplate((t) => make(withTemplate(t)), val, PROMPT_TEMPLATES, {
    ...validationOptions(spec),
    progress: (t, phase, done, total) => progress?.(`prompt ${t} ${phase}`, done, total),
  });
  return {
    method: await make(withTemplate(sel.template)),
    info: {
      ...info,
      prompt_template: sel.template,
      prompt_search: sel.results.map((r) => ({ template: r.template, f1: r.f1, em: r.em })),
      notes: sampleNote("prompt template", sel, val),
    },
  };
}

/**
 * The validation stream the fine-tuning learning rate and every prompt template are chosen on: never the test stream. SQuAD: the validation
 * articles of the same split; synthetic: another seed of the validation split; a CSV split has none (then the
 * reference's default lr 1e-4 and the plain template are used unless --lr / --prompt are given).
 */
function validationStream(spec: EvalSpec): QaStream | null {
  if (spec.format === "squad")
    try {
      return squadStream(spec.data, { split: "val" });
    } catch (e) {
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `eval: ${spec.data} has no validation articles to choose the prompt template and learning rate on ` +
          `(${(e as Error).message}); fix them with --prompt and --lr`,
      );
    }
  if (spec.format === "synthetic") {
    const o = parseSyntheticData(spec.data);
    return syntheticQaStream({ ...o, seed: o.seed + 1000, split: "val" });
  }
  return null;
}

async function finetuneMethod(
  kind: FinetuneKind,
  ctx: MethodContext,
  spec: EvalSpec,
  progress?: (phase: string, done: number, total: number) => void,
): Promise<MadeMethod> {
  const { baseAdapterPath, readConfig } = await import("../../mac/config.js");
  const { join } = await import("node:path");
  const config = readConfig(join(spec.checkpoint, "config.json"));
  const load = baseLoader(config.base, { cacheDir: spec.cache, baseAdapter: baseAdapterPath(config, spec.checkpoint) });
  const options = { maxLength: spec.finetune.maxLength };
  const info: Record<string, unknown> = {};
  let lr = spec.finetune.lr;
  let template = spec.promptTemplate;
  if (lr === undefined || template === undefined) {
    const val = validationStream(spec);
    if (val === null) {
      lr ??= 1e-4;
      template ??= "plain";
      const defaults = [
        spec.finetune.lr === undefined ? "learning rate 1e-4 (the reference default)" : "",
        spec.promptTemplate === undefined ? "the plain prompt template" : "",
      ];
      info.notes = `${defaults.filter(Boolean).join(" and ")}: no validation stream for this format`;
    } else {
      // Both are chosen on the same adapted states: each rate adapts once, then answers with every template.
      const sel = await selectLearningRate(kind, val, lr !== undefined ? [lr] : spec.finetune.lrCandidates, {
        ctx,
        load,
        options,
        templates: template !== undefined ? [template] : PROMPT_TEMPLATES,
        ...validationOptions(spec),
        progress: (c, phase, done, total) => progress?.(`lr ${c.toExponential(0)} ${phase}`, done, total),
      });
      const what = [
        spec.finetune.lr === undefined ? "learning rate" : "",
        spec.promptTemplate === undefined ? "prompt template" : "",
      ];
      ({ lr, template } = sel);
      info.prompt_search = sel.results.map((r) => ({ lr: r.lr, template: r.template, f1: r.f1, em: r.em }));
      info.notes = sampleNote(what.filter(Boolean).join(" and "), sel, val);
    }
  }
  const method = await createFinetuneMethod(kind, { ...ctx, promptTemplate: template }, load, { ...options, lr });
  return { method, info: { lr, prompt_template: template, ...info } };
}
