/**
 * Loading decoder LMs (loadCausalLM, configs, weight mapping) and the training-mode behaviour of the models:
 * config.json variants and their errors, GPT-2 checkpoints with or without the "transformer." prefix and with
 * the old attn.bias buffers, missing/unexpected/misshapen weights, GGUF name mapping, dropout only in training
 * mode, the position limit.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { expectClose } from "../../test/helpers/numeric.js";
import { openSafetensors, saveSafetensors } from "../io/safetensors.js";
import { setDropoutState } from "../nn/layers.js";
import { Tensor, scope } from "../tensor/index.js";
import { randint } from "../tensor/random.js";
import { gpt2ConfigFromJson } from "./gpt2/config.js";
import { GPT2LMHeadModel } from "./gpt2/model.js";
import { TRANSPOSED } from "./gpt2/weights.js";
import { llamaConfigFromJson } from "./llama/config.js";
import { LlamaForCausalLM } from "./llama/model.js";
import { ggufToHfName } from "./llama/weights.js";
import { loadCausalLM } from "./load.js";

const GPT2 = "test/fixtures/models/gpt2-tiny";
const LLAMA = "test/fixtures/models/llama-tiny";
const tmp = mkdtempSync(join(tmpdir(), "maclm-load-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const json = (dir: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));

/** A copy of a fixture folder with its config and/or tensors edited. */
function variant(
  name: string,
  from: string,
  edit: { config?: (c: Record<string, unknown>) => void; tensors?: (t: Map<string, Tensor>) => void },
): string {
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const c = json(from);
  edit.config?.(c);
  writeFileSync(join(dir, "config.json"), JSON.stringify(c));
  if (edit.tensors) {
    const r = openSafetensors(join(from, "model.safetensors"));
    const t = new Map(r.names.map((n) => [n, r.load(n)] as [string, Tensor]));
    r.close();
    edit.tensors(t);
    saveSafetensors(join(dir, "model.safetensors"), t);
    for (const x of t.values()) x.dispose();
  } else copyFileSync(join(from, "model.safetensors"), join(dir, "model.safetensors"));
  return dir;
}

describe("configs", () => {
  test("GPT-2 defaults and field checks", () => {
    const c = gpt2ConfigFromJson({ n_layer: 2 }, "x/config.json");
    expect([c.n_embd, c.n_head, c.n_inner, c.activation_function, c.n_positions]).toEqual([
      768,
      12,
      3072,
      "gelu_new",
      1024,
    ]);
    expect(gpt2ConfigFromJson({ n_embd: 64, n_head: 4, n_inner: null }).n_inner).toBe(256);
    expect(() => gpt2ConfigFromJson({ n_embd: "big" }, "x/config.json")).toThrow(
      /x\/config.json: field "n_embd" must be a number, got "big"/,
    );
    expect(() => gpt2ConfigFromJson({ n_embd: 30, n_head: 4 })).toThrow(/n_embd 30 is not a multiple of n_head 4/);
    expect(() => gpt2ConfigFromJson({ activation_function: "relu" })).toThrow(
      /activation_function "relu" is not supported/,
    );
    expect(() => gpt2ConfigFromJson({ resid_pdrop: 1.5 })).toThrow(/"resid_pdrop" must be in \[0, 1\)/);
  });

  test("Llama: transformers 5.x rope_parameters and 4.x rope_theta, GQA defaults, unsupported RoPE scaling", () => {
    const base = {
      vocab_size: 10,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 8,
    };
    const v4 = llamaConfigFromJson({ ...base, rope_theta: 500000, eos_token_id: [5, 6] });
    expect([v4.rope_theta, v4.num_key_value_heads, v4.head_dim, v4.tie_word_embeddings, v4.eos_token_id]).toEqual([
      500000,
      8,
      8,
      false,
      5,
    ]);
    const v5 = llamaConfigFromJson({
      ...base,
      rope_parameters: { rope_theta: 100000, rope_type: "default" },
      num_key_value_heads: 2,
    });
    expect([v5.rope_theta, v5.num_key_value_heads]).toEqual([100000, 2]);
    expect(() =>
      llamaConfigFromJson({ ...base, rope_parameters: { rope_theta: 1, rope_type: "llama3" } }, "c.json"),
    ).toThrow(/c.json: RoPE type "llama3" is not supported/);
    expect(() => llamaConfigFromJson({ ...base, rope_scaling: { type: "linear", factor: 2 } })).toThrow(
      /RoPE type "linear"/,
    );
    expect(() => llamaConfigFromJson({ ...base, num_key_value_heads: 3 })).toThrow(
      /not a multiple of num_key_value_heads 3/,
    );
    expect(() => llamaConfigFromJson({ ...base, hidden_act: "gelu" })).toThrow(/hidden_act "gelu" is not supported/);
    expect(() => llamaConfigFromJson({ hidden_size: 64 }, "c.json")).toThrow(
      /c.json: field "num_attention_heads" is required$/,
    );
  });

  test("unsupported model_type and paths", () => {
    const dir = variant("bert", GPT2, { config: (c) => (c.model_type = "bert") });
    expect(() => loadCausalLM(dir)).toThrow(/model_type "bert" is not a supported causal LM \(gpt2, llama\)/);
    expect(() => loadCausalLM(join(tmp, "nothing"))).toThrow(/no such file or folder/);
    expect(() => loadCausalLM(join(GPT2, "config.json"))).toThrow(/neither a folder with config.json nor a GGUF file/);
  });
});

