/**
 * T5 against Hugging Face's T5ForConditionalGeneration (fixtures: reference/dump_encoders.py,
 * test/fixtures/models/t5-tiny/{relu,gated-gelu}): encoder output with padding, decoder output for token ids with
 * the encoder mask, logits (tied head with the d_model^-0.5 rescale; untied v1.1 head without), the decoder run on
 * inputs_embeds with no encoder mask (MAC's amortizer), and the gradients of that output with respect to the
 * query embeddings and both stacks' relative_attention_bias tables, at 1e-4 relative. The relative position
 * buckets must equal transformers' exactly.
 */
import { afterAll, describe, expect, test } from "vitest";
import { MacLmError, ShapeError } from "../../src/errors.js";
import { openSafetensors } from "../../src/io/safetensors.js";
import { relativePositionBucket, relativePositionBuckets } from "../../src/models/t5/model.js";
import { loadT5 } from "../../src/models/t5/weights.js";
import { Tensor, grad, liveNativeMemory, mul, noGrad, scope, sum } from "../../src/tensor/index.js";
import { expectClose } from "../helpers/numeric.js";
import { openFixture } from "./decoder-parity.js";

const ROOT = "test/fixtures/models/t5-tiny";
const TOL = { rtol: 1e-4, atol: 2e-5 };
/**
 * Gradients sum many terms of both signs: small entries of a large gradient carry the float32 rounding of the big
 * ones (transformers' own float32 gradient of query_embeds is 4e-5 off its float64 value where |g| reaches 18), so
 * the absolute tolerance is 1e-5 of the largest expected magnitude.
 */
function gradTol(expected: Tensor): { rtol: number; atol: number } {
  let m = 0;
  for (const x of expected.data) m = Math.max(m, Math.abs(x));
  return { rtol: 1e-4, atol: 1e-5 * m };
}

describe("t5 relative position buckets", () => {
  test("equal transformers' _relative_position_bucket for |rel| <= 300, (8, 20) and (32, 128), both directions", () =>
    scope(() => {
      const r = openSafetensors(`${ROOT}/buckets.safetensors`);
      try {
        const rel = r.load("relative_position").data;
        let checked = 0;
        for (const [nb, md] of [
          [8, 20],
          [32, 128],
        ] as const)
          for (const bidi of [true, false]) {
            const want = r.load(`buckets.${nb}.${md}.${bidi ? "bidirectional" : "causal"}`).data;
            const got = Array.from(rel, (x) => relativePositionBucket(x, bidi, nb, md));
            expect(got).toEqual(Array.from(want));
            checked += got.length;
          }
        expect(checked).toBe(4 * 601);
      } finally {
        r.close();
      }
    }));

  test("the (Tq, Tk) table is bucket(key − query), with a query offset", () =>
    scope(() => {
      const t = relativePositionBuckets(3, 5, true, 8, 20);
      expect(t.shape).toEqual([3, 5]);
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 5; j++) expect(t.data[i * 5 + j]).toBe(relativePositionBucket(j - i, true, 8, 20));
      const o = relativePositionBuckets(2, 6, false, 32, 128, 4);
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 6; j++) expect(o.data[i * 6 + j]).toBe(relativePositionBucket(j - (i + 4), false, 32, 128));
    }));
});

