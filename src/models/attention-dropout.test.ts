/**
 * Dropout on the attention probabilities in the models, where Hugging Face applies it: GPT-2 attn_pdrop, BERT
 * attention_probs_dropout_prob, T5 dropout_rate (T5Attention), Llama attention_dropout. With every other dropout
 * at 0: training mode changes the output, one fresh seed per attention call (the Dropout counter, so a run is
 * reproducible from dropoutState()), gradients still reach the weights; eval mode, or p = 0, is exactly the
 * deterministic forward and takes no seed.
 */
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { dropoutState, setDropoutState } from "../nn/layers.js";
import type { Module } from "../nn/module.js";
import { type Tensor, grad, mul, scope, sum } from "../tensor/index.js";
import { Rng, randint, randn } from "../tensor/random.js";
import { BERT_DEFAULTS } from "./bert/config.js";
import { BertModel } from "./bert/model.js";
import { GPT2_DEFAULTS } from "./gpt2/config.js";
import { GPT2LMHeadModel } from "./gpt2/model.js";
import { llamaConfigFromJson } from "./llama/config.js";
import { LlamaForCausalLM } from "./llama/model.js";
import { T5_DEFAULTS } from "./t5/config.js";
import { T5Attention } from "./t5/model.js";

const B = 2;
const Tn = 6;
const V = 50;

interface Subject {
  name: string;
  /** The module with attention-probability dropout p (other dropouts 0). */
  make(p: number): Module;
  /** Its forward on fixed inputs (B, Tn, ·). */
  run(m: Module): Tensor;
  /** Attention calls per forward (seeds taken in training mode). */
  calls: number;
}

const ids = () => randint([B, Tn], V, { seed: 5 });
const llamaJson = JSON.parse(readFileSync("test/fixtures/models/llama-tiny/config.json", "utf8")) as Record<
  string,
  unknown
>;

const subjects: Subject[] = [
  {
    name: "GPT-2 (attn_pdrop)",
    make: (p) =>
      new GPT2LMHeadModel(
        {
          ...GPT2_DEFAULTS,
          vocab_size: V,
          n_positions: 16,
          n_embd: 16,
          n_layer: 2,
          n_head: 2,
          n_inner: 32,
          embd_pdrop: 0,
          resid_pdrop: 0,
          attn_pdrop: p,
        },
        { seed: 1 },
      ),
    run: (m) => (m as GPT2LMHeadModel).forward({ ids: ids() }),
    calls: 2,
  },
  {
    name: "Llama (attention_dropout)",
    make: (p) =>
      new LlamaForCausalLM(llamaConfigFromJson({ ...llamaJson, vocab_size: V, attention_dropout: p }), { seed: 1 }),
    run: (m) => (m as LlamaForCausalLM).forward({ ids: ids() }),
    calls: 2,
  },
  {
    name: "BERT (attention_probs_dropout_prob)",
    make: (p) =>
      new BertModel(
        {
          ...BERT_DEFAULTS,
          vocab_size: V,
          hidden_size: 16,
          num_hidden_layers: 2,
          num_attention_heads: 2,
          intermediate_size: 32,
          max_position_embeddings: 16,
          hidden_dropout_prob: 0,
          attention_probs_dropout_prob: p,
        },
        { seed: 1, pooler: false },
      ),
    run: (m) => (m as BertModel).encode(ids()),
    calls: 2,
  },
  {
    name: "T5 (dropout_rate on T5Attention's weights)",
    make: (p) => {
      const c = { ...T5_DEFAULTS, vocab_size: V, d_model: 16, d_kv: 8, d_ff: 32, num_heads: 2, dropout_rate: p };
      return new T5Attention(c, true, true, new Rng(1));
    },
    run: (m) => {
      const x = randn([B, Tn, 16], { seed: 6 });
      const a = m as T5Attention;
      return a.forward(x, x, { bias: a.computeBias(Tn, Tn), keyMask: null, causal: false });
    },
    calls: 1,
  },
];

describe.each(subjects)("$name", (s) => {
  test("training mode drops attention probabilities, one seed per attention call, reproducibly", () =>
    scope(() => {
      const m = s.make(0.4);
      m.eval();
      const before = dropoutState();
      const plain = Array.from(s.run(m).data);
      expect(dropoutState()).toBe(before); // eval: no seed taken
      m.train();
      setDropoutState(1000);
      const a = Array.from(s.run(m).data);
      expect(dropoutState()).toBe(1000 + s.calls);
      expect(a).not.toEqual(plain);
      setDropoutState(1000);
      expect(Array.from(s.run(m).data)).toEqual(a); // same counter, same masks
      expect(Array.from(s.run(m).data)).not.toEqual(a); // next seeds, other masks
      m.eval();
      expect(Array.from(s.run(m).data)).toEqual(plain);
      m.dispose();
    }));

  test("p = 0 in training mode is the deterministic forward (no seed taken); gradients flow with dropout", () =>
    scope(() => {
      const m0 = s.make(0);
      m0.eval();
      const plain = Array.from(s.run(m0).data);
      m0.train();
      const before = dropoutState();
      expect(Array.from(s.run(m0).data)).toEqual(plain);
      expect(dropoutState()).toBe(before);
      m0.dispose();

      const m = s.make(0.4);
      m.train();
      const out = s.run(m);
      const params = m.trainableParameters().map(([, t]) => t);
      const gs = grad(sum(mul(out, randn(out.shape, { seed: 9 }))), params);
      expect(gs.some((g) => g.data.some((x) => x !== 0))).toBe(true);
      for (const g of gs) expect(g.data.every(Number.isFinite)).toBe(true);
      m.dispose();
    }));
});