describe("GPT-2 weights", () => {
  const ref = loadCausalLM(GPT2);
  const ids = randint([2, 5], 96, { seed: 1 });
  const refLogits = scope(() => ref.forward({ ids }));
  afterAll(() => {
    ref.dispose();
    ids.dispose();
    refLogits.dispose();
  });

  test("the four Conv1D weights are transposed, nothing else", () => {
    expect(TRANSPOSED).toEqual(["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]);
    const r = openSafetensors(join(GPT2, "model.safetensors"));
    const stored = r.load("transformer.h.0.attn.c_attn.weight"); // (in, out) = (32, 96)
    const ours = (ref as GPT2LMHeadModel).transformer.h[0]!.attn.c_attn.weight; // (out, in) = (96, 32)
    expect([stored.shape, ours.shape]).toEqual([
      [32, 96],
      [96, 32],
    ]);
    expect(ours.data[5 * 32 + 7]).toBe(stored.data[7 * 96 + 5]);
    stored.dispose();
    r.close();
  });

  test("keys without the transformer. prefix, old attn.bias buffers and a stored lm_head load the same", () => {
    const dir = variant("bare", GPT2, {
      tensors: (t) => {
        for (const [k, v] of [...t]) {
          t.delete(k);
          t.set(k.replace(/^transformer\./, ""), v);
        }
        t.set("h.0.attn.bias", Tensor.full([1, 1, 4, 4], 1));
        t.set("h.0.attn.masked_bias", Tensor.full([1], -1e4));
        t.set("lm_head.weight", t.get("wte.weight")!.clone());
      },
    });
    const m = loadCausalLM(dir);
    scope(() => expectClose(m.forward({ ids }).data, refLogits.data, { rtol: 0, atol: 0 }, "bare keys"));
    m.dispose();
  });

  test("a sharded checkpoint (model.safetensors.index.json) loads the same", () => {
    const dir = join(tmp, "sharded");
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(GPT2, "config.json"), join(dir, "config.json"));
    const r = openSafetensors(join(GPT2, "model.safetensors"));
    const names = [...r.names];
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    shards.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      const t = new Map(part.map((n) => [n, r.load(n)] as [string, Tensor]));
      saveSafetensors(join(dir, file), t);
      for (const n of part) weightMap[n] = file;
      for (const x of t.values()) x.dispose();
    });
    r.close();
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const m = loadCausalLM(dir);
    scope(() => expectClose(m.forward({ ids }).data, refLogits.data, { rtol: 0, atol: 0 }, "sharded"));
    m.dispose();
  });

  test("missing, unexpected and misshapen weights are errors naming them", () => {
    const missing = variant("missing", GPT2, { tensors: (t) => void t.delete("transformer.ln_f.bias") });
    expect(() => loadCausalLM(missing)).toThrow(/1 weights missing \(transformer.ln_f.bias\)/);
    const extra = variant("extra", GPT2, {
      tensors: (t) => void t.set("transformer.h.9.mlp.c_fc.bias", Tensor.zeros([4])),
    });
    expect(() => loadCausalLM(extra)).toThrow(/1 entries match no parameter \(transformer.h.9.mlp.c_fc.bias\)/);
    const shape = variant("shape", GPT2, {
      tensors: (t) => void t.set("transformer.wpe.weight", Tensor.zeros([16, 32])),
    });
    expect(() => loadCausalLM(shape)).toThrow(
      /transformer.wpe.weight has shape \[16, 32\], parameter transformer.wpe.weight is \[32, 32\]/,
    );
  });

  test("positions past n_positions (prefix included) are an error", () => {
    scope(() => {
      expect(() => ref.forward({ ids: Tensor.zeros([1, 33], "int32") })).toThrow(
        /positions up to 32 exceed n_positions 32/,
      );
      const prefix = Array.from({ length: 2 }, () => ({
        k: Tensor.zeros([1, 2, 4, 8]),
        v: Tensor.zeros([1, 2, 4, 8]),
      }));
      expect(() => ref.forward({ ids: Tensor.zeros([1, 31], "int32"), modulation: { prefix } })).toThrow(/past 2/);
      expect(ref.forward({ ids: Tensor.zeros([1, 30], "int32"), modulation: { prefix } }).shape).toEqual([1, 30, 96]);
    });
  });
});

