import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HashLM } from "../../test/helpers/hash-lm.js";
import type { LayerLora, Modulation } from "../models/types.js";
import { Tensor, liveNativeMemory } from "../tensor/index.js";
import { Rng } from "../tensor/random.js";
import {
  BeamHypotheses,
  type GenerateOptions,
  MAC_DECODING,
  beamSearch,
  generate,
  greedySearch,
  leftPad,
  topK,
} from "./index.js";

interface Case {
  name: string;
  vocab: number;
  eos: number;
  prompts: number[][];
  options: GenerateOptions & { diversityPenalty?: number };
  sequences: number[][];
  scores: number[] | null;
}
interface HashFixture {
  transformers: string;
  tables: { vocab: number; eos: number; rows: number; table: number[] }[];
  cases: Case[];
}
const fixture = JSON.parse(readFileSync("test/fixtures/generate/hash-lm.json", "utf8")) as HashFixture;

function hashModel(vocab: number): HashLM {
  const t = fixture.tables.find((x) => x.vocab === vocab)!;
  return new HashLM(t.vocab, t.eos, t.rows, t.table);
}

/** A random table model (logits scaled so distributions are peaked and EOS happens). */
function randomModel(vocab: number, eos: number | null, seed: number, scale = 2): HashLM {
  const rng = new Rng(seed);
  const rows = 61;
  const table = Array.from({ length: rows * vocab }, () => rng.normal() * scale);
  return new HashLM(vocab, eos, rows, table);
}

const logSoftmax = (x: Float32Array): number[] => {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return Array.from(x, (v) => v - lse);
};

describe(`Hugging Face generate() on a lookup-table model (fixtures from transformers ${fixture.transformers})`, () => {
  for (const c of fixture.cases) {
    it(c.name, () => {
      const model = hashModel(c.vocab);
      const out = generate(model, c.prompts, c.options);
      expect(out.sequences).toEqual(c.sequences);
      if (c.scores === null) expect(out.scores).toBeNull();
      else out.scores!.forEach((s, i) => expect(s).toBeCloseTo(c.scores![i]!, 5));
    });
  }
});

describe("greedy search", () => {
  it("matches a step-by-step argmax over the full history, stopping at EOS", () => {
    const model = randomModel(7, 2, 1);
    for (const prompt of [[0], [1, 4, 4], [6, 5]]) {
      const expected: number[] = [];
      const hist = [...prompt];
      for (let i = 0; i < 9; i++) {
        const l = model.logitsAfter(hist);
        const t = l.indexOf(Math.max(...l));
        expected.push(t);
        hist.push(t);
        if (t === 2) break;
      }
      expect(greedySearch(model, [prompt], { maxNewTokens: 9 }).sequences).toEqual([expected]);
    }
  });

  it("runs the prompt once, then one token per step over the cache, with the left-padding mask", () => {
    const model = randomModel(9, null, 2);
    const out = generate(model, [[1, 2, 3], [4]], { maxNewTokens: 3 });
    expect(out.sequences.map((s) => s.length)).toEqual([3, 3]);
    expect(model.calls.map((c) => [c.rows, c.t, c.past])).toEqual([
      [2, 3, 0],
      [2, 1, 3],
      [2, 1, 4],
    ]);
    expect(model.calls[0]!.mask).toEqual([
      [1, 1, 1],
      [0, 0, 1],
    ]);
    expect(model.calls[2]!.mask).toEqual([
      [1, 1, 1, 1, 1],
      [0, 0, 1, 1, 1],
    ]);
  });

  it("passes no mask when nothing is padded, and never stops early without an EOS id", () => {
    const model = randomModel(5, 0, 3);
    const out = generate(model, [[1], [2]], { maxNewTokens: 12, eosTokenId: null });
    expect(out.sequences.every((s) => s.length === 12)).toBe(true);
    expect(model.calls.every((c) => c.mask === null)).toBe(true);
  });

  it("returns nothing for maxNewTokens 0", () => {
    expect(generate(randomModel(5, 0, 3), [[1]], { maxNewTokens: 0 }).sequences).toEqual([[]]);
    expect(generate(randomModel(5, 0, 3), [[1]], { maxNewTokens: 0, numBeams: 2 }).sequences).toEqual([[]]);
  });
});

/** Every complete sequence of at most n new tokens: ends with EOS, or has exactly n tokens. */
function enumerate(model: HashLM, prompt: number[], n: number, eos: number): { tokens: number[]; sum: number }[] {
  const out: { tokens: number[]; sum: number }[] = [];
  const walk = (tokens: number[], sum: number) => {
    const lp = logSoftmax(model.logitsAfter([...prompt, ...tokens]));
    for (let v = 0; v < model.vocabSize; v++) {
      const next = [...tokens, v];
      const s = sum + lp[v]!;
      if (v === eos || next.length === n) out.push({ tokens: next, sum: s });
      else walk(next, s);
    }
  };
  walk([], 0);
  return out;
}

