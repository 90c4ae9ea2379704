import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { tinyVocabulary } from "../../data/synthetic.js";
import { loadBase } from "../../mac/build.js";
import { loadCausalLM } from "../../models/load.js";
import type { CausalLM } from "../../models/types.js";
import { Tensor, crossEntropy, liveNativeMemory, noGrad, scope, slice } from "../../tensor/index.js";
import { WordTokenizer } from "../../tokenizers/index.js";
import { CharTokenizer } from "../../../test/helpers/char-tokenizer.js";
import { cachedFile } from "../../../test/helpers/model-cache.js";
import { GPT2_TINY } from "../../../test/mac/tiny-mac.js";
import { tinySyntheticVal } from "../../../test/helpers/synthetic-val.js";
import { CAMELS_UNAVAILABLE } from "./camels.js";
import { FinetuneMethod, type FinetuneOptions, createFinetuneMethod, selectLearningRate } from "./finetune.js";
import type { MethodContext } from "./types.js";

const hashOf = (m: CausalLM): string => {
  const h = createHash("sha256");
  for (const t of m.parameters()) h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return h.digest("hex");
};

/** gpt2-tiny (n_positions 32) with the character tokenizer: documents of at most 32 characters. */
function tinyCtx(): MethodContext {
  return {
    base: loadCausalLM(GPT2_TINY, { freeze: true }),
    tokenizer: new CharTokenizer(),
    qaTemplate: "q: {question} a:",
    decoding: { maxNewTokens: 3 },
    batchSize: 4,
    seed: 0,
  };
}
const tinyMethod = (kind: "uniform" | "salient_spans", ctx: MethodContext, o: FinetuneOptions = {}): FinetuneMethod =>
  new FinetuneMethod(kind, ctx, loadCausalLM(GPT2_TINY), { maxLength: 32, lr: 1e-2, ...o });

const DOC = { id: "d0", text: "zorva lives in mirefall.", article: "a" };

/** Mean next-token cross-entropy of `ids` under `model` (the plain LM loss). */
const plainLoss = (model: CausalLM, ids: number[]): number =>
  noGrad(() =>
    scope(() => {
      const T = ids.length;
      const logits = model.forward({ ids: Tensor.from(Int32Array.from(ids), [1, T], "int32") });
      const targets = Tensor.from(Int32Array.from(ids.slice(1)), [1, T - 1], "int32");
      return crossEntropy(slice(logits, 1, 0, T - 1), targets).item();
    }),
  );

