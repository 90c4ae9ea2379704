/**
 * Builds a compared method by name from the run's spec (src/eval/run.ts). A method that cannot run here says why
 * ({unavailable}) instead of producing numbers.
 */
import type { MacModel } from "../../mac/model.js";
import type { EvalSpec } from "../run.js";
import { createMacMethod, createNoneMethod } from "./mac.js";
import { OracleContextMethod } from "./oracle.js";
import { createRetrievalMethod } from "./retrieve.js";
import { CAMELS_UNAVAILABLE } from "./camels.js";
import { type FinetuneKind, baseLoader, createFinetuneMethod, selectLearningRate } from "./finetune.js";
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
      return { method: createNoneMethod(ctx), info: {} };
    case "mac":
      return { method: createMacMethod(needMac(), ctx), info: { aggregation: "full" } };
    case "mac_hierarchical":
      return {
        method: createMacMethod(needMac(), ctx, { groupSize: spec.groupSize }),
        info: { aggregation: "hierarchical", group_size: spec.groupSize },
      };
    case "bm25":
    case "dense":
      return {
        method: await createRetrievalMethod(name, ctx, retrievalOptions(spec)),
        info: { retrieved_k: spec.k, max_context_tokens: MAX_CONTEXT_TOKENS },
      };
    case "oracle_context":
      return {
        method: new OracleContextMethod(ctx, { maxContextTokens: MAX_CONTEXT_TOKENS }),
        info: { retrieved_k: 1, max_context_tokens: MAX_CONTEXT_TOKENS },
      };
    case "bm25_mac": {
      const retrieval = await createRetrievalMethod("bm25", ctx, retrievalOptions(spec));
      return {
        method: createMacMethod(needMac(), ctx, { retrieval, name: "bm25_mac" }),
        info: { aggregation: "full", retrieved_k: spec.k, max_context_tokens: MAX_CONTEXT_TOKENS },
      };
    }
    case "uniform":
    case "salient_spans":
      return finetuneMethod(name, ctx, spec, progress);
    case "camels":
      return { unavailable: CAMELS_UNAVAILABLE };
  }
}

/**
 * The validation stream the fine-tuning learning rate is chosen on: never the test stream. SQuAD: the validation
 * articles of the same split; synthetic: another seed of the validation split; a CSV split has none (then the
 * reference's default lr 1e-4 is used unless --lr is given).
 */
function validationStream(spec: EvalSpec): QaStream | null {
  if (spec.format === "squad") return squadStream(spec.data, { split: "val" });
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
  const { readConfig } = await import("../../mac/config.js");
  const { join } = await import("node:path");
  const load = baseLoader(readConfig(join(spec.checkpoint, "config.json")).base, { cacheDir: spec.cache });
  const options = { maxLength: spec.finetune.maxLength };
  const info: Record<string, unknown> = {};
  let lr = spec.finetune.lr;
  if (lr === undefined) {
    const val = validationStream(spec);
    if (val === null) {
      lr = 1e-4;
      info.notes = "learning rate 1e-4 (the reference default): no validation stream for this format";
    } else {
      const sel = await selectLearningRate(kind, val, spec.finetune.lrCandidates, {
        ctx,
        load,
        maxDocs: spec.finetune.valDocs,
        maxQuestions: spec.finetune.valQuestions,
        options,
        forbidden: loadEvalStream(spec).docs,
        progress: (c, phase, done, total) => progress?.(`lr ${c.toExponential(0)} ${phase}`, done, total),
      });
      lr = sel.lr;
      info.lr_search = sel.results.map((r) => ({ lr: r.lr, f1: r.f1 }));
      info.notes = `learning rate chosen on ${sel.docs} validation documents / ${sel.questions} questions (${val.name})`;
    }
  }
  const method = await createFinetuneMethod(kind, ctx, load, { ...options, lr });
  return { method, info: { lr, ...info } };
}