describe("beam search against brute force", () => {
  // Canonical beam search (earlyStopping "never") with enough beams never prunes a sequence that could still win,
  // so it must return the best complete sequences of the whole tree: vocabulary 5, 3 steps (155 sequences).
  for (const lengthPenalty of [0, 1, 2]) {
    it(`finds the exhaustive optimum (vocabulary 5, 3 steps, lengthPenalty ${lengthPenalty})`, () => {
      for (const seed of [11, 12, 13]) {
        const model = randomModel(5, 4, seed);
        const prompt = [seed % 5];
        const all = enumerate(model, prompt, 3, 4)
          .map((s) => ({ ...s, score: s.sum / s.tokens.length ** lengthPenalty }))
          .sort((a, b) => b.score - a.score);
        const out = beamSearch(model, [prompt], {
          maxNewTokens: 3,
          numBeams: 25,
          earlyStopping: "never",
          lengthPenalty,
          numReturnSequences: 5,
        });
        expect(out.sequences).toEqual(all.slice(0, 5).map((s) => s.tokens));
        out.scores!.forEach((s, i) => expect(s).toBeCloseTo(all[i]!.score, 10));
      }
    });
  }

  it("with early stopping, returns a finished hypothesis as soon as numBeams of them exist", () => {
    // Two beams, EOS always likely: both hypotheses finish at step 1 or 2, and search stops before maxNewTokens.
    const V = 6;
    const table = Array.from({ length: 61 * V }, (_, i) => (i % V === 0 ? 3 : ((i * 7919) % 13) / 13));
    const model = new HashLM(V, 0, 61, table);
    const out = beamSearch(model, [[1]], { maxNewTokens: 10, numBeams: 2 });
    expect(out.sequences[0]).toEqual([0]);
    expect(model.calls.length).toBeLessThanOrEqual(2);
  });
});

describe("beam search mechanics", () => {
  it("runs the prompt once per batch item, then numBeams rows over the reordered cache", () => {
    const model = randomModel(13, null, 5);
    beamSearch(
      model,
      [
        [1, 2],
        [3, 4],
      ],
      { maxNewTokens: 4, numBeams: 3 },
    );
    expect(model.calls.map((c) => [c.rows, c.t, c.past])).toEqual([
      [2, 2, 0],
      [6, 1, 2],
      [6, 1, 3],
      [6, 1, 4],
    ]);
  });

  it("prefix modulation behaves like the same tokens prepended to the prompt", () => {
    for (const opts of [{}, { numBeams: 4 }, MAC_DECODING] as GenerateOptions[]) {
      const a = randomModel(40, 3, 8);
      const prefix: Modulation = {
        prefix: [{ k: Tensor.from([7, 9], [1, 2, 1, 1]), v: Tensor.from([7, 9], [1, 2, 1, 1]) }],
      };
      const withPrefix = generate(a, [[5, 6]], { ...opts, maxNewTokens: 6, modulation: prefix });
      const concatenated = generate(randomModel(40, 3, 8), [[7, 9, 5, 6]], { ...opts, maxNewTokens: 6 });
      expect(withPrefix.sequences).toEqual(concatenated.sequences);
      expect(a.calls[0]!.past).toBe(2);
    }
  });

  it("expands per-batch LoRA deltas with the beams and keeps shared ones shared", () => {
    const model = randomModel(11, null, 9);
    const tagged = (rows: number[]): LayerLora => ({
      q: {
        a: Tensor.from(
          rows.flatMap((r) => [r, r]),
          [rows.length, 1, 2],
        ),
        b: Tensor.from(
          rows.flatMap((r) => [r, r]),
          [rows.length, 2, 1],
        ),
        scaling: 1,
      },
    });
    beamSearch(model, [[1], [2]], { maxNewTokens: 2, numBeams: 3, modulation: { lora: [tagged([10, 20])] } });
    expect(model.calls[0]!.loraTags).toEqual([10, 20]);
    expect(model.calls[1]!.loraTags).toEqual([10, 10, 10, 20, 20, 20]);
    const shared = randomModel(11, null, 9);
    beamSearch(shared, [[1], [2]], { maxNewTokens: 2, numBeams: 3, modulation: { lora: [tagged([5])] } });
    expect(shared.calls.map((c) => c.loraRows)).toEqual([[1], [1]]);
  });

  it("frees every tensor it made (cache included)", () => {
    const model = randomModel(17, 1, 10);
    generate(model, [[1, 2]], MAC_DECODING); // warm-up
    const before = liveNativeMemory();
    generate(model, [[1, 2], [3]], MAC_DECODING);
    generate(model, [[4]], { maxNewTokens: 5 });
    expect(liveNativeMemory()).toEqual(before);
  });

  it("diverse beam search: a huge penalty makes every group start with a different token", () => {
    // Group g's first token is penalised by the tokens groups 0..g-1 chose at step 0; with 4 groups of 1 beam and
    // no EOS, the 4 returned sequences are the groups' own beams and start with 4 distinct tokens.
    const model = randomModel(12, null, 21);
    const out = beamSearch(model, [[3]], {
      maxNewTokens: 3,
      numBeams: 4,
      numBeamGroups: 4,
      diversityPenalty: 1e6,
      numReturnSequences: 4,
    });
    expect(new Set(out.sequences.map((s) => s[0])).size).toBe(4);
    const plain = beamSearch(randomModel(12, null, 21), [[3]], { maxNewTokens: 3, numBeams: 4, numReturnSequences: 4 });
    expect(plain.sequences[0]).toEqual(greedyish(model, [3], 3));
  });
});

