/**
 * KV cache and prefix plumbing, for both decoder families (the tiny fixture models): incremental decoding token by
 * token (and chunk by chunk) gives the logits of one full forward, with and without a prefix and with padding;
 * reorderCache (beam search) equals decoding the reordered batch; a batch-1 prefix equals the repeated prefix; a
 * length-0 prefix equals none; the cache's tensors survive the caller's scopes and are freed by dispose().
 */
import { afterAll, describe, expect, test } from "vitest";
import { expectClose } from "../../test/helpers/numeric.js";
import {
  Tensor,
  concat,
  grad,
  indexSelect,
  liveNativeMemory,
  mul,
  noGrad,
  scope,
  slice,
  sum,
  untrack,
} from "../tensor/index.js";
import { randint, randn } from "../tensor/random.js";
import { DecoderKVCache, maskPositions } from "./kv-cache.js";
import { loadCausalLM } from "./load.js";
import type { CausalLM, LayerKV, Modulation } from "./types.js";

const TOL = { rtol: 1e-5, atol: 1e-5 };

function randomPrefix(m: CausalLM, B: number, P: number, seed: number): LayerKV[] {
  return Array.from({ length: m.numLayers }, (_, l) => ({
    k: untrack(randn([B, P, m.numKvHeads, m.headDim], { seed: seed + 2 * l })),
    v: untrack(randn([B, P, m.numKvHeads, m.headDim], { seed: seed + 2 * l + 1 })),
  }));
}

/** Column t of x (B, T, ...) as (B, 1, ...). */
const at = (x: Tensor, t: number, n = 1): Tensor => slice(x, 1, t, t + n);

describe("maskPositions", () => {
  test("an attended column counts the attended ones before it; a masked one keeps its index", () => {
    scope(() => {
      // (3, 6), last 4 columns: no padding; 2 prefix columns then 2 left pads; a masked prefix column and a right pad.
      const mask = Tensor.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0], [3, 6]);
      const pos = maskPositions(mask, 4)!;
      expect(pos.dtype).toBe("int32");
      expect(pos.shape).toEqual([3, 4]);
      expect(Array.from(pos.data)).toEqual([2, 3, 4, 5, 2, 3, 2, 3, 1, 2, 3, 5]);
    });
  });

  test("null when every position is its index (all ones, or right padding only)", () => {
    scope(() => {
      expect(maskPositions(Tensor.full([2, 5], 1), 5)).toBeNull();
      expect(maskPositions(Tensor.from([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], [2, 5]), 3)).toBeNull();
    });
  });
});

