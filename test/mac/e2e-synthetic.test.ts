/**
 * MAC end to end on the synthetic knowledge stream (the MAC issue's acceptance test): a tiny pretrained base LM is
 * frozen; MAC's networks are trained on a TRAIN stream; then, online, a held-out TEST stream of new documents about
 * entities never seen in training is amortized into a durable memory bank (one forward pass per document, no
 * gradient, nothing of the model changes) and the questions about those documents are answered from the bank.
 * Exact match is compared with the same base LM answering without any memory.
 *
 * The setup and why it is so is in synthetic-mac.ts; the base LM is the committed fixture written by
 * dev/synthetic/pretrain-base.ts (it is never retrained here). Everything is seeded.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type QaScores, scoreAll } from "../../src/data/qa-metrics.js";
import { Mac } from "../../src/api/mac.js";
import { MemoryBank } from "../../src/mac/memory/bank.js";
import { MacTrainer } from "../../src/mac/train/trainer.js";
import { nextTurn, noGrad, scope } from "../../src/tensor/index.js";
import { TRAIN_SCHEDULE, syntheticExamples, syntheticMac } from "./synthetic-mac.js";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Training: 30 train-split streams of 400 one-fact documents (12,000 rows, seeds the base LM never saw). */
const TRAIN_SEEDS = Array.from({ length: 30 }, (_, i) => 1000 + i);
/**
 * The held-out stream: 128 new documents (test split: names disjoint from every training name), one question each;
 * a memory four times the largest one seen in training (32).
 */
const TEST_SEED = 2;
const TEST_DOCS = 128;
/** Hierarchical aggregation: groups of M < N = 128 entries. */
const GROUP = 16;

const hashOf = (ts: readonly { data: ArrayLike<number> }[]): string => {
  const h = createHash("sha256");
  for (const t of ts) h.update(Float32Array.from(t.data as ArrayLike<number>));
  return h.digest("hex");
};