describe.each([
  ["relu", "relu", "tied"],
  ["gated-gelu", "gelu_new", "separate"],
] as const)("t5 parity (t5-tiny/%s)", (name, act, head) => {
  const DIR = `${ROOT}/${name}`;
  const fx = openFixture(DIR);
  const model = loadT5(DIR);
  afterAll(() => {
    fx.close();
    model.dispose();
  });

  test("config, geometry and LM head as the checkpoint says", () => {
    const c = model.config;
    expect(model.modelType).toBe("t5");
    expect([c.d_model, c.d_kv, c.num_heads, c.d_ff, c.num_layers, c.num_decoder_layers, c.vocab_size]).toEqual([
      32, 8, 4, 64, 2, 2, 64,
    ]);
    expect([c.relative_attention_num_buckets, c.relative_attention_max_distance]).toEqual([8, 20]);
    expect(c.dense_act_fn).toBe(act);
    expect(c.is_gated_act).toBe(name === "gated-gelu");
    expect(model.lmHeadKind).toBe(head);
    expect(c.scale_decoder_outputs).toBe(head === "tied");
    expect(model.training).toBe(false);
    const names = model.namedParameters().map(([n]) => n);
    expect(names).toContain("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    expect(names).toContain("decoder.block.1.layer.1.EncDecAttention.k.weight");
    expect(names).toContain(
      name === "relu"
        ? "decoder.block.1.layer.2.DenseReluDense.wi.weight"
        : "encoder.block.1.layer.1.DenseReluDense.wi_1.weight",
    );
    expect(names).not.toContain("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight");
    expect(names.includes("lm_head.weight")).toBe(head === "separate");
  });

  test("encoder output (padding in row 1)", () =>
    scope(() => {
      const enc = model.encode(fx.get("enc_ids"), fx.get("enc_mask"));
      expect(enc.shape).toEqual([2, 24, 32]);
      expectClose(enc.data, fx.get("encoder").data, TOL, "encoder");
    }));

  test("decoder output for token ids with the encoder mask, and the logits", () =>
    scope(() => {
      const enc = model.encode(fx.get("enc_ids"), fx.get("enc_mask"));
      const dec = model.decode({ ids: fx.get("dec_ids"), encoderHidden: enc, encoderMask: fx.get("enc_mask") });
      expect(dec.shape).toEqual([2, 7, 32]);
      expectClose(dec.data, fx.get("decoder").data, TOL, "decoder");
      const logits = model.logits(dec);
      expect(logits.shape).toEqual([2, 7, 64]);
      expectClose(logits.data, fx.get("logits").data, TOL, "logits");
    }));

  test("MAC's amortizer: decoder on inputs_embeds, no encoder mask; gradients w.r.t. the queries and both bias tables", () =>
    scope(() => {
      const query = fx.get("query_embeds").clone().requireGrad();
      const enc = model.encode(fx.get("enc_ids"), fx.get("enc_mask"));
      const out = model.decode({ inputsEmbeds: query, encoderHidden: enc });
      expect(out.shape).toEqual([2, 6, 32]);
      expectClose(out.data, fx.get("decoder_embeds").data, TOL, "decoder on inputs_embeds");
      const encBias = model.encoder.block[0]!.selfAttention.SelfAttention.relative_attention_bias!.weight;
      const decBias = model.decoder!.block[0]!.selfAttention.SelfAttention.relative_attention_bias!.weight;
      const [gq, ge, gd] = grad(sum(mul(out, fx.get("grad_R"))), [query, encBias, decBias]);
      const want = (n: string) => fx.get(`grad.${n}`);
      const eb = "block.0.layer.0.SelfAttention.relative_attention_bias.weight";
      expectClose(gq!.data, want("query_embeds").data, gradTol(want("query_embeds")), "d / d query_embeds");
      expectClose(ge!.data, want(`encoder.${eb}`).data, gradTol(want(`encoder.${eb}`)), "d / d encoder bias table");
      expectClose(gd!.data, want(`decoder.${eb}`).data, gradTol(want(`decoder.${eb}`)), "d / d decoder bias table");
      query.dispose();
    }));

  test("frozen model: the query gradient is the same and no weight gets one", () => {
    model.freeze();
    try {
      scope(() => {
        const query = fx.get("query_embeds").clone().requireGrad();
        const enc = model.encode(fx.get("enc_ids"), fx.get("enc_mask"));
        expect(enc.requiresGrad).toBe(false);
        const out = model.decode({ inputsEmbeds: query, encoderHidden: enc });
        const [gq] = grad(sum(mul(out, fx.get("grad_R"))), [query]);
        const want = fx.get("grad.query_embeds");
        expectClose(gq!.data, want.data, gradTol(want), "d / d query_embeds (frozen)");
        expect(model.trainableParameters()).toEqual([]);
        query.dispose();
      });
    } finally {
      model.unfreeze();
    }
  });

  test("encoder-only and head-less builds load the same weights (their checkpoint entries are ignored)", () =>
    scope(() => {
      const encOnly = loadT5(DIR, { decoder: false });
      const noHead = loadT5(DIR, { lmHead: "none" });
      try {
        expect(encOnly.decoder).toBeNull();
        expect(noHead.lm_head).toBeNull();
        noGrad(() => {
          const want = fx.get("encoder").data;
          expectClose(encOnly.encode(fx.get("enc_ids"), fx.get("enc_mask")).data, want, TOL, "encoder-only");
          const enc = noHead.encode(fx.get("enc_ids"), fx.get("enc_mask"));
          const out = noHead.decode({ inputsEmbeds: fx.get("query_embeds"), encoderHidden: enc });
          expectClose(out.data, fx.get("decoder_embeds").data, TOL, "head-less decoder");
          expect(() => noHead.logits(out)).toThrow(/t5\.logits: this model has no LM head/);
        });
      } finally {
        encOnly.dispose();
        noHead.dispose();
      }
    }));

  test("a forward + backward inside scope() gives back all its native memory", () => {
    const before = liveNativeMemory().bytes;
    scope(() => {
      const query = fx.get("query_embeds").clone().requireGrad();
      const enc = model.encode(fx.get("enc_ids"), fx.get("enc_mask"));
      const out = model.decode({ inputsEmbeds: query, encoderHidden: enc });
      grad(sum(mul(out, fx.get("grad_R"))), [query, ...model.parameters()]);
    });
    expect(liveNativeMemory().bytes).toBe(before);
  });

  test("dropout only in training mode (encoder and decoder)", () =>
    noGrad(() =>
      scope(() => {
        const ids = fx.get("enc_ids");
        const a = model.encode(ids).toArray();
        expect(model.encode(ids).toArray()).toEqual(a);
        model.train();
        try {
          const b = model.encode(ids).toArray();
          expect(b.some((x, i) => Math.abs(x - a[i]!) > 1e-3)).toBe(true);
        } finally {
          model.eval();
        }
        expect(model.encode(ids).toArray()).toEqual(a);
      }),
    ));
});

describe("t5 argument errors", () => {
  const model = loadT5(`${ROOT}/relu`);
  afterAll(() => model.dispose());
  test("bad inputs throw errors naming the op and the shapes", () =>
    scope(() => {
      const ids = Tensor.zeros([2, 5], "int32");
      const enc = Tensor.zeros([2, 5, 32]);
      const cases: [() => unknown, typeof MacLmError, RegExp][] = [
        [
          () => model.encode(ids.to("float32")),
          ShapeError,
          /t5\.encode: ids must be int32 \(B, T\), got float32 \[2, 5\]/,
        ],
        [
          () => model.encode(ids, Tensor.full([2, 4], 1)),
          ShapeError,
          /attentionMask \[2, 4\] must be \(B, T\) = \(2, 5\)/,
        ],
        [() => model.encode(ids, undefined, { prefix: [] }), MacLmError, /modulation .* is not supported/],
        [() => model.decode({ encoderHidden: enc }), MacLmError, /exactly one of ids and inputsEmbeds/],
        [
          () => model.decode({ ids, inputsEmbeds: enc, encoderHidden: enc }),
          MacLmError,
          /exactly one of ids and inputsEmbeds/,
        ],
        [
          () => model.decode({ inputsEmbeds: Tensor.zeros([2, 3, 16]), encoderHidden: enc }),
          ShapeError,
          /inputsEmbeds \[2, 3, 16\] must be \(B, Tq, 32\)/,
        ],
        [
          () => model.decode({ ids, encoderHidden: Tensor.zeros([3, 5, 32]) }),
          ShapeError,
          /encoderHidden \[3, 5, 32\] must be \(2, Te, 32\)/,
        ],
        [
          () => model.decode({ ids, encoderHidden: enc, encoderMask: Tensor.full([2, 6], 1) }),
          ShapeError,
          /encoderMask \[2, 6\] must be \(B, T\) = \(2, 5\)/,
        ],
      ];
      for (const [f, cls, re] of cases) {
        let err: unknown;
        try {
          f();
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(cls);
        expect((err as Error).message).toMatch(re);
      }
    }));
});