describe("dropout", () => {
  const ids = randint([2, 6], 96, { seed: 2 });
  afterAll(() => ids.dispose());
  const config = gpt2ConfigFromJson(json(GPT2));

  test("GPT-2: embd/resid dropout only in training mode, reproducible from the dropout seed", () => {
    const m = new GPT2LMHeadModel(config, { seed: 3 });
    scope(() => {
      const evalOut = m.eval().forward({ ids }).data;
      m.train();
      setDropoutState(1234);
      const a = m.forward({ ids }).data;
      setDropoutState(1234);
      const b = m.forward({ ids }).data;
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(Array.from(a)).not.toEqual(Array.from(evalOut));
      expect(Array.from(m.eval().forward({ ids }).data)).toEqual(Array.from(evalOut));
    });
    m.dispose();
  });

  test.each([
    ["embd_pdrop", { embd_pdrop: 0.5, resid_pdrop: 0 }, true],
    ["resid_pdrop", { embd_pdrop: 0, resid_pdrop: 0.5 }, true],
    ["attn_pdrop (on the attention probabilities)", { embd_pdrop: 0, resid_pdrop: 0, attn_pdrop: 0.5 }, true],
    ["none", { embd_pdrop: 0, resid_pdrop: 0, attn_pdrop: 0 }, false],
  ])("GPT-2 %s", (_, p, changes) => {
    const m = new GPT2LMHeadModel({ ...config, ...p }, { seed: 3 });
    scope(() => {
      const evalOut = Array.from(m.eval().forward({ ids }).data);
      const trainOut = Array.from(m.train().forward({ ids }).data);
      if (changes) expect(trainOut).not.toEqual(evalOut);
      else expect(trainOut).toEqual(evalOut);
    });
    m.dispose();
  });

  test("Llama has no dropout besides attention_dropout (0 here): training mode changes nothing", () => {
    const m = loadCausalLM(LLAMA) as LlamaForCausalLM;
    scope(() => {
      const evalOut = Array.from(m.forward({ ids }).data);
      expect(Array.from(m.train().forward({ ids }).data)).toEqual(evalOut);
    });
    m.dispose();
  });
});

describe("Llama weights", () => {
  test("GGUF tensor names map to Hugging Face names", () => {
    expect(ggufToHfName("token_embd.weight")).toBe("model.embed_tokens.weight");
    expect(ggufToHfName("output.weight")).toBe("lm_head.weight");
    expect(ggufToHfName("output_norm.weight")).toBe("model.norm.weight");
    expect(ggufToHfName("blk.12.attn_q.weight")).toBe("model.layers.12.self_attn.q_proj.weight");
    expect(ggufToHfName("blk.0.attn_k.bias")).toBe("model.layers.0.self_attn.k_proj.bias");
    expect(ggufToHfName("blk.3.attn_output.weight")).toBe("model.layers.3.self_attn.o_proj.weight");
    expect(ggufToHfName("blk.3.ffn_down.weight")).toBe("model.layers.3.mlp.down_proj.weight");
    expect(ggufToHfName("blk.3.ffn_norm.weight")).toBe("model.layers.3.post_attention_layernorm.weight");
    expect(ggufToHfName("rope_freqs.weight")).toBeNull();
  });

  test("GGUF and safetensors give identical parameters (q/k un-permuted)", () => {
    const a = loadCausalLM(LLAMA);
    const b = loadCausalLM(join(LLAMA, "model.gguf"));
    const pb = new Map(b.namedParameters());
    for (const [n, t] of a.namedParameters()) expect(Array.from(pb.get(n)!.data), n).toEqual(Array.from(t.data));
    a.dispose();
    b.dispose();
  });

  test("untied lm_head is loaded when config says so", () => {
    const dir = variant("untied", LLAMA, {
      config: (c) => (c.tie_word_embeddings = false),
      tensors: (t) => void t.set("lm_head.weight", t.get("model.embed_tokens.weight")!.clone()),
    });
    const m = loadCausalLM(dir, { freeze: true }) as LlamaForCausalLM;
    expect(m.lm_head).not.toBeNull();
    expect(m.trainableParameters()).toEqual([]);
    const ref = loadCausalLM(LLAMA);
    scope(() => {
      const ids = randint([1, 4], 96, { seed: 4 });
      expectClose(m.forward({ ids }).data, ref.forward({ ids }).data, { rtol: 0, atol: 0 }, "untied = tied copy");
    });
    m.dispose();
    ref.dispose();
    expect(() =>
      loadCausalLM(variant("untied-missing", LLAMA, { config: (c) => (c.tie_word_embeddings = false) })),
    ).toThrow(/1 weights missing \(lm_head.weight\)/);
  });
});