describe.each([["gpt2-tiny"], ["llama-tiny"]])("%s", (name) => {
  const model = loadCausalLM(`test/fixtures/models/${name}`);
  const B = 2;
  const T = 6;
  const P = 2;
  const ids = untrack(randint([B, T], model.vocabSize, { seed: 7 }));
  const prefix = randomPrefix(model, B, P, 100);
  afterAll(() => {
    model.dispose();
    ids.dispose();
    for (const { k, v } of prefix) [k, v].forEach((t) => t.dispose());
  });

  test.each([
    ["without a prefix", undefined],
    ["with a prefix (P = 2)", { prefix }],
  ] as [string, Modulation | undefined][])("token-by-token decoding equals one full forward, %s", (_, modulation) => {
    scope(() => {
      const full = model.forward({ ids, modulation }); // (B, T, V)
      const cache = model.newCache(B, modulation);
      const p = modulation ? P : 0;
      expect(cache.length).toBe(p);
      for (let t = 0; t < T; t++) {
        const step = scope(() => model.forward({ ids: at(ids, t), cache })); // (B, 1, V)
        expect(cache.length).toBe(p + t + 1);
        expectClose(step.data, at(full, t).data, TOL, `${name} step ${t}`);
      }
      (cache as DecoderKVCache).dispose();
    });
  });

  test("a prefill of several tokens then single steps, with left padding in the mask", () => {
    scope(() => {
      const mask = Tensor.full([B, P + T], 1);
      mask.data[P + T] = 0; // row 1: the first two tokens are padding
      mask.data[P + T + P] = 0;
      mask.data[P + T + P + 1] = 0;
      mask.data[P + T + 1] = 0; // and one prefix position of row 1
      const full = model.forward({ ids, attentionMask: mask, modulation: { prefix } });
      const cache = model.newCache(B, { prefix });
      const chunk = model.forward({ ids: at(ids, 0, 4), attentionMask: slice(mask, 1, 0, P + 4), cache });
      expectClose(chunk.data, at(full, 0, 4).data, TOL, "prefill");
      for (let t = 4; t < T; t++) {
        const step = model.forward({ ids: at(ids, t), attentionMask: slice(mask, 1, 0, P + t + 1), cache });
        expectClose(step.data, at(full, t).data, TOL, `step ${t}`);
      }
      (cache as DecoderKVCache).dispose();
    });
  });

  test("a left-padded row gets the logits of its unpadded tokens (positions from the mask), with a prefix", () => {
    scope(() => {
      const pad = 3; // row 1: its last T − pad tokens, left-padded
      const mask = Tensor.full([B, P + T], 1);
      for (let t = 0; t < pad; t++) mask.data[P + T + P + t] = 0;
      const onePrefix = (b: number) =>
        prefix.map(({ k, v }) => ({ k: slice(k, 0, b, b + 1), v: slice(v, 0, b, b + 1) }));
      const full = model.forward({ ids, attentionMask: mask, modulation: { prefix } }); // (B, T, V)
      const alone = model.forward({ ids: slice(at(ids, pad, T - pad), 0, 1, 2), modulation: { prefix: onePrefix(1) } });
      expectClose(slice(at(full, pad, T - pad), 0, 1, 2).data, alone.data, TOL, "padded row");
      const row0 = model.forward({ ids: slice(ids, 0, 0, 1), modulation: { prefix: onePrefix(0) } });
      expectClose(slice(full, 0, 0, 1).data, row0.data, TOL, "unpadded row");
      // Cached steps continue at the unpadded positions too.
      const cache = model.newCache(B, { prefix });
      model.forward({ ids: at(ids, 0, 4), attentionMask: slice(mask, 1, 0, P + 4), cache });
      for (let t = 4; t < T; t++) {
        const step = model.forward({ ids: at(ids, t), attentionMask: slice(mask, 1, 0, P + t + 1), cache });
        expectClose(step.data, at(full, t).data, TOL, `cached step ${t}`);
      }
      (cache as DecoderKVCache).dispose();
    });
  });

  test("without autograd each layer's intermediates are freed when it returns; same logits, cache intact", () => {
    const live = () => liveNativeMemory().blocks;
    const run = (withCache: boolean): { logits: number[]; blocks: number } =>
      scope(() => {
        const before = live();
        const cache = withCache ? model.newCache(B, { prefix }) : undefined;
        const logits = model.forward({ ids, modulation: withCache ? undefined : { prefix }, cache });
        const blocks = live() - before;
        const out = { logits: Array.from(logits.data), blocks };
        if (cache) {
          const step = model.forward({ ids: at(ids, 0), cache }); // the cached keys/values are still usable
          expect(step.data.every(Number.isFinite)).toBe(true);
          (cache as DecoderKVCache).dispose();
        }
        return out;
      });
    for (const withCache of [false, true]) {
      const graph = run(withCache); // autograd on (nothing requires grad): every intermediate lives to the end
      const freed = noGrad(() => run(withCache));
      expect(freed.logits).toEqual(graph.logits);
      expect(freed.blocks).toBeLessThan(graph.blocks / 2);
    }
  });

  test("reorderCache (beam search) equals decoding the reordered batch", () => {
    scope(() => {
      const order = Tensor.from([1, 1, 0], [3], "int32");
      const reIds = indexSelect(ids, order);
      const rePrefix = prefix.map(({ k, v }) => ({ k: indexSelect(k, order), v: indexSelect(v, order) }));
      const full = model.forward({ ids: reIds, modulation: { prefix: rePrefix } }); // (3, T, V)
      const cache = model.newCache(B, { prefix });
      model.forward({ ids: at(ids, 0, 3), cache });
      model.reorderCache(cache, order);
      expect(cache.layers[0]!.k.shape).toEqual([3, P + 3, model.numKvHeads, model.headDim]);
      for (let t = 3; t < T; t++) {
        const step = model.forward({ ids: at(reIds, t), cache });
        expectClose(step.data, at(full, t).data, TOL, `step ${t}`);
      }
      (cache as DecoderKVCache).dispose();
    });
  });

  test("a batch-1 prefix is shared by the batch; a length-0 prefix changes nothing", () => {
    scope(() => {
      const one = randomPrefix(model, 1, P, 300);
      const repeated = one.map(({ k, v }) => ({ k: concat([k, k], 0), v: concat([v, v], 0) }));
      const a = model.forward({ ids, modulation: { prefix: one } });
      const b = model.forward({ ids, modulation: { prefix: repeated } });
      expectClose(a.data, b.data, { rtol: 0, atol: 0 }, "shared prefix");
      const cache = model.newCache(B, { prefix: one });
      const c = model.forward({ ids, cache });
      expectClose(c.data, b.data, TOL, "shared prefix through the cache");
      (cache as DecoderKVCache).dispose();
      const empty = randomPrefix(model, B, 0, 400);
      expectClose(
        model.forward({ ids, modulation: { prefix: empty } }).data,
        model.forward({ ids }).data,
        { rtol: 0, atol: 0 },
        "P = 0",
      );
      for (const kv of [...one, ...empty]) [kv.k, kv.v].forEach((t) => t.dispose());
    });
  });

  test("gradients of a batch-1 prefix are the sums of the per-example ones", () => {
    model.freeze();
    scope(() => {
      const one = randomPrefix(model, 1, P, 600).map(({ k, v }) => ({ k: k.requireGrad(), v: v.requireGrad() }));
      const leaf = (t: Tensor): Tensor => noGrad(() => concat([t, t], 0)).requireGrad(); // (B, P, NKV, HS)
      const repeated = one.map(({ k, v }) => ({ k: leaf(k), v: leaf(v) }));
      const R = randn([B, T, model.vocabSize], { seed: 11 });
      const lossOf = (prefix: LayerKV[]): Tensor => sum(mul(model.forward({ ids, modulation: { prefix } }), R));
      const g1 = grad(
        lossOf(one),
        one.flatMap(({ k, v }) => [k, v]),
      );
      const gB = grad(
        lossOf(repeated),
        repeated.flatMap(({ k, v }) => [k, v]),
      );
      g1.forEach((g, i) => {
        const per = gB[i]!.data;
        const half = per.length / 2;
        const summed = Array.from({ length: half }, (_, j) => per[j]! + per[j + half]!);
        expectClose(g.data, summed, { rtol: 1e-5, atol: 1e-6 }, `shared prefix grad ${i}`);
      });
      for (const kv of one) [kv.k, kv.v].forEach((t) => t.dispose());
    });
    model.unfreeze();
  });

  test("cache tensors outlive the caller's scopes; dispose() frees them and the prefix stays the caller's", () => {
    model.freeze(); // as MAC's base LM: nothing in the cache is on an autograd graph, so replaced tensors are freed at once
    const before = liveNativeMemory();
    const cache = scope(() => model.newCache(B, { prefix })) as DecoderKVCache;
    for (let t = 0; t < 3; t++) scope(() => void model.forward({ ids: at(ids, t), cache }));
    expect(cache.length).toBe(P + 3);
    expect(cache.layers.every(({ k, v }) => !k.disposed && !v.disposed)).toBe(true);
    cache.dispose();
    expect(liveNativeMemory()).toEqual(before);
    expect(prefix[0]!.k.disposed).toBe(false);
    model.unfreeze();
  });

  test("gradients reach the prefix through cached decoding as through one full forward", () => {
    model.freeze();
    scope(() => {
      const trainable = prefix.map(({ k, v }) => ({ k: k.clone().requireGrad(), v: v.clone().requireGrad() }));
      const params = trainable.flatMap(({ k, v }) => [k, v]);
      const R = randn([B, T, model.vocabSize], { seed: 9 });
      const lossOf = (logits: Tensor): Tensor => sum(mul(logits, R));
      const gFull = grad(lossOf(model.forward({ ids, modulation: { prefix: trainable } })), params);
      const cache = model.newCache(B, { prefix: trainable });
      const steps = [
        model.forward({ ids: at(ids, 0, 4), cache }),
        model.forward({ ids: at(ids, 4), cache }),
        model.forward({ ids: at(ids, 5), cache }),
      ];
      const gCached = grad(lossOf(concat(steps, 1)), params);
      gFull.forEach((g, i) => expectClose(gCached[i]!.data, g.data, { rtol: 1e-4, atol: 1e-5 }, `prefix grad ${i}`));
      (cache as DecoderKVCache).dispose();
    });
    model.unfreeze();
  });

  test("shape errors name the problem", () => {
    scope(() => {
      expect(() => model.forward({ ids, attentionMask: Tensor.full([B, T + 1], 1) })).toThrow(
        /attentionMask \[2, 7\] must be \(B, past \+ T\) = \(2, 0 \+ 6\)/,
      );
      expect(() => model.forward({ ids, modulation: { prefix: prefix.slice(1) } })).toThrow(
        /modulation.prefix has 1 layers, the model has 2/,
      );
      const bad = randomPrefix(model, B, P, 500).map((kv, l) =>
        l === 1 ? { k: slice(kv.k, 1, 0, 1), v: slice(kv.v, 1, 0, 1) } : kv,
      );
      expect(() => model.forward({ ids, modulation: { prefix: bad } })).toThrow(
        /prefix\[1\] has 1 positions, layer 0 has 2/,
      );
      const wrongHeads = [
        {
          k: Tensor.zeros([B, P, model.numKvHeads + 1, model.headDim]),
          v: Tensor.zeros([B, P, model.numKvHeads + 1, model.headDim]),
        },
      ];
      expect(() => model.forward({ ids, modulation: { prefix: [wrongHeads[0]!, wrongHeads[0]!] } })).toThrow(
        /prefix\[0\] k .* must be \(2\|1, P,/,
      );
      const cache = model.newCache(3);
      expect(() => model.forward({ ids, cache })).toThrow(/cache of 2 layers and batch 3/);
      expect(() => model.forward({ ids, cache: { length: 0, layers: [] } })).toThrow(
        /must come from this model's newCache/,
      );
    });
  });
});
