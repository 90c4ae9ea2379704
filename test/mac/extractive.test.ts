/**
 * The extractive memory (amortize/window-entry.ts, aggregate/select.ts, modulation/tokens.ts, train/select.ts) on
 * the llama-tiny fixture: entries hold the window's own token embeddings, the LM reads a chosen entry exactly as
 * text, the choice is an entry of the bank under full and hierarchical aggregation alike, the scores' gradients
 * match finite differences, and the selection objective trains.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { aggregateFull, aggregateHierarchical } from "../../src/mac/aggregate/hierarchical.js";
import { SelectAggregator, rowSignature } from "../../src/mac/aggregate/select.js";
import { WindowEntryEncoder, inputEmbeddingTable } from "../../src/mac/amortize/window-entry.js";
import { f16BitsToF32, f32ToF16Bits } from "../../src/mac/memory/f16.js";
import { ablationLosses } from "../../src/mac/ablation.js";
import { parseConfig } from "../../src/mac/config.js";
import { MacModel } from "../../src/mac/model.js";
import { TokensModulation } from "../../src/mac/modulation/tokens.js";
import { aggregateWithShares, hierarchicalShares } from "../../src/mac/provenance.js";
import { WindowLossStore, selectionLoss } from "../../src/mac/train/select.js";
import { contextIds } from "../../src/mac/train/distill.js";
import { MacTrainer } from "../../src/mac/train/trainer.js";
import { amortizeDocuments, documentWindows } from "../../src/mac/windows.js";
import { Mac } from "../../src/api/mac.js";
import { answerPrompts, qaPrompt } from "../../src/eval/methods/answer.js";
import { createMacMethod } from "../../src/eval/methods/mac.js";
import type { StreamQuestion } from "../../src/eval/stream.js";
import { loadCausalLM } from "../../src/models/load.js";
import { AdamW, Tensor, concat, grad, mul, noGrad, scope, slice, sum } from "../../src/tensor/index.js";
import { Rng, randn } from "../../src/tensor/random.js";
import { CharTokenizer } from "../helpers/char-tokenizer.js";
import { LLAMA_TINY } from "./lm-mac.js";

const W = 6;

function extractiveMac(seed = 1): MacModel {
  const base = loadCausalLM(LLAMA_TINY);
  const tok = new CharTokenizer();
  const mac = new MacModel({
    base,
    baseTokenizer: tok,
    amortizer: new WindowEntryEncoder(base, tok, { role: "document", window: W, maxLength: W }),
    questionEncoder: new WindowEntryEncoder(base, tok, { role: "question", window: W, maxLength: 32 }),
    aggregator: new SelectAggregator(base.hiddenSize, { rank: 8, rng: new Rng(seed) }),
    modulation: new TokensModulation(base, tok),
  });
  mac.maxQaLength = 40;
  mac.qaTemplate = "q: {question} a:";
  return mac;
}

const DOCS = [
  "the cat sat on a red mat.",
  "bob flew to rome in june.",
  "ada wrote code at night.",
  "tom grew corn near oslo.",
  "eve sold figs for gold.",
];

describe("extractive memory", () => {
  const mac = extractiveMac();
  const C = mac.base.hiddenSize;
  const table = inputEmbeddingTable(mac.base)!.f32;
  afterAll(() => {
    mac.dispose();
    mac.base.dispose();
  });

  it("makes an entry of the window's token embeddings (front-padded) and the LM's mean state over it", () => {
    noGrad(() =>
      scope(() => {
        const tok = mac.baseTokenizer;
        const e = mac.amortize(["abc"]); // (1, W + 1, C)
        expect(e.shape).toEqual([1, W + 1, C]);
        const pad = tok.encode("\n\n", { addSpecialTokens: false });
        const ids = [...Array.from({ length: W - 3 }, (_, t) => pad[t % pad.length]!), ...tok.encode("abc")];
        for (let t = 0; t < W; t++)
          expect(Array.from(e.f32.subarray(t * C, (t + 1) * C))).toEqual(
            Array.from(table.subarray(ids[t]! * C, (ids[t]! + 1) * C)),
          );
        const h = mac.base.hidden({ ids: Tensor.from(Int32Array.from(tok.encode("abc")), [1, 3], "int32") }).f32;
        for (let c = 0; c < C; c++) expect(e.f32[W * C + c]!).toBeCloseTo((h[c]! + h[C + c]! + h[2 * C + c]!) / 3, 5);
      }),
    );
  });

  it.each([
    ["a paragraph break after it", {}, "", "\n\n"],
    ["its own text around it", { before: "c: ", after: ". " }, "c: ", ". "],
  ])(
    "lets the LM read a chosen entry exactly as the window's text before the question (%s)",
    (_, text, before, after) => {
      noGrad(() =>
        scope(() => {
          const tok = mac.baseTokenizer;
          const modulation = new TokensModulation(mac.base, tok, text);
          const window = "ada wr"; // W tokens: no padding
          const q = tok.encode("q: who? a:");
          const entry = mac.amortize([window]);
          const withMemory = mac.base.forward({
            ids: Tensor.from(Int32Array.from(q), [1, q.length], "int32"),
            modulation: modulation.forward(entry),
          }).f32;
          const ids = [...tok.encode(before), ...tok.encode(window), ...tok.encode(after), ...q];
          const inContext = mac.base.forward({
            ids: Tensor.from(Int32Array.from(ids), [1, ids.length], "int32"),
          }).f32;
          const V = mac.base.vocabSize;
          const off = (ids.length - q.length) * V;
          let worst = 0;
          for (let i = 0; i < q.length * V; i++)
            worst = Math.max(worst, Math.abs(withMemory[i]! - inContext[off + i]!));
          expect(worst).toBeLessThan(1e-4);
        }),
      );
    },
  );

  it("prefers, untrained, the entry holding the question's tokens (shared-word evidence)", () => {
    noGrad(() =>
      scope(() => {
        const entries = mac.amortize(["zzzzzz", "xy rom", "qqqqqq"]);
        const q0 = mac.encodeQuestions(["rome?"]);
        const { index } = (mac.aggregator as SelectAggregator).choose(q0, entries);
        expect(index).toEqual([1]);
      }),
    );
  });

  it("returns a bank entry, the same one under full and hierarchical aggregation, with provenance on it", () => {
    noGrad(() =>
      scope(() => {
        const agg = mac.aggregator as SelectAggregator;
        // Dense scores that matter: larger projections than the near-zero initialisation.
        const rng = new Rng(5);
        agg.q_proj.weight.data.set(randn(agg.q_proj.weight.shape, { rng }).f32);
        agg.k_proj.weight.data.set(randn(agg.k_proj.weight.shape, { rng }).f32);
        const bank = concat(
          amortizeDocuments(mac, DOCS).map((a) => a.entries),
          0,
        ); // (N, W + 1, C)
        const N = bank.dim(0);
        expect(N).toBeGreaterThan(8);
        const q0 = mac.encodeQuestions(["who flew to rome?", "what did eve sell?"]);
        const full = aggregateFull(agg, q0, bank);
        const { index } = agg.choose(q0, bank);
        for (let b = 0; b < 2; b++) {
          const got = full.f32.subarray(b * (W + 1) * C, (b + 1) * (W + 1) * C);
          const want = bank.f32.subarray(index[b]! * (W + 1) * C, (index[b]! + 1) * (W + 1) * C);
          expect(Array.from(got)).toEqual(Array.from(want));
        }
        for (const M of [2, 3, 4]) {
          const h = aggregateHierarchical(agg, q0, bank, M) as Tensor;
          expect(Array.from(h.f32)).toEqual(Array.from(full.f32));
        }
        // Per-question banks choose as the shared bank does.
        const perQ = concat(
          [slice(bank, 0, 0, N).reshapeView([1, N, W + 1, C]), bank.reshapeView([1, N, W + 1, C])],
          0,
        );
        expect(Array.from(agg.forward(q0, perQ).f32)).toEqual(Array.from(full.f32));
        // Provenance: the shares sum to 1 and the chosen entry has the largest.
        const one = slice(q0, 0, 0, 1);
        const { shares } = aggregateWithShares(agg, one, bank);
        expect(shares[0]!.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
        expect(shares[0]!.indexOf(Math.max(...shares[0]!))).toBe(index[0]);
        const groups = Array.from({ length: Math.ceil(N / 4) }, (_, g) =>
          slice(bank, 0, 4 * g, Math.min(N, 4 * g + 4)),
        );
        const hs = hierarchicalShares(agg, one, groups, 4);
        expect(hs.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
        expect(hs.indexOf(Math.max(...hs))).toBe(index[0]);
      }),
    );
  });

  it("names the window it chose (Mac.chooseWindows): a window of the chosen entry's document, the same in groups", async () => {
    const dir = mkdtempSync(join(tmpdir(), "maclm-choose-"));
    const api = Mac.fromModel(mac, { bank: dir });
    try {
      await api.adapt(DOCS.map((text, i) => ({ id: `d${i}`, text })));
      const questions = ["who flew to rome?", "what did eve sell?", "where did tom grow corn?"];
      const full = api.chooseWindows(questions);
      expect(full).toHaveLength(3);
      const windows = DOCS.map((d) => documentWindows(d, mac.baseTokenizer, W));
      const bank = concat(
        amortizeDocuments(mac, DOCS).map((a) => a.entries),
        0,
      );
      const owner = windows.flatMap((ws, d) => ws.map((_, w) => ({ d, w })));
      const agg = mac.aggregator as SelectAggregator;
      const { index, scores } = noGrad(() => {
        const q0 = mac.encodeQuestions(questions);
        const s = agg.scores(q0, bank); // (B, entries)
        return { index: agg.choose(q0, bank).index, scores: s.f32.slice() };
      });
      const N = owner.length;
      full.forEach((c, b) => {
        const { d, w } = owner[index[b]!]!;
        expect(c).toEqual({ id: `d${d}`, window: w, text: windows[d]![w], score: expect.any(Number) });
        expect(c.score).toBeCloseTo(scores[b * N + index[b]!]!, 5);
      });
      for (const M of [2, 3])
        api.chooseWindows(questions, { hierarchical: M }).forEach((c, b) => {
          expect({ ...c, score: 0 }).toEqual({ ...full[b]!, score: 0 });
          expect(c.score).toBeCloseTo(full[b]!.score, 5);
        });
      // documentScores: each document's best window score; the chosen window's document holds the highest.
      const perDoc = api.documentScores(questions);
      perDoc.forEach((m, b) => {
        expect([...m.keys()].sort()).toEqual(DOCS.map((_, i) => `d${i}`));
        DOCS.forEach((_, d) => {
          const mine = owner.map((o, n) => (o.d === d ? scores[b * N + n]! : -Infinity));
          expect(m.get(`d${d}`)).toBeCloseTo(Math.max(...mine), 5);
        });
        expect(Math.max(...m.values())).toBe(m.get(full[b]!.id));
      });
      api.documentScores(questions, { hierarchical: 2 }).forEach((m, b) => {
        for (const [id, v] of perDoc[b]!) expect(m.get(id)).toBeCloseTo(v, 5);
      });
      // ask()'s sources show that window as its document's snippet: what the LM read.
      const { sources } = await api.ask(questions[0]!, { maxNewTokens: 2, maxSources: 5 });
      expect(sources[0]!.id).toBe(full[0]!.id);
      expect(sources[0]!.snippet).toBe(full[0]!.text.replace(/\s+/g, " ").trim());
    } finally {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("answers BM25 + MAC from the memory's window where its evidence wins, else from the retrieved documents", async () => {
    const ctx = {
      base: mac.base,
      tokenizer: mac.baseTokenizer,
      qaTemplate: mac.qaTemplate,
      decoding: { maxNewTokens: 3 },
      batchSize: 2,
      seed: 0,
    };
    const docs = DOCS.map((text, i) => ({ id: `d${i}`, text, article: "a" }));
    const questions = ["who flew to rome?", "what did eve sell?", "where did tom grow corn?"].map((question, i) => ({
      id: `q${i}`,
      docId: `d${i}`,
      question,
      answers: ["x"],
    }));
    const dir = mkdtempSync(join(tmpdir(), "maclm-bm25mac-"));
    const api = Mac.fromModel(mac, { bank: dir });
    const made: { dispose(): void }[] = [];
    try {
      await api.adapt(docs);
      const windows = api.chooseWindows(questions.map((q) => q.question));
      const memory = api.documentScores(questions.map((q) => q.question));
      // A retriever whose first document for question i is firsts[i], with the lexical scores given per document.
      const retrieverOf = (firsts: string[], lexical: (q: number, id: string) => number) => ({
        adapt: () => Promise.resolve(),
        prompts: () => [],
        retrieve: (qs: readonly StreamQuestion[]) =>
          qs.map((q) => [docs.find((d) => d.id === firsts[+q.id.slice(1)])!]),
        contexts: (qs: readonly StreamQuestion[]) => qs.map((q) => [DOCS[+firsts[+q.id.slice(1)]!.slice(1)]!]),
        scoresOf: (qs: readonly StreamQuestion[], ids: readonly (readonly string[])[]) =>
          qs.map((q, i) => ids[i]!.map((id) => lexical(+q.id.slice(1), id))),
        dispose: () => {},
      });
      const answerWith = async (c: typeof ctx, retrieval: ReturnType<typeof retrieverOf>, memoryWeight?: number) => {
        const method = createMacMethod(mac, c, { retrieval, name: "bm25_mac", memoryWeight });
        made.push(method);
        await method.adapt(docs);
        return method.answer(questions);
      };
      const { before, after } = mac.contextFrame!;
      const framed = (text: string, q: string) => `${before}${text.trim()}${after}${mac.prompt(q)}`;
      const read = (i: number, useWindow: boolean, c: typeof ctx & { promptTemplate?: "plain" }, first: string) =>
        useWindow
          ? framed(windows[i]!.text, questions[i]!.question)
          : c.promptTemplate
            ? qaPrompt(c, questions[i]!.question, [DOCS[+first.slice(1)]!])
            : framed(DOCS[+first.slice(1)]!, questions[i]!.question);

      // 1. BM25's first document holds the memory's window (they agree): the LM reads the window alone.
      const agree = windows.map((w) => w.id);
      const got = await answerWith(
        ctx,
        retrieverOf(agree, () => 5),
      );
      expect(got.some((a) => a.length > 0)).toBe(true);
      expect(got).toEqual(
        await answerPrompts(
          ctx,
          questions.map((_, i) => read(i, true, ctx, agree[i]!)),
        ),
      );

      // 2. They disagree: BM25's document wins the fused score (a lexical lead larger than the memory's), so its
      //    documents are read — in the chosen template, or MAC's frame without one. With equal lexical scores the
      //    memory's lead decides for its window; with λ = 0 it never does.
      const other = windows.map((w) => (w.id === "d4" ? "d3" : "d4"));
      const lead = (q: number) => memory[q]!.get(windows[q]!.id)! - memory[q]!.get(other[q]!)!;
      expect(questions.every((_, q) => lead(q) >= 0)).toBe(true);
      const bm25Wins = retrieverOf(other, (q, id) => (id === other[q] ? 2 * lead(q) + 1 : 0));
      const plainCtx = { ...ctx, promptTemplate: "plain" as const };
      expect(await answerWith(plainCtx, bm25Wins)).toEqual(
        await answerPrompts(
          plainCtx,
          questions.map((_, i) => read(i, false, plainCtx, other[i]!)),
        ),
      );
      expect(await answerWith(ctx, bm25Wins)).toEqual(
        await answerPrompts(
          ctx,
          questions.map((_, i) => read(i, false, ctx, other[i]!)),
        ),
      );
      const tie = retrieverOf(other, () => 3);
      const strict = questions.map((_, q) => lead(q) > 0);
      expect(await answerWith(plainCtx, tie)).toEqual(
        await answerPrompts(
          plainCtx,
          questions.map((_, i) => read(i, strict[i]!, plainCtx, other[i]!)),
        ),
      );
      expect(await answerWith(plainCtx, tie, 0)).toEqual(
        await answerPrompts(
          plainCtx,
          questions.map((_, i) => read(i, false, plainCtx, other[i]!)),
        ),
      );
      expect(() => createMacMethod(mac, ctx, { retrieval: tie, name: "bm25_mac", memoryWeight: -1 })).toThrow(
        /memoryWeight must be a number >= 0/,
      );
    } finally {
      for (const m of made) m.dispose();
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("matches a stored float16 entry's tokens to the question's float32 ones", () => {
    const row = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i + 1) * 0.0371);
    const f16 = Float32Array.from(row, (x) => f16BitsToF32(f32ToF16Bits(x)));
    const other = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i + 1) * 0.0371);
    expect(rowSignature(row, 0, 32)).not.toBeNull();
    expect(rowSignature(f16, 0, 32)).toBe(rowSignature(row, 0, 32));
    expect(rowSignature(other, 0, 32)).not.toBe(rowSignature(row, 0, 32));
    expect(rowSignature(new Float32Array(32), 0, 32)).toBeNull();
  });

  it("has scores whose gradients match finite differences", () => {
    const agg = new SelectAggregator(C, { rank: 4, rng: new Rng(9) });
    const rng = new Rng(11);
    agg.q_proj.weight.data.set(randn(agg.q_proj.weight.shape, { rng, std: 0.3 }).f32);
    agg.k_proj.weight.data.set(randn(agg.k_proj.weight.shape, { rng, std: 0.3 }).f32);
    agg.word_weight.weight.data.set(randn(agg.word_weight.weight.shape, { rng, std: 0.3 }).f32);
    const { q0, bank } = noGrad(() => ({
      q0: mac.encodeQuestions(["who flew?"]),
      bank: concat(
        amortizeDocuments(mac, DOCS.slice(0, 3)).map((a) => a.entries),
        0,
      ),
    }));
    const wts = randn([1, bank.dim(0)], { rng: new Rng(3) });
    const f = (): Tensor => sum(mul(agg.scores(q0, bank), wts));
    const params = agg.trainableParameters();
    const grads = grad(
      f(),
      params.map(([, t]) => t),
    );
    for (const [k, [name, p]] of params.entries()) {
      for (const i of [0, Math.floor(p.data.length / 2), p.data.length - 1]) {
        const x = p.data[i]!;
        const h = 1e-2;
        p.data[i] = x + h;
        const up = noGrad(() => f().item());
        p.data[i] = x - h;
        const down = noGrad(() => f().item());
        p.data[i] = x;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(grads[k]!.data[i]! - fd), `${name}[${i}]`).toBeLessThan(2e-2 * Math.max(1, Math.abs(fd)));
      }
    }
  });

  it("trains the selection towards the LM's own answer losses, caching them on disk", () => {
    const dir = mkdtempSync(join(tmpdir(), "maclm-select-"));
    try {
      const store = new WindowLossStore(join(dir, "losses.sqlite"), "t");
      const examples = [
        { document: DOCS[1]!, question: "who flew to rome?", answer: "bob" },
        { document: DOCS[3]!, question: "what grew near oslo?", answer: "corn" },
        { document: DOCS[4]!, question: "what did eve sell?", answer: "figs" },
      ];
      const agg = mac.aggregator as SelectAggregator;
      const opt = new AdamW(
        agg.trainableParameters().map(([, t]) => t),
        { lr: 1e-2 },
      );
      const kls: number[] = [];
      for (let s = 0; s < 40; s++)
        scope(() => {
          const t = selectionLoss(mac, DOCS, examples, { tau: 0.1, store });
          kls.push(t.kl);
          const g = grad(
            t.loss,
            agg.trainableParameters().map(([, p]) => p),
          );
          opt.step(g);
        });
      expect(kls.every(Number.isFinite)).toBe(true);
      expect(kls.at(-1)!).toBeLessThan(0.5 * kls[0]!);
      // The LM's losses were computed once: a fresh store on the same file answers without computing.
      store.close();
      const again = new WindowLossStore(join(dir, "losses.sqlite"), "t");
      const got = again.fetch(examples[0]!, [null], () => {
        throw new Error("recomputed");
      });
      expect(got[0]!).toBeGreaterThan(0);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("trains through MacTrainer with the select objective, logging the selection's KL", () => {
    const rows = DOCS.map((d, i) => ({
      docId: `d${i}`,
      document: d,
      question: `what about ${d.split(" ")[0]}?`,
      answers: [d.split(" ")[1]!],
    }));
    const trainer = new MacTrainer(mac, rows, rows.slice(0, 2), {
      steps: 3,
      batchSize: 4,
      lr: 1e-2,
      objective: "select",
    });
    try {
      const steps = [...trainer.fit()].flatMap((e) => (e.kind === "step" ? [e] : []));
      expect(steps.map((e) => e.step)).toEqual([1, 2, 3]);
      for (const e of steps) {
        expect(Number.isFinite(e.loss)).toBe(true);
        expect(e.kl).toBeGreaterThanOrEqual(0);
      }
    } finally {
      trainer.dispose();
    }
  });

  it("runs the memory ablation over documents of several windows each", () => {
    const questions = [
      { document: DOCS[1]!, question: "who flew to rome?", answer: "bob" },
      { document: DOCS[2]!, question: "who wrote code?", answer: "ada" },
    ];
    const a = ablationLosses(mac, questions, DOCS, { k: 3 });
    for (const v of [a.none, a.own_alone, a.own_among_k, a.unrelated_k, a.in_context])
      expect(Number.isFinite(v)).toBe(true);
    expect(a.questions).toBe(2);
  });

  it("puts a whole document in context in the same frame as a window (the ablation's ceiling, the teacher)", () => {
    const tok = mac.baseTokenizer;
    const framed = new MacModel({
      base: mac.base,
      baseTokenizer: tok,
      amortizer: mac.amortizer,
      questionEncoder: mac.question_encoder,
      aggregator: mac.aggregator,
      modulation: new TokensModulation(mac.base, tok, { before: "c: ", after: ". " }),
    });
    expect(contextIds(framed, " ada wrote code. ")).toEqual([
      ...tok.encode("c: "),
      ...tok.encode("ada wrote code."),
      ...tok.encode(". "),
    ]);
  });

  it("refuses a configuration that mixes the extractive memory's parts with others", () => {
    expect(() => parseConfig({ aggregator: { kind: "select" } })).toThrow(
      /aggregator\.kind: the extractive memory needs/,
    );
    const ok = parseConfig({
      amortizer: { kind: "lm-window", window: 16 },
      aggregator: { kind: "select" },
      modulation: { kind: "tokens" },
    });
    expect(ok.amortizer.kind).toBe("lm-window");
  });
});