/** The most likely sequence of n tokens (exhaustive), for a small vocabulary. */
function greedyish(model: HashLM, prompt: number[], n: number): number[] {
  let best: number[] = [];
  let bestSum = -Infinity;
  const walk = (tokens: number[], sum: number) => {
    if (tokens.length === n) {
      if (sum > bestSum) [best, bestSum] = [tokens, sum];
      return;
    }
    const lp = logSoftmax(model.logitsAfter([...prompt, ...tokens]));
    lp.forEach((l, v) => walk([...tokens, v], sum + l));
  };
  walk([], 0);
  return best;
}

describe("options", () => {
  const model = randomModel(8, 1, 4);
  it.each([
    [
      { numBeams: 4, numBeamGroups: 3, diversityPenalty: 1 },
      "numBeamGroups must divide numBeams: 3 groups for 4 beams",
    ],
    [{ numBeams: 4, numBeamGroups: 2 }, "diverse beam search needs diversityPenalty > 0"],
    [{ numBeams: 2, numReturnSequences: 3 }, "numReturnSequences must be between 1 and numBeams (2), got 3"],
    [{ maxNewTokens: -1 }, "maxNewTokens must be a non-negative integer, got -1"],
    [{ numBeams: 0 }, "numBeams must be a positive integer, got 0"],
  ] as [GenerateOptions, string][])("rejects %o", (opts, msg) => {
    expect(() => generate(model, [[1]], opts)).toThrow(msg);
  });
  it("rejects empty prompts and out-of-vocabulary ids", () => {
    expect(() => generate(model, [[]])).toThrow("generate: prompt 0 is empty");
    expect(() => generate(model, [[1], [8]])).toThrow("generate: prompt 1 has token id 8 outside [0, 8)");
    expect(() => generate(model, [])).toThrow("generate: no prompts");
  });
  it("MAC's decoding is diverse beam search 12/4, penalty 10, early stopping, 16 new tokens", () => {
    expect(MAC_DECODING).toEqual({
      maxNewTokens: 16,
      numBeams: 12,
      numBeamGroups: 4,
      diversityPenalty: 10,
      earlyStopping: true,
      lengthPenalty: 1,
    });
  });
});

describe("helpers", () => {
  it("topK returns the k best, best first, lower index first on ties", () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const n = 1 + Math.floor(rng.uniform() * 200);
      const xs = Array.from({ length: n }, () => Math.round(rng.normal() * 4) / 2);
      const k = 1 + Math.floor(rng.uniform() * Math.min(n, 30));
      const ref = xs
        .map((x, i) => [x, i] as const)
        .sort((a, b) => b[0] - a[0] || a[1] - b[1])
        .slice(0, k);
      const got = topK(n, k, (i) => xs[i]!);
      expect(Array.from(got.indices)).toEqual(ref.map((r) => r[1]));
      expect(Array.from(got.values)).toEqual(ref.map((r) => r[0]));
    }
  });

  it("BeamHypotheses keeps the best numBeams and tracks the worst score like HF", () => {
    const h = new BeamHypotheses(2, 1, true, 10);
    h.add([1], -2, 2); // -1
    h.add([2], -1, 1); // -1
    expect(h.worstScore).toBe(-1);
    h.add([3], -0.5, 1); // -0.5 evicts the first -1 (lowest index among ties)
    expect(h.beams.map((b) => b.tokens)).toEqual([[2], [3]]);
    expect(h.worstScore).toBe(-1);
    h.add([4], -3, 1); // worse than the worst: ignored
    expect(h.beams).toHaveLength(2);
    expect(h.isDone(0, 3)).toBe(true);
    const heuristic = new BeamHypotheses(2, 1, false, 10);
    heuristic.add([1], -2, 2);
    heuristic.add([2], -2, 2);
    // worst finished score -1; best running sum -1.5 over 2 tokens = -0.75 could still beat it, -2.5 / 2 cannot.
    expect(heuristic.isDone(-1.5, 2)).toBe(false);
    expect(heuristic.isDone(-2.5, 2)).toBe(true);
  });

  it("leftPad pads on the left and masks the padding", () => {
    expect(leftPad([[1, 2], [3]], 9)).toEqual({
      ids: Int32Array.from([1, 2, 9, 3]),
      mask: Float32Array.from([1, 1, 0, 1]),
      length: 2,
      padded: true,
    });
  });
});