describe("MAC end to end on the synthetic stream", () => {
  it("answers questions about a held-out stream far better than the base LM without adaptation", async () => {
    const t0 = performance.now();
    const mac = syntheticMac({ seed: 1 });
    const baseHash = hashOf(mac.base.parameters());
    const train = syntheticExamples("train", TRAIN_SEEDS, 400, 1, 1);
    const test = syntheticExamples("test", [TEST_SEED], TEST_DOCS, 1, 1);

    // The test entities (and so every answer) never occur in training.
    const trainWords = new Set(train.documents.flatMap((d) => d.text.split(" ")));
    expect(test.documents.flatMap((d) => d.entities).filter((e) => trainWords.has(e))).toEqual([]);
    expect(test.examples.map((e) => e.answers[0]!).filter((a) => trainWords.has(a))).toEqual([]);

    // ---- offline training: the curriculum over the memory ---------------------------------------------------------
    const stageLoss: number[] = [];
    for (const [i, stage] of TRAIN_SCHEDULE.entries()) {
      mac.trainGroupSize = stage.trainGroupSize ?? 0;
      const trainer = new MacTrainer(mac, train.examples, [], {
        steps: stage.steps,
        batchSize: stage.batchSize,
        memoryPerQuestion: stage.memoryPerQuestion ?? 0,
        lr: stage.lr ?? 1e-3,
        warmupSteps: 30,
        clip: 1,
        seed: 3 + i,
      });
      const losses: number[] = [];
      for (const ev of trainer.fit()) {
        if (ev.kind === "step") losses.push(ev.loss);
        // Let Node run the freed tensors' finalizers (see src/mac/train/run.ts): otherwise memory grows ~1 MB a step.
        await nextTurn();
      }
      trainer.dispose();
      const tail = losses.slice(-50);
      stageLoss.push(tail.reduce((a, b) => a + b, 0) / tail.length);
    }
    mac.trainGroupSize = 0;
    const trainSeconds = (performance.now() - t0) / 1000;
    mac.eval();
    // The base LM was never touched.
    expect(hashOf(mac.base.parameters())).toBe(baseHash);
    const macHash = hashOf(mac.parameters());

    // ---- online adaptation: one forward pass per new document, no gradient, appended to a durable bank ------------
    const dir = mkdtempSync(join(tmpdir(), "mac-e2e-"));
    dirs.push(dir);
    const bank = MemoryBank.open(join(dir, "bank.sqlite"), { T: mac.numSlots, d: mac.base.hiddenSize });
    for (let i = 0; i < test.documents.length; i += 16) {
      const docs = test.documents.slice(i, i + 16);
      noGrad(() =>
        scope(() =>
          bank.appendBatch(
            docs.map((d) => d.id),
            mac.amortize(docs.map((d) => d.text)),
          ),
        ),
      );
    }
    expect(bank.count).toBe(TEST_DOCS);

    // ---- answering: greedy, from the whole bank, hierarchically, and without any memory ---------------------------
    const questions = test.examples.map((e) => e.question);
    const refs = test.examples.map((e) => e.answers);
    const opts = { maxNewTokens: 4 };
    const full: QaScores = scope(() => scoreAll(mac.answer(questions, bank.loadAll(), opts), refs));
    const none: QaScores = scoreAll(mac.answer(questions, null, opts), refs);
    // A fresh stream of groups per question: N = 128 entries → 8 groups of 16 → one entry each → the final level.
    const hier: QaScores = scoreAll(
      questions.map((q) => mac.answer([q], bank.groups(GROUP), { ...opts, groupSize: GROUP })[0]!),
      refs,
    );
    bank.close();
    // Adaptation and answering changed nothing of the model: the new knowledge is in the bank only.
    expect(hashOf(mac.parameters())).toBe(macHash);
    expect(hashOf(mac.base.parameters())).toBe(baseHash);
    const seconds = (performance.now() - t0) / 1000;
    const summary =
      `MAC end to end (synthetic stream, tiny GPT-2): EM on ${questions.length} questions about ${TEST_DOCS} held-out ` +
      `documents: with the memory ${full.em.toFixed(1)} %, hierarchical (M = ${GROUP}) ${hier.em.toFixed(1)} %, ` +
      `without adaptation ${none.em.toFixed(1)} %; training loss by stage ` +
      `${stageLoss.map((l) => l.toFixed(2)).join(" → ")}; trained in ${trainSeconds.toFixed(0)} s, ` +
      `${seconds.toFixed(0)} s in all`;
    console.log(summary);

    // Measured: this test (MAC seed 1, test stream seed 2) 77.3 % full, 63.3 % hierarchical, 0 % without (78.9 / 64.8
    // before hierarchical aggregation batched its first level, which changes the last-stage training steps'
    // rounding); earlier, with MAC seeds 2 and 3: 78.9 / 62.5 and 83.6 / 68.8; with test stream seed 5: 75.8 / 57.8;
    // never above 0 without.
    expect(none.em, summary).toBeLessThanOrEqual(10);
    expect(full.em, summary).toBeGreaterThanOrEqual(50);
    expect(hier.em, summary).toBeGreaterThanOrEqual(35);

    // ---- the library API on the trained MAC: provenance and forgetting -------------------------------------------
    const api = Mac.fromModel(mac, { bank: join(dir, "api-bank") });
    await api.adapt(test.documents.map((d) => ({ id: d.id, text: d.text })));
    let firstFull = 0;
    let firstHier = 0;
    for (const e of test.examples) {
      const a = await api.ask(e.question, { maxNewTokens: 4, maxSources: 3 });
      if (a.sources[0]?.id === e.docId) firstFull++;
      const h = await api.ask(e.question, { maxNewTokens: 4, maxSources: 3, hierarchical: GROUP });
      if (h.sources[0]?.id === e.docId) firstHier++;
    }
    const shareFull = (100 * firstFull) / test.examples.length;
    const shareHier = (100 * firstHier) / test.examples.length;
    // Forgetting: after forget(id), answers equal those of a bank that never held the document.
    const forgetIds = test.documents.slice(0, 8).map((d) => d.id);
    for (const id of forgetIds) expect(await api.forget(id)).toBe(true);
    const never = Mac.fromModel(mac, { bank: join(dir, "never-bank") });
    await never.adapt(test.documents.filter((d) => !forgetIds.includes(d.id)).map((d) => ({ id: d.id, text: d.text })));
    let changed = 0;
    for (const e of test.examples.slice(0, 24)) {
      const a = await api.ask(e.question, { maxNewTokens: 4 });
      const b = await never.ask(e.question, { maxNewTokens: 4 });
      expect(a.answer, e.question).toBe(b.answer);
      expect(a.sources.map((s) => s.id)).toEqual(b.sources.map((s) => s.id));
      if (forgetIds.includes(e.docId) && a.answer !== e.answers[0]) changed++;
    }
    await api.close();
    await never.close();
    const provenance =
      `provenance on the synthetic stream: the question's own document ranks first for ${shareFull.toFixed(1)} % ` +
      `of ${test.examples.length} questions (full aggregation), ${shareHier.toFixed(1)} % (hierarchical, M = ${GROUP}); ` +
      `after forgetting 8 documents, ${changed} of their questions no longer get the right answer`;
    console.log(provenance);
    // Measured (MAC seed 1, test stream seed 2): own document first for 93.0 % (full), 81.3 % (hierarchical, M = 16);
    // after forgetting, all 8 forgotten documents' questions lost their right answer.
    expect(shareFull, provenance).toBeGreaterThanOrEqual(50);
    expect(shareHier, provenance).toBeGreaterThanOrEqual(40);
    mac.dispose();
    mac.base.dispose();
  }, 480_000);
});