describe("online fine-tuning (uniform, salient_spans)", () => {
  it("one step lowers the document's loss; the shared frozen base LM is untouched", async () => {
    const ctx = tinyCtx();
    const baseHash = hashOf(ctx.base);
    const m = tinyMethod("uniform", ctx);
    const before = m.evalLoss(DOC.text);
    const info = m.step(DOC)!;
    expect(info.skipped).toBe(false);
    expect(info.loss).toBeCloseTo(before, 5);
    expect(m.evalLoss(DOC.text)).toBeLessThan(before - 0.05);
    await m.adapt([{ ...DOC, id: "d1", text: "quent is a baker." }]);
    expect((await m.answer([{ id: "q", docId: "d0", question: "where?", answers: ["x"] }])).length).toBe(1);
    expect(m.stats()).toMatchObject({ docs: 2, steps: 2, skippedDocs: 0 });
    expect(hashOf(ctx.base)).toBe(baseHash);
    expect(ctx.base.parameters().every((p) => !p.requiresGrad)).toBe(true);
    m.dispose();
    expect(() => new FinetuneMethod("uniform", ctx, ctx.base)).toThrow(/shared frozen base LM/);
    ctx.base.dispose();
  });

  it("uniform weights give the plain LM loss; the normalisations scale it as documented", () => {
    const ctx = tinyCtx();
    const m = tinyMethod("uniform", ctx, { maxLength: 30 });
    const ids = ctx.tokenizer.encode(DOC.text);
    const T = ids.length;
    const ones = m.tokenWeights(DOC.text, ids);
    expect([...ones]).toEqual(new Array<number>(T).fill(1));
    const loss = (w: Float32Array, mm = m): number => noGrad(() => scope(() => mm.documentLoss(ids, w).item()));
    const plain = plainLoss(ctx.base, ids);
    expect(loss(ones)).toBeCloseTo(plain, 5);
    const maxLen = tinyMethod("uniform", ctx, { maxLength: 30, normalization: "max_length" });
    expect(loss(ones, maxLen)).toBeCloseTo((plain * (T - 1)) / 29, 5);
    // Weights on two target tokens: their CE sum over T − 1 ("positions") or over 2 ("weights").
    const w = new Float32Array(T);
    w[3] = 1;
    w[7] = 1;
    const ce = noGrad(() =>
      scope(() => {
        const logits = ctx.base.forward({ ids: Tensor.from(Int32Array.from(ids), [1, T], "int32") });
        const targets = Tensor.from(Int32Array.from([...ids.slice(1), -100]), [1, T], "int32");
        return crossEntropy(logits, targets, { reduction: "none" }).toArray();
      }),
    );
    const selected = ce[2]! + ce[6]!;
    expect(loss(w)).toBeCloseTo(selected / (T - 1), 5);
    const byWeight = tinyMethod("uniform", ctx, { normalization: "weights" });
    expect(loss(w, byWeight)).toBeCloseTo(selected / 2, 5);
    for (const x of [m, maxLen, byWeight]) x.dispose();
    ctx.base.dispose();
  });

  it("salient_spans trains on the entity tokens only and skips documents without any", async () => {
    const ctx = tinyCtx();
    const m = tinyMethod("salient_spans", ctx);
    const text = "Chopin moved to Paris in 1831.";
    const w = m.tokenWeights(text, ctx.tokenizer.encode(text));
    expect([...text].map((c, i) => (w[i] ? c : "_")).join("")).toBe("Chopin__________Paris____1831_");
    const own = hashOf(m.model);
    const skipped = m.step({ id: "n", text: "the cat sat on the mat.", article: "a" })!;
    expect(skipped.skipped).toBe(true);
    expect(hashOf(m.model)).toBe(own);
    await m.adapt([{ id: "s", text, article: "a" }]);
    expect(hashOf(m.model)).not.toBe(own);
    expect(m.stats()).toMatchObject({ docs: 2, steps: 1, skippedDocs: 1 });
    expect(m.info()).toMatchObject({ skipped_docs: 1, optimizer_steps: 1 });
    m.dispose();
    ctx.base.dispose();
  });

  it("truncates to maxLength, batches docsPerStep documents per step, and frees its native memory", async () => {
    const ctx = tinyCtx();
    const start = liveNativeMemory().bytes;
    const m = tinyMethod("uniform", ctx, { maxLength: 16, docsPerStep: 2 });
    expect(m.step({ id: "a", text: "a long document that goes past the limit.", article: "a" })).toBeNull();
    const info = m.step({ id: "b", text: "short one.", article: "a" })!;
    expect(info.tokens).toBe(16 + 10);
    const afterOne = liveNativeMemory().bytes;
    const docs = Array.from({ length: 6 }, (_, i) => ({ id: `x${i}`, text: `doc ${i}.`, article: "a" }));
    await m.adapt(docs);
    expect(m.stats()).toMatchObject({ docs: 8, steps: 4, truncatedDocs: 1 });
    // No growth per step, and everything the method took is returned. "≤", not "=": a finalizer may free an earlier
    // test's garbage in between (seen once in a few dozen runs), which lowers the count without any leak here.
    expect(liveNativeMemory().bytes).toBeLessThanOrEqual(afterOne);
    m.dispose();
    expect(liveNativeMemory().bytes).toBeLessThanOrEqual(start);
    ctx.base.dispose();
  });

  it("createFinetuneMethod loads its own copy; selectLearningRate picks the best validation F1 deterministically", async () => {
    // The tiny pretrained GPT-2 of the synthetic MAC test: fine-tuning on "nive was born in nale ." can teach it
    // to answer "where was nive born ?" — or, with too large a rate, wreck it.
    const path = "test/fixtures/models/gpt2-synthetic";
    const tok = new WordTokenizer(tinyVocabulary());
    const ctx: MethodContext = {
      base: loadCausalLM(path, { freeze: true }),
      tokenizer: tok,
      qaTemplate: "{question}",
      decoding: { maxNewTokens: 3 },
      batchSize: 16,
      seed: 0,
    };
    const val = tinySyntheticVal();
    const candidates = [1e-6, 1e-3, 3e-3, 3e-2];
    const opts = { ctx, load: () => loadCausalLM(path), maxDocs: 10, maxQuestions: 8, options: { maxLength: 64 } };
    const a = await selectLearningRate("uniform", val, candidates, opts);
    const b = await selectLearningRate("uniform", val, candidates, opts);
    expect(a.results.map((r) => r.lr)).toEqual(candidates);
    expect({ docs: a.docs, questions: a.questions }).toEqual({ docs: 10, questions: 8 });
    const strip = (r: typeof a): unknown => ({ ...r, results: r.results.map(({ seconds: _, ...x }) => x) });
    expect(strip(b)).toEqual(strip(a));
    const bestF1 = Math.max(...a.results.map((r) => r.f1));
    expect(a.lr).toBe(a.results.find((r) => r.f1 === bestF1)!.lr);
    expect(candidates).toContain(a.lr);
    await expect(
      selectLearningRate("uniform", val, candidates, { ...opts, forbidden: [val.docs[3]!] }),
    ).rejects.toThrow(/also in the test stream/);
    const m = await createFinetuneMethod("uniform", ctx, () => loadCausalLM(path), { lr: a.lr });
    expect(m.model).not.toBe(ctx.base);
    m.dispose();
    ctx.base.dispose();
  });

  it("CaMeLS is reported as unavailable with its reason", () => {
    expect(CAMELS_UNAVAILABLE).toMatch(/first-order only/);
    expect(CAMELS_UNAVAILABLE).toMatch(/CPU-seconds/);
  });

  const SMOL = cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf");
  it.skipIf(!SMOL.present)(
    `SmolLM2-135M: a salient-spans step on a short paragraph lowers its loss${SMOL.skipNote}`,
    async () => {
      // One SmolLM2 only (the trainable copy; loading takes seconds): a step does not use the shared base of ctx.
      const { model, tokenizer } = await loadBase("smollm2-135m-instruct");
      const ctx: MethodContext = { ...tinyCtx(), tokenizer };
      const m = await createFinetuneMethod("salient_spans", ctx, () => model, { lr: 1e-4, maxLength: 24 });
      const doc = { id: "sb", text: "Super Bowl 50 was played on February 7, 2016, at Levi's Stadium.", article: "s" };
      const before = m.evalLoss(doc.text);
      const info = m.step(doc)!;
      expect(info.weight).toBeGreaterThan(5);
      expect(m.evalLoss(doc.text)).toBeLessThan(before);
      m.dispose();
      ctx.base.dispose();
    },
    60_000,
  );
});
