/**
 * The library API (src/api/mac.ts) on the tiny MAC: adapt → documents → ask/stream with sources → forget, against
 * the model's own answer() over a bank (the glue the API replaces), and forgetting against a bank that never held
 * the document.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Mac, MacLmError } from "../../src/index.js";
import { aggregateWithShares, hierarchicalShares } from "../../src/mac/provenance.js";
import type { Aggregator } from "../../src/mac/aggregate/aggregator.js";
import { Tensor, noGrad, scope } from "../../src/tensor/index.js";
import { Rng } from "../../src/tensor/random.js";
import { TINY_EXAMPLES, tinyMac } from "../mac/tiny-mac.js";

const dir = mkdtempSync(join(tmpdir(), "mac-api-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DOCS = TINY_EXAMPLES.map((e) => ({ id: e.docId, text: e.document, title: `about ${e.docId}` }));
const QUESTIONS = TINY_EXAMPLES.map((e) => e.question);
const OPTS = { maxNewTokens: 6 };

async function expectMacError(p: Promise<unknown> | (() => unknown), code: string, part: string): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MacLmError);
  expect((err as MacLmError).code, (err as Error).message).toBe(code);
  expect((err as Error).message).toContain(part);
}

describe("Mac (library API)", () => {
  const model = tinyMac({ seed: 3 });
  // Sharper attention than the random initialisation's near-uniform one, so that documents weigh differently.
  for (const b of (model.aggregator as Aggregator).cross_attention_list)
    b.attn.to_q.weight.data.forEach((v, i, a) => (a[i] = v * 40));
  afterAll(() => {
    model.dispose();
    model.base.dispose();
  });

  it("adapts durably, lists documents, answers as the model does over the same bank, with sources", async () => {
    const bankDir = join(dir, "bank-a");
    const mac = Mac.fromModel(model, { bank: bankDir });
    const r = await mac.adapt(DOCS, { batchSize: 4 });
    expect(r.added).toEqual(DOCS.map((d) => d.id));
    expect(r.replaced).toEqual([]);
    expect(mac.documents().map((d) => [d.id, d.title, d.chars, d.entries])).toEqual(
      DOCS.map((d) => [d.id, d.title, d.text.length, 1]),
    );
    expect(mac.stats()).toEqual({ documents: 6, entries: 6 });

    for (const q of QUESTIONS.slice(0, 3)) {
      const res = await mac.ask(q, OPTS);
      // The same answer as MacModel.answer over the whole bank, and hierarchically over its groups.
      const want = scope(() => model.answer([q], mac.bank.loadAll(), OPTS)[0]!);
      expect(res.answer).toBe(want);
      const hier = await mac.ask(q, { ...OPTS, hierarchical: 2 });
      expect(hier.answer).toBe(model.answer([q], mac.bank.groups(2), { ...OPTS, groupSize: 2 })[0]!);
      // Sources: documents by attention share, strongest first, with snippets from the stored text.
      expect(res.sources.length).toBe(5);
      expect(res.sources[0]!.weight).toBeGreaterThan(res.sources[4]!.weight);
      const w = res.sources.map((s) => s.weight);
      expect([...w].sort((a, b) => b - a)).toEqual(w);
      for (const s of res.sources) {
        const doc = DOCS.find((d) => d.id === s.id)!;
        expect(s.title).toBe(doc.title);
        expect(doc.text).toContain(s.snippet.replace(/…$/, ""));
      }
      const all = await mac.ask(q, { ...OPTS, maxSources: 100 });
      expect(all.sources.length).toBe(6);
      expect(all.sources.reduce((a, s) => a + s.weight, 0)).toBeCloseTo(1, 5);
      const allHier = await mac.ask(q, { ...OPTS, hierarchical: 2, maxSources: 100 });
      expect(allHier.sources.reduce((a, s) => a + s.weight, 0)).toBeCloseTo(1, 5);
      expect(res.timings.totalMs).toBeGreaterThan(0);
      expect(res.memory).toEqual({ documents: 6, entries: 6 });
      // Without memory: the base LM alone.
      const none = await mac.ask(q, { ...OPTS, memory: false });
      expect(none.answer).toBe(model.answer([q], null, OPTS)[0]!);
      expect(none.sources).toEqual([]);
      expect(none.memory).toEqual({ documents: 0, entries: 0 });
      // Streaming gives the same text, a piece per token.
      const s = mac.stream(q, OPTS);
      const pieces: string[] = [];
      for await (const p of s) pieces.push(p);
      expect(pieces.join("").trim()).toBe(res.answer);
      expect((await s.result).answer).toBe(res.answer);
    }
    await mac.close();
    await mac.close(); // idempotent
    await expectMacError(mac.ask("q?"), "MACLM_DISPOSED", "closed");

    // Durable: a new Mac on the same folder sees the documents (readonly here).
    const again = Mac.fromModel(model, { bank: bankDir, readonly: true });
    expect(again.documents().length).toBe(6);
    await expectMacError(again.adapt(DOCS.slice(0, 1)), "MACLM_BAD_ARGUMENT", "readonly");
    await again.close();
  });

  it("forget(id): answers equal token for token those of a bank that never held it; re-adapting replaces", async () => {
    const forgotten = Mac.fromModel(model, { bank: join(dir, "bank-forget") });
    const never = Mac.fromModel(model, { bank: join(dir, "bank-never") });
    await forgotten.adapt(DOCS);
    await never.adapt(DOCS.filter((d) => d.id !== "d2"));
    expect(await forgotten.forget("d2")).toBe(true);
    expect(await forgotten.forget("d2")).toBe(false);
    expect(forgotten.documents().map((d) => d.id)).toEqual(never.documents().map((d) => d.id));
    for (const q of QUESTIONS)
      for (const hierarchical of [false, 2]) {
        const a = await forgotten.ask(q, { ...OPTS, hierarchical, maxSources: 100 });
        const b = await never.ask(q, { ...OPTS, hierarchical, maxSources: 100 });
        expect(a.answer, `${q} (hierarchical ${hierarchical})`).toBe(b.answer);
        expect(a.sources.map((s) => s.id)).toEqual(b.sources.map((s) => s.id));
        expect(a.sources.some((s) => s.id === "d2")).toBe(false);
      }
    // The modulation (prefix keys/values) the LM is conditioned on is bitwise that of the never-held bank, and not
    // that of a bank that still holds the document.
    const held = Mac.fromModel(model, { bank: join(dir, "bank-held") });
    await held.adapt(DOCS);
    const flat = (m: Mac, q: string, hierarchical?: number): number[] =>
      scope(() => {
        const mod = m.modulation([q], { hierarchical })!;
        return mod.prefix!.flatMap(({ k, v }) => [...Array.from(k.f32), ...Array.from(v.f32)]);
      });
    for (const q of QUESTIONS)
      for (const h of [undefined, 2]) {
        expect(flat(forgotten, q, h)).toEqual(flat(never, q, h));
        expect(flat(held, q, h)).not.toEqual(flat(never, q, h));
      }
    await held.close();
    // The generated token ids themselves are equal (not only the decoded text).
    const tok = model.baseTokenizer;
    const ids = async (m: Mac): Promise<number[][]> => {
      const out: number[][] = [];
      for (const q of QUESTIONS) out.push(tok.encode((await m.ask(q, OPTS)).answer, { addSpecialTokens: false }));
      return out;
    };
    expect(await ids(forgotten)).toEqual(await ids(never));

    // Re-adapting an id replaces its entry: same count, new text, answers as a bank built with the new text.
    const r = await forgotten.adapt([{ id: "d0", text: "zorva lives in oslar." }]);
    expect(r.replaced).toEqual(["d0"]);
    expect(forgotten.stats().documents).toBe(5);
    expect(forgotten.documentText("d0")).toBe("zorva lives in oslar.");
    const skip = await forgotten.adapt([{ id: "d0", text: "ignored" }], { onExisting: "skip" });
    expect(skip.skipped).toEqual(["d0"]);
    expect(forgotten.documentText("d0")).toBe("zorva lives in oslar.");
    await forgotten.close();
    await never.close();
  });

  it("rejects bad input with clear errors and honours an abort signal", async () => {
    const mac = Mac.fromModel(model); // a temporary bank, deleted by close()
    const bankDir = mac.bankDir;
    await expectMacError(mac.adapt([{ id: "", text: "x" }]), "MACLM_BAD_ARGUMENT", "id must be a non-empty string");
    await expectMacError(mac.adapt([{ id: "a", text: "  " }]), "MACLM_BAD_ARGUMENT", '("a"): text');
    await expectMacError(
      mac.adapt([
        { id: "a", text: "x" },
        { id: "a", text: "y" },
      ]),
      "MACLM_DUPLICATE_ID",
      '"a" appears twice',
    );
    await expectMacError(mac.ask(""), "MACLM_BAD_ARGUMENT", "non-empty");
    await expectMacError(mac.ask("q?", { hierarchical: 1 }), "MACLM_BAD_ARGUMENT", "group size");
    await expectMacError(mac.ask("q?", { decoding: "beam" as "mac" }), "MACLM_BAD_ARGUMENT", "decoding");
    // An empty bank answers without memory.
    expect((await mac.ask("where does zorva live?", OPTS)).memory.entries).toBe(0);
    await mac.adapt(DOCS.slice(0, 2));
    const ctl = new AbortController();
    const s = mac.stream("where does zorva live?", { ...OPTS, maxNewTokens: 8 });
    const it = s[Symbol.asyncIterator]();
    await it.next();
    ctl.abort();
    const aborted = mac.ask("where does zorva live?", { ...OPTS, signal: ctl.signal });
    await expectMacError(aborted, "MACLM_ABORTED", "aborted");
    await it.return?.();
    await expectMacError(s.result, "MACLM_ABORTED", "closed before the answer ended");
    await mac.close();
    const { existsSync } = await import("node:fs");
    expect(existsSync(bankDir)).toBe(false);
  });
});

describe("provenance", () => {
  it("recording attention leaves the aggregation unchanged; shares sum to 1 at every level", () => {
    const model = tinyMac({ seed: 5 });
    const agg = model.aggregator;
    const rng = new Rng(9);
    const d = agg.dim;
    noGrad(() =>
      scope(() => {
        const q0 = Tensor.from(
          Float32Array.from({ length: 3 * d }, () => rng.normal()),
          [1, 3, d],
        );
        const mem = Tensor.from(
          Float32Array.from({ length: 7 * 3 * d }, () => rng.normal()),
          [7, 3, d],
        );
        const plain = agg.forward(q0, mem);
        const { z, shares } = aggregateWithShares(agg, q0, mem);
        expect(Array.from(z.f32)).toEqual(Array.from(plain.f32));
        expect(shares[0]!.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
        // Several questions against one shared memory: the same shares per question as one at a time.
        const q2 = Tensor.from(
          Float32Array.from({ length: 2 * 3 * d }, () => rng.normal()),
          [2, 3, d],
        );
        const both = aggregateWithShares(agg, q2, mem).shares;
        for (let b = 0; b < 2; b++) {
          const one = aggregateWithShares(agg, slice1(q2, b), mem).shares[0]!;
          for (let e = 0; e < 7; e++) expect(both[b]![e]).toBeCloseTo(one[e]!, 6);
        }
        // Hierarchical: 7 entries in groups of 2 → 4 → 2 → 1; shares sum to 1; N ≤ M is full aggregation.
        const chunks = (M: number): Tensor[] =>
          Array.from({ length: Math.ceil(7 / M) }, (_, g) => sliceRows(mem, g * M, Math.min(7, (g + 1) * M)));
        const h = hierarchicalShares(agg, q0, chunks(2), 2);
        expect(h.length).toBe(7);
        expect(h.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
        const h8 = hierarchicalShares(agg, q0, chunks(8), 8);
        for (let e = 0; e < 7; e++) expect(h8[e]).toBeCloseTo(shares[0]![e]!, 6);
      }),
    );
    model.dispose();
    model.base.dispose();
  });
});

function slice1(x: Tensor, b: number): Tensor {
  return sliceRows(x, b, b + 1);
}

function sliceRows(x: Tensor, start: number, end: number): Tensor {
  const row = x.shape.slice(1).reduce((a, b) => a * b, 1);
  return Tensor.from(x.f32.slice(start * row, end * row), [end - start, ...x.shape.slice(1)]);
}
