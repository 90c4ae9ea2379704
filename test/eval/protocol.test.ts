/**
 * The evaluation protocol (src/eval/protocol.ts) and the MAC / no-adaptation methods on the tiny MAC: retention
 * points, what adaptation does to the bank, that full = hierarchical aggregation when the bank fits one group, and
 * that scores are the metrics of the predictions returned.
 */
import { describe, expect, it } from "vitest";
import { scoreAll } from "../../src/data/qa-metrics.js";
import { createMacMethod, createNoneMethod } from "../../src/eval/methods/mac.js";
import type { MethodContext } from "../../src/eval/methods/types.js";
import { retentionPlan, runProtocol } from "../../src/eval/protocol.js";
import type { QaStream } from "../../src/eval/stream.js";
import { truncateStream } from "../../src/eval/streams.js";
import { TINY_EXAMPLES, tinyMac } from "../mac/tiny-mac.js";

const stream: QaStream = {
  name: "tiny",
  docs: TINY_EXAMPLES.map((e) => ({ id: e.docId, text: e.document, article: e.docId })),
  questions: TINY_EXAMPLES.map((e, i) => ({ id: `q${i}`, docId: e.docId, question: e.question, answers: e.answers })),
};

const contextOf = (mac: ReturnType<typeof tinyMac>): MethodContext => ({
  base: mac.base,
  tokenizer: mac.baseTokenizer,
  qaTemplate: mac.qaTemplate,
  decoding: { maxNewTokens: 4 },
  batchSize: 4,
  seed: 0,
});

describe("retentionPlan", () => {
  it("starts at min(start, N/2), steps up to the whole stream, samples the first documents' questions", () => {
    const p = retentionPlan(stream, { start: 200, points: 3, maxQuestions: 2, seed: 0 });
    expect(p.start).toBe(3);
    expect(p.extra).toEqual([0, 1, 2, 3]);
    expect(p.questions).toHaveLength(2);
    for (const q of p.questions) expect(["d0", "d1", "d2"]).toContain(q.docId);
    // Seeded: the same sample every time, in stream order.
    expect(retentionPlan(stream, { start: 200, points: 3, maxQuestions: 2, seed: 0 }).questions).toEqual(p.questions);
    const all = retentionPlan(stream, { start: 2, points: 2, maxQuestions: 99, seed: 5 });
    expect(all.extra).toEqual([0, 2, 4]);
    expect(all.questions.map((q) => q.id)).toEqual(["q0", "q1"]);
  });

  it("never repeats a point when the rest of the stream is shorter than the number of points", () => {
    expect(retentionPlan(stream, { start: 5, points: 4, maxQuestions: 9, seed: 0 }).extra).toEqual([0, 1, 2, 3]);
  });
});

describe("runProtocol with MAC", () => {
  it("adapts every document once into the bank and scores the final answers", async () => {
    const mac = tinyMac().eval();
    const ctx = contextOf(mac);
    const method = createMacMethod(mac, ctx);
    try {
      const seen: string[] = [];
      const plan = retentionPlan(stream, { start: 3, points: 3, maxQuestions: 3, seed: 0 });
      const r = await runProtocol(method, stream, plan, { progress: (phase) => seen.push(phase) });
      expect(r.predictions).toHaveLength(stream.questions.length);
      expect(r.scores).toEqual(
        scoreAll(
          r.predictions.map((p) => p.prediction),
          stream.questions.map((q) => q.answers),
        ),
      );
      expect(r.retention!.map(([e]) => e)).toEqual([0, 1, 2, 3]);
      expect(r.retention![0]![1]).toBe(r.retentionF1Start! > 0 ? 100 : null);
      expect(r.adaptMsPerDoc).toBeGreaterThan(0);
      expect(r.answerMs).toBeGreaterThan(0);
      expect(seen).toContain("answer");
      expect(seen).toContain("retention 4/4");
    } finally {
      method.dispose();
    }
  });

  it("answers with the memory: hierarchical = full aggregation when the bank fits one group; no memory differs", async () => {
    const mac = tinyMac({ seed: 3 }).eval();
    const ctx = contextOf(mac);
    const full = createMacMethod(mac, ctx);
    const hier = createMacMethod(mac, ctx, { groupSize: 8 });
    const none = createNoneMethod(ctx);
    try {
      for (const m of [full, hier, none]) await m.adapt(stream.docs);
      const a = await full.answer(stream.questions);
      const b = await hier.answer(stream.questions);
      const c = await none.answer(stream.questions);
      expect(b).toEqual(a);
      expect(a).toHaveLength(stream.questions.length);
      // The base LM alone answers the same as MAC with an empty bank, and differently from MAC with the memory.
      const empty = createMacMethod(mac, ctx);
      expect(await empty.answer(stream.questions)).toEqual(c);
      empty.dispose();
      expect(a).not.toEqual(c);
    } finally {
      for (const m of [full, hier, none]) m.dispose();
    }
  });

  it("hierarchical aggregation with groups smaller than the bank still answers every question", async () => {
    const mac = tinyMac({ seed: 4 }).eval();
    const m = createMacMethod(mac, contextOf(mac), { groupSize: 2, adaptBatch: 4 });
    try {
      await m.adapt(stream.docs);
      expect(await m.answer(stream.questions)).toHaveLength(stream.questions.length);
    } finally {
      m.dispose();
    }
  });
});

describe("truncateStream", () => {
  it("keeps the first documents and only their questions", () => {
    const t = truncateStream(stream, 2);
    expect(t.docs.map((d) => d.id)).toEqual(["d0", "d1"]);
    expect(t.questions.map((q) => q.docId)).toEqual(["d0", "d1"]);
    expect(truncateStream(stream, 0)).toBe(stream);
  });
});
