import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { EncoderQueriesAmortizer } from "../../src/mac/amortize/amortizer.js";
import { MacTrainer } from "../../src/mac/train/trainer.js";
import { expectClose } from "../helpers/numeric.js";
import { grad, liveNativeMemory, scope } from "../../src/tensor/index.js";
import { TINY_EXAMPLES, tinyMac } from "./tiny-mac.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("MAC training", () => {
  it("gradients reach every trainable part and never the frozen base LM", () => {
    const mac = tinyMac();
    const trainable = mac.trainableParameters();
    expect(trainable.length).toBeGreaterThan(10);
    expect(mac.base.parameters().every((p) => !p.requiresGrad)).toBe(true);
    // The base LM is not part of the MAC module's parameters (it is never saved with them).
    const baseParams = new Set(mac.base.parameters());
    expect(mac.parameters().some((p) => baseParams.has(p))).toBe(false);
    scope(() => {
      const loss = mac.loss(
        TINY_EXAMPLES.map((e) => e.document),
        TINY_EXAMPLES.map((e) => ({ question: e.question, answer: e.answers[0]! })),
      );
      const grads = grad(
        loss,
        trainable.map(([, t]) => t),
      );
      const dead = trainable.filter((_, i) => !grads[i]!.toArray().some((x) => x !== 0)).map(([n]) => n);
      expect(dead).toEqual([]);
    });
    mac.dispose();
    mac.base.dispose();
  });

  it("backpropagation dropout changes the memory held for backward, not the loss value", () => {
    const mac = tinyMac().eval();
    const docs = TINY_EXAMPLES.map((e) => e.document);
    const qa = TINY_EXAMPLES.slice(0, 2).map((e) => ({ question: e.question, answer: e.answers[0]! }));
    const measure = (gradDocs: number): { loss: number; held: number } =>
      scope(() => {
        const before = liveNativeMemory().bytes;
        const loss = mac.loss(docs, qa, { gradDocs });
        return { loss: loss.item(), held: liveNativeMemory().bytes - before };
      });
    const all = measure(docs.length);
    const two = measure(2);
    expect(two.loss).toBe(all.loss);
    expect(two.held).toBeLessThan(all.held);
    mac.dispose();
    mac.base.dispose();
  });

  it("memoryPerQuestion gives each question its own document and the next m − 1 as its whole memory", () => {
    const mac = tinyMac({ seed: 4 });
    mac.eval(); // no dropout: the batched and the one-question losses must agree
    const docs = TINY_EXAMPLES.slice(0, 3).map((e) => e.document);
    // Answers of equal length (char tokenizer: equal token counts), so the token mean is the mean over questions.
    const qa = ["mirefall", "a bakers", "18431843"].map((answer, i) => ({
      question: TINY_EXAMPLES[i]!.question,
      answer,
    }));
    const lossOf = (d: string[], q: typeof qa, m?: number): number =>
      scope(() => mac.loss(d, q, m === undefined ? {} : { memoryPerQuestion: m }).item());
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    // m = 1: question i sees document i alone.
    expectClose(lossOf(docs, qa, 1), mean(qa.map((q, i) => lossOf([docs[i]!], [q]))), { atol: 1e-5, rtol: 1e-5 });
    // m = 2: question i sees documents i and i + 1 (mod K).
    expectClose(lossOf(docs, qa, 2), mean(qa.map((q, i) => lossOf([docs[i]!, docs[(i + 1) % 3]!], [q]))), {
      atol: 1e-5,
      rtol: 1e-5,
    });
    // m = K or 0: the shared memory of all K documents.
    expect(lossOf(docs, qa, 3)).toBe(lossOf(docs, qa));
    expect(lossOf(docs, qa, 0)).toBe(lossOf(docs, qa));
    expect(() => mac.loss(docs, qa, { memoryPerQuestion: -1 })).toThrow(/memoryPerQuestion -1/);
    expect(() => new MacTrainer(mac, TINY_EXAMPLES, [], { steps: 1, batchSize: 4, memoryPerQuestion: 5 })).toThrow(
      /memoryPerQuestion 5 must be an integer in \[0, batchSize 4\]/,
    );
    mac.dispose();
    mac.base.dispose();
  });

  it.each([
    ["a trained encoder", true],
    ["a frozen, cached encoder", false],
  ])("resuming from a checkpoint reproduces an uninterrupted run exactly (%s)", (_, trainEncoder) => {
    const opts = { batchSize: 4, keepRatio: 0.5, lr: 1e-3, warmupSteps: 2, seed: 5, checkpointEvery: 2 };
    const run = (steps: number, dir?: string) => {
      const mac = tinyMac({ seed: 3, trainEncoder });
      mac.cacheFrozenEncoders();
      const trainer = new MacTrainer(mac, TINY_EXAMPLES, [], { ...opts, steps, checkpointDir: dir });
      const losses: number[] = [];
      for (const ev of trainer.fit()) if (ev.kind === "step") losses.push(ev.loss);
      const params = mac.trainableParameters().map(([n, t]) => [n, Float32Array.from(t.data)] as const);
      trainer.dispose();
      mac.dispose();
      mac.base.dispose();
      return { losses, params };
    };
    const straight = run(4);
    const dir = mkdtempSync(join(tmpdir(), "mac-ckpt-"));
    dirs.push(dir);
    const first = run(2, dir);
    const resumed = run(4, dir);
    expect([...first.losses, ...resumed.losses]).toEqual(straight.losses);
    for (let i = 0; i < straight.params.length; i++) {
      expect(resumed.params[i]![0]).toBe(straight.params[i]![0]);
      expect(resumed.params[i]![1]).toEqual(straight.params[i]![1]);
    }
  });
});

describe("amortizer cache", () => {
  it("cached frozen-encoder states give the same memory entries as a fresh forward", () => {
    const mac = tinyMac({ seed: 4, trainEncoder: false });
    const amort = mac.amortizer as EncoderQueriesAmortizer;
    mac.eval();
    const docs = TINY_EXAMPLES.map((e) => e.document);
    const fresh = scope(() => Float32Array.from(mac.amortize(docs).data));
    amort.enableCache();
    const first = scope(() => Float32Array.from(mac.amortize(docs.slice(0, 3)).data));
    const cached = scope(() => Float32Array.from(mac.amortize(docs).data));
    // Equal up to float32 summation order (the encoder ran on batches padded to other lengths).
    expectClose(cached, fresh, { rtol: 1e-5, atol: 1e-6 });
    expectClose(first, fresh.slice(0, first.length), { rtol: 1e-5, atol: 1e-6 });
    amort.enableCache(false);
    mac.dispose();
    mac.base.dispose();
  });
});
