/**
 * Training with context distillation on the content recipe (lm-queries reader + soft-prompt modulation): the
 * distillation term pulls the student toward the LM that reads the document, the teacher's targets are computed
 * once per example (durably), and the memory ablation reports the content gap at validation.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ablationLosses, ablationMemories } from "../../src/mac/ablation.js";
import { MacTrainer, trainingAnswer } from "../../src/mac/train/trainer.js";
import { TeacherStore } from "../../src/mac/train/distill.js";
import { Tensor, grad, scope } from "../../src/tensor/index.js";
import { lmSoftMac } from "./lm-mac.js";
import { TINY_EXAMPLES } from "./tiny-mac.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("context distillation in training", () => {
  it("gradients reach every trainable part through the soft prompt; the frozen LM gets none", () => {
    const mac = lmSoftMac();
    const trainable = mac.trainableParameters();
    expect(mac.base.parameters().every((p) => !p.requiresGrad)).toBe(true);
    // The reader is the base LM itself, held privately: none of its weights is a MAC parameter.
    const baseParams = new Set(mac.base.parameters());
    expect(mac.parameters().some((p) => baseParams.has(p))).toBe(false);
    scope(() => {
      const t = mac.lossTerms(
        TINY_EXAMPLES.map((e) => e.document),
        TINY_EXAMPLES.map((e) => ({ question: e.question, answer: e.answers[0]! })),
        { memoryPerQuestion: 1 },
      );
      const grads = grad(
        t.loss,
        trainable.map(([, p]) => p),
      );
      const dead = trainable.filter((_, i) => !grads[i]!.toArray().some((x) => x !== 0)).map(([n]) => n);
      expect(dead).toEqual([]);
    });
    mac.dispose();
    mac.base.dispose();
  });

  it("lowers the KL to the in-context teacher, and a resumed run reuses the stored teacher targets", () => {
    const dir = mkdtempSync(join(tmpdir(), "mac-distill-"));
    dirs.push(dir);
    const opts = {
      batchSize: 6,
      lr: 3e-3,
      seed: 2,
      memoryPerQuestion: 1,
      distillWeight: 1,
      distillTopK: 8,
      teacherStore: join(dir, "teacher.sqlite"),
      checkpointDir: join(dir, "ckpt"),
      checkpointEvery: 20,
    };
    const run = (steps: number) => {
      const mac = lmSoftMac({ seed: 4 });
      mac.cacheFrozenEncoders();
      const trainer = new MacTrainer(mac, TINY_EXAMPLES, [], { ...opts, steps });
      const kls: number[] = [];
      for (const ev of trainer.fit()) if (ev.kind === "step") kls.push(ev.kl!);
      trainer.dispose();
      mac.dispose();
      mac.base.dispose();
      return kls;
    };
    const kls = run(40);
    expect(kls.every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    // The first step's KL is the untrained student's (measured before its update); seen: 2.60 → ~1.35.
    expect(mean(kls.slice(-5))).toBeLessThan(0.7 * kls[0]!);
    expect(existsSync(opts.teacherStore)).toBe(true);
    // Every example's targets are stored: a store opened afresh computes nothing for them.
    const store = new TeacherStore(opts.teacherStore, lmSoftMac().qaTemplate);
    let computed = 0;
    store.fetch(
      TINY_EXAMPLES.map((e) => ({ document: e.document, question: e.question, answer: trainingAnswer(e.answers) })),
      8,
      (missing) => {
        computed += missing.length;
        return [];
      },
    );
    store.close();
    expect(computed).toBe(0);
  });
});

describe("memory ablation", () => {
  it("builds memories with the own document first, distinct distractors, never the own document among the unrelated", () => {
    const pool = TINY_EXAMPLES.map((e) => e.document);
    const q = { document: pool[2]!, question: "?", answer: "x" };
    const m = ablationMemories(q, pool, 4);
    expect(m.alone).toEqual([pool[2]]);
    expect(m.own[0]).toBe(pool[2]);
    expect(new Set(m.own).size).toBe(4);
    expect(m.unrelated).toHaveLength(4);
    expect(m.unrelated).not.toContain(pool[2]);
  });

  it("reports finite losses per condition and content_gap = unrelated_k − own_among_k", () => {
    const mac = lmSoftMac();
    const pool = TINY_EXAMPLES.map((e) => e.document);
    const r = ablationLosses(
      mac,
      TINY_EXAMPLES.slice(0, 3).map((e) => ({ document: e.document, question: e.question, answer: e.answers[0]! })),
      pool,
      { k: 4 },
    );
    expect(r.questions).toBe(3);
    for (const c of ["none", "own_alone", "own_among_k", "unrelated_k", "in_context"] as const)
      expect(Number.isFinite(r[c])).toBe(true);
    expect(r.content_gap).toBeCloseTo(r.unrelated_k - r.own_among_k, 3);
    // The untrained memory carries nothing of the document: its answer loss is the same whichever documents it holds.
    expect(Math.abs(r.own_among_k - r.unrelated_k)).toBeLessThan(0.5);
    mac.dispose();
    mac.base.dispose();
  });
});

describe("lm-queries amortizer with poolFirst", () => {
  it("slots start as what they read: the learned queries' residual is not added in the first layer", () => {
    const mac = lmSoftMac();
    const amort = mac.amortizer as unknown as { poolFirst: boolean; queries: { data: Float32Array } };
    expect(amort.poolFirst).toBe(false);
    const docs = ["zorva lives in mirefall.", "quent is a baker."];
    const spread = (): number =>
      scope(() => {
        const m = mac.amortize(docs); // (2, T, d)
        const n = m.data.length / 2;
        let diff = 0;
        let norm = 0;
        for (let i = 0; i < n; i++) {
          diff += (m.data[i]! - m.data[n + i]!) ** 2;
          norm += m.data[i]! ** 2;
        }
        return Math.sqrt(diff / norm);
      });
    // Make the learned queries large, as a trained constant would be: with the residual they swamp the text.
    for (let i = 0; i < amort.queries.data.length; i++) amort.queries.data[i] = 50 * amort.queries.data[i]!;
    const withResidual = spread();
    (amort as { poolFirst: boolean }).poolFirst = true;
    const pooled = spread();
    expect(pooled).toBeGreaterThan(2 * withResidual);
    mac.dispose();
    mac.base.dispose();
  });
});

describe("the reconstruct stage (self-supervised)", () => {
  it("textLoss without memory is the LM's own next-token loss; with memory it depends on the memory's document", () => {
    const mac = lmSoftMac();
    const texts = TINY_EXAMPLES.slice(0, 3).map((e) => e.document);
    scope(() => {
      const none = mac.textLoss(texts, { memory: null }).item();
      // The LM alone, by hand: mean next-token cross-entropy over each text's own tokens.
      let sum = 0;
      let count = 0;
      for (const t of texts) {
        const ids = mac.baseTokenizer.encode(t, { addSpecialTokens: false });
        const logits = mac.base.forward({ ids: Tensor.from(Int32Array.from(ids), [1, ids.length], "int32") });
        const V = mac.base.vocabSize;
        for (let j = 0; j + 1 < ids.length; j++) {
          const row = Array.from(logits.data.subarray(j * V, (j + 1) * V));
          const lse = Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
          sum += lse - row[ids[j + 1]!]!;
          count++;
        }
      }
      expect(none).toBeCloseTo(sum / count, 4);
      const own = mac.textLoss(texts).item();
      const other = mac.textLoss(texts, { memory: [texts[1]!, texts[2]!, texts[0]!] }).item();
      expect(own).not.toBe(none);
      expect(own).not.toBe(other);
    });
    mac.dispose();
    mac.base.dispose();
  });

  it("training on it lowers the text loss with the own document, and validation reports the gain over another's", () => {
    const mac = lmSoftMac({ seed: 6 });
    mac.cacheFrozenEncoders();
    const trainer = new MacTrainer(mac, TINY_EXAMPLES, TINY_EXAMPLES, {
      steps: 30,
      batchSize: 6,
      lr: 3e-3,
      seed: 1,
      objective: "reconstruct",
      textTokens: 24,
      evalEvery: 30,
      evalQuestions: 0,
    });
    const losses: number[] = [];
    let text: { own: number; unrelated: number; none: number; gain: number; docs: number } | undefined;
    for (const ev of trainer.fit()) {
      if (ev.kind === "step") losses.push(ev.loss);
      if (ev.kind === "eval") text = ev.text;
    }
    expect(losses.at(-1)!).toBeLessThan(0.8 * losses[0]!);
    expect(text).toBeDefined();
    expect(text!.docs).toBe(6);
    expect(text!.gain).toBeCloseTo(text!.unrelated - text!.own, 3);
    trainer.dispose();
    mac.dispose();
    mac.base.dispose();
  });
});
