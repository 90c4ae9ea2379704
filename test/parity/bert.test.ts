/**
 * BERT against Hugging Face's BertModel (fixtures: reference/dump_encoders.py, test/fixtures/models/bert-tiny):
 * last hidden state with padding and token types, pooler, sentence embedding (mean pool + L2 norm), gradients
 * through the whole model, and a P-tuning v2 prefix (HF: a pre-filled cache, positions from P) with its
 * gradients, at 1e-4 relative.
 */
import { afterAll, describe, expect, test } from "vitest";
import { ShapeError } from "../../src/errors.js";
import { BertModel, l2Normalize, meanPool } from "../../src/models/bert/model.js";
import { loadBert } from "../../src/models/bert/weights.js";
import { mergeLora } from "../../src/models/lora.js";
import type { LayerKV } from "../../src/models/types.js";
import { Tensor, grad, mul, noGrad, scope, sum } from "../../src/tensor/index.js";
import { randn } from "../../src/tensor/random.js";
import { expectClose } from "../helpers/numeric.js";
import { openFixture } from "./decoder-parity.js";

const DIR = "test/fixtures/models/bert-tiny";
const TOL = { rtol: 1e-4, atol: 2e-5 };

describe("bert parity (bert-tiny)", () => {
  const fx = openFixture(DIR);
  const model = loadBert(DIR);
  afterAll(() => {
    fx.close();
    model.dispose();
  });
  const input = () => ({ ids: fx.get("ids"), attentionMask: fx.get("mask"), tokenTypeIds: fx.get("token_type_ids") });

  test("loads the Hugging Face folder: config, geometry, pooler, evaluation mode", () => {
    expect(model.modelType).toBe("bert");
    expect([
      model.numLayers,
      model.hiddenSize,
      model.numHeads,
      model.numKvHeads,
      model.headDim,
      model.vocabSize,
    ]).toEqual([2, 32, 4, 4, 8, 100]);
    expect(model.config.hidden_act).toBe("gelu");
    expect(model.config.layer_norm_eps).toBe(1e-12);
    expect(model.pooler).not.toBeNull();
    expect(model.training).toBe(false);
    expect(model.namedParameters().map(([n]) => n)).toContain("encoder.layer.1.attention.self.query.weight");
    expect(model.numParameters()).toBe(22496); // = the checkpoint's tensors
  });

  test("last hidden state (padding in row 1, token types) and pooler output", () =>
    scope(() => {
      const h = model.forward(input());
      expect(h.shape).toEqual([2, 10, 32]);
      expectClose(h.data, fx.get("last_hidden").data, TOL, "last hidden state");
      expectClose(model.pool(h).data, fx.get("pooler").data, TOL, "pooler");
    }));

  test("encode() (no token types) = forward with type 0; sentence embedding = L2-normalised mean over the mask", () =>
    scope(() => {
      const zeros = Tensor.zeros([2, 10], "int32");
      const a = model.encode(fx.get("ids"), fx.get("mask"));
      const b = model.forward({ ids: fx.get("ids"), attentionMask: fx.get("mask"), tokenTypeIds: zeros });
      expect(a.toArray()).toEqual(b.toArray());
      const h = model.forward(input());
      const mask = fx.get("mask").to("float32");
      const s = l2Normalize(meanPool(h, mask));
      expect(s.shape).toEqual([2, 32]);
      expectClose(s.data, fx.get("sentence").data, TOL, "sentence embedding");
      // int32 masks work the same.
      expect(l2Normalize(meanPool(h, fx.get("mask"))).toArray()).toEqual(s.toArray());
      for (let b = 0; b < 2; b++) {
        let n = 0;
        for (let c = 0; c < 32; c++) n += s.data[b * 32 + c]! ** 2;
        expect(n).toBeCloseTo(1, 5);
      }
    }));

  test("gradients of sum(hidden · R) w.r.t. the word embeddings and layer 0's query weight", () =>
    scope(() => {
      const word = model.embeddings.word_embeddings.weight;
      const query = model.encoder.layer[0]!.attention.self.query.weight;
      const h = model.forward(input());
      const [gw, gq] = grad(sum(mul(h, fx.get("grad_R"))), [word, query]);
      expectClose(gw!.data, fx.get("grad.embeddings.word_embeddings.weight").data, TOL, "d / d word_embeddings");
      expectClose(gq!.data, fx.get("grad.encoder.layer.0.attention.self.query.weight").data, TOL, "d / d query.weight");
    }));

  test("P-tuning v2 prefix (P = 3, mask (B, P + T), positions from P) and its gradients through the frozen model", () => {
    model.freeze();
    try {
      scope(() => {
        expect(fx.P).toBe(3);
        const prefix: LayerKV[] = [0, 1].map((l) => ({
          k: fx.get(`prefix.${l}.k`).clone().requireGrad(),
          v: fx.get(`prefix.${l}.v`).clone().requireGrad(),
        }));
        const h = model.forward({ ...input(), attentionMask: fx.get("prefix_mask"), modulation: { prefix } });
        expectClose(h.data, fx.get("last_hidden_prefix").data, TOL, "last hidden state with prefix");
        const params = prefix.flatMap(({ k, v }) => [k, v]);
        const grads = grad(sum(mul(h, fx.get("grad_R"))), params);
        prefix.forEach((_, l) => {
          expectClose(grads[2 * l]!.data, fx.get(`grad.prefix.${l}.k`).data, TOL, `d / d prefix[${l}].k`);
          expectClose(grads[2 * l + 1]!.data, fx.get(`grad.prefix.${l}.v`).data, TOL, `d / d prefix[${l}].v`);
        });
        expect(model.trainableParameters()).toEqual([]);
        // A (B, T) mask is extended by P ones: same result for the unpadded row 0.
        const h2 = model.forward({ ...input(), modulation: { prefix } });
        expectClose(h2.data.subarray(0, 320), h.data.subarray(0, 320), { rtol: 1e-6, atol: 1e-7 }, "(B, T) mask");
        // A batch-1 prefix (1, P, NH, HS) is shared by the batch: equal to the same rows repeated.
        const n = 3 * 4 * 8;
        const row0 = (t: Tensor) => Tensor.from(t.data.subarray(0, n), [1, 3, 4, 8]);
        const twice = (t: Tensor) => Tensor.from([...t.data.subarray(0, n), ...t.data.subarray(0, n)], [2, 3, 4, 8]);
        const shared = model.forward({
          ...input(),
          modulation: { prefix: prefix.map(({ k, v }) => ({ k: row0(k), v: row0(v) })) },
        });
        const repeated = model.forward({
          ...input(),
          modulation: { prefix: prefix.map(({ k, v }) => ({ k: twice(k), v: twice(v) })) },
        });
        expect(shared.toArray()).toEqual(repeated.toArray());
        for (const p of params) p.dispose();
      });
    } finally {
      model.unfreeze();
    }
  });

  test("LoRA: a zero update changes nothing; a shared update equals merged weights (q, k, v, o)", () =>
    noGrad(() =>
      scope(() => {
        const r = 2;
        const C = 32;
        const base = model.forward(input());
        const zeroB = Array.from({ length: 2 }, () => ({
          q: { a: randn([1, r, C], { seed: 1 }), b: Tensor.zeros([1, C, r]), scaling: 2 },
        }));
        expect(model.forward({ ...input(), modulation: { lora: zeroB } }).toArray()).toEqual(base.toArray());
        const lora = [0, 1].map((l) => ({
          q: {
            a: randn([1, r, C], { seed: 10 + l, std: 0.3 }),
            b: randn([1, C, r], { seed: 20 + l, std: 0.3 }),
            scaling: 0.5,
          },
          k: {
            a: randn([1, r, C], { seed: 30 + l, std: 0.3 }),
            b: randn([1, C, r], { seed: 40 + l, std: 0.3 }),
            scaling: 0.5,
          },
          v: {
            a: randn([1, r, C], { seed: 50 + l, std: 0.3 }),
            b: randn([1, C, r], { seed: 60 + l, std: 0.3 }),
            scaling: 0.5,
          },
          o: {
            a: randn([1, r, C], { seed: 70 + l, std: 0.3 }),
            b: randn([1, C, r], { seed: 80 + l, std: 0.3 }),
            scaling: 0.5,
          },
        }));
        const withLora = model.forward({ ...input(), modulation: { lora } });
        const merged = new BertModel(model.config, { pooler: false });
        try {
          merged.loadStateDict(new Map(model.namedParameters().filter(([n]) => !n.startsWith("pooler."))));
          merged.eval();
          lora.forEach((d, l) => {
            const at = merged.encoder.layer[l]!.attention;
            for (const [lin, delta] of [
              [at.self.query, d.q],
              [at.self.key, d.k],
              [at.self.value, d.v],
              [at.output.dense, d.o],
            ] as const) {
              const w = mergeLora(lin.weight, delta);
              lin.weight.data.set(w.data);
              w.dispose();
            }
          });
          const want = merged.forward(input());
          expectClose(withLora.data, want.data, { rtol: 1e-4, atol: 1e-5 }, "LoRA vs merged");
          expect(Math.max(...withLora.toArray().map((x, i) => Math.abs(x - base.data[i]!)))).toBeGreaterThan(1e-3);
        } finally {
          merged.dispose();
        }
      }),
    ));

  test("shape errors name the op and the shapes", () =>
    scope(() => {
      const ids = fx.get("ids");
      const cases: [() => unknown, RegExp][] = [
        [
          () => model.forward({ ids: ids.to("float32") }),
          /bert\.forward: ids must be int32 \(B, T\), got float32 \[2, 10\]/,
        ],
        [
          () => model.forward({ ids, attentionMask: Tensor.full([2, 9], 1) }),
          /attentionMask \[2, 9\] must be \(B, T\) = \(2, 10\)/,
        ],
        [
          () => model.forward({ ids: Tensor.zeros([1, 40], "int32") }),
          /positions up to 39 exceed max_position_embeddings 32/,
        ],
        [
          () => model.forward({ ids, tokenTypeIds: Tensor.zeros([2, 3], "int32") }),
          /tokenTypeIds must be int32 \[2, 10\]/,
        ],
        [
          () => meanPool(Tensor.zeros([2, 10, 4]), Tensor.zeros([2, 9])),
          /meanPool: hidden \[2, 10, 4\] must be \(B, T, C\) and mask \[2, 9\]/,
        ],
      ];
      for (const [f, re] of cases) {
        let err: unknown;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(ShapeError);
        expect((err as Error).message).toMatch(re);
      }
    }));
});
