/**
 * Builds a MacModel from a MacConfig: resolves the base LM and the encoders (registry names in the model cache, or
 * paths), loads them frozen, and creates the trainable parts with seeded initialisation. The base LM and frozen
 * encoders are shared, never copied; only the trainable parts belong to the returned model.
 */
import { basename, dirname, join } from "node:path";
import { verifyChecksum } from "../io/checksums.js";
import { disposeLoraAdapter, loadLoraAdapter, mergeLoraAdapter } from "../models/adapter.js";
import { existsSync } from "node:fs";
import { resolveModel } from "../hub/pull.js";
import { openGguf } from "../io/gguf.js";
import { loadBert } from "../models/bert/weights.js";
import { loadCausalLM } from "../models/load.js";
import type { CausalLM, Encoder } from "../models/types.js";
import type { Module } from "../nn/module.js";
import { loadT5 } from "../models/t5/weights.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/index.js";
import { type Tokenizer, tokenizerFromGguf, tokenizerFromHfDir } from "../tokenizers/index.js";
import { Aggregator } from "./aggregate/aggregator.js";
import { SelectAggregator } from "./aggregate/select.js";
import { type Amortizer, DecoderOnlyAmortizer, EncoderQueriesAmortizer, T5Amortizer } from "./amortize/amortizer.js";
import { type MacConfig, entrySlots } from "./config.js";
import { MacModel } from "./model.js";
import { createModulation } from "./modulation/index.js";
import { SoftPromptModulation } from "./modulation/soft-prompt.js";
import { CausalLMEncoder } from "./amortize/lm-encoder.js";
import { WindowEntryEncoder, inputEmbeddingTable } from "./amortize/window-entry.js";
import { TokensModulation } from "./modulation/tokens.js";
import type { MemoryAggregator } from "./aggregate/hierarchical.js";

export interface BuildOptions {
  cacheDir?: string;
  /** The base LM's LoRA adapter file, merged into its weights at load (config.baseAdapter, resolved). */
  baseAdapter?: string | null;
}

export async function loadBase(
  nameOrPath: string,
  opts: BuildOptions = {},
): Promise<{ model: ReturnType<typeof loadCausalLM>; tokenizer: Tokenizer }> {
  const r = await resolveModel(nameOrPath, { cacheDir: opts.cacheDir });
  // A GGUF file is the whole model; safetensors weights are loaded from their folder (config.json beside them).
  const weights = r.weights !== null && r.weights.toLowerCase().endsWith(".gguf") ? r.weights : r.dir;
  const model = loadCausalLM(weights, { freeze: true });
  if (opts.baseAdapter) {
    try {
      verifyChecksum(dirname(opts.baseAdapter), basename(opts.baseAdapter), "use an intact copy of the checkpoint");
      const adapter = loadLoraAdapter(opts.baseAdapter, model);
      mergeLoraAdapter(model, adapter);
      disposeLoraAdapter(adapter);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  let tokenizer: Tokenizer;
  if (weights.toLowerCase().endsWith(".gguf")) {
    tokenizer = tokenizerFromGguf(openGguf(weights));
  } else tokenizer = tokenizerFromHfDir(r.dir);
  return { model, tokenizer };
}

export async function buildMac(config: MacConfig, opts: BuildOptions = {}): Promise<MacModel> {
  const base = await loadBase(config.base, opts);
  const d = base.model.hiddenSize;
  const rng = new Rng(config.seed);
  const T = entrySlots(config);
  let amortizer: Amortizer;
  let questionEncoder: Amortizer;
  const a = config.amortizer;
  if (a.kind === "encoder-queries" || a.kind === "lm-queries") {
    // encoder-queries: a MiniLM/BERT encoder, frozen and shared by both networks (a trained one gets its own copy for
    // the questions); lm-queries: the frozen base LM itself reads documents and questions. Two decoders either way.
    let reader: Encoder & Module;
    let qReader: Encoder & Module;
    let tok: Tokenizer;
    if (a.kind === "encoder-queries") {
      const r = await resolveModel(a.encoder, { cacheDir: opts.cacheDir });
      tok = tokenizerFromHfDir(r.dir);
      reader = loadBert(r.dir);
      qReader = a.trainEncoder ? loadBert(r.dir) : reader;
    } else {
      reader = qReader = new CausalLMEncoder(base.model);
      tok = base.tokenizer;
    }
    const common = {
      numSlots: T,
      outDim: d,
      decoderLayers: a.decoderLayers,
      decoderHeads: a.decoderHeads,
      dropout: a.dropout,
      ...(a.kind === "encoder-queries" ? { trainEncoder: a.trainEncoder } : { poolFirst: a.poolFirst }),
    };
    amortizer = new EncoderQueriesAmortizer(reader, tok, { ...common, maxLength: a.maxLength, seed: rng.u32() });
    questionEncoder = new EncoderQueriesAmortizer(qReader, tok, {
      ...common,
      maxLength: config.questionMaxLength,
      seed: rng.u32(),
    });
  } else if (a.kind === "lm-window") {
    amortizer = new WindowEntryEncoder(base.model, base.tokenizer, {
      role: "document",
      window: a.window,
      maxLength: a.window,
    });
    questionEncoder = new WindowEntryEncoder(base.model, base.tokenizer, {
      role: "question",
      window: a.window,
      maxLength: config.questionMaxLength,
    });
  } else if (a.kind === "decoder-only") {
    // Separate LM instances: the amortizer and question encoder each read with their own (possibly trained) copy.
    // The base LM's adapter is the base LM's alone: the amortizer's LM loads without it.
    const lmA = await loadBase(a.model, { cacheDir: opts.cacheDir });
    const lmQ = a.trainLM ? await loadBase(a.model, { cacheDir: opts.cacheDir }) : lmA;
    const common = { numSlots: T, outDim: d, trainLM: a.trainLM };
    amortizer = new DecoderOnlyAmortizer(lmA.model, lmA.tokenizer, {
      ...common,
      maxLength: a.maxLength,
      seed: rng.u32(),
    });
    questionEncoder = new DecoderOnlyAmortizer(lmQ.model, lmQ.tokenizer, {
      ...common,
      maxLength: config.questionMaxLength,
      seed: rng.u32(),
    });
  } else {
    const r = await resolveModel(a.model, { cacheDir: opts.cacheDir });
    const tok = tokenizerFromHfDir(r.dir);
    amortizer = new T5Amortizer(loadT5(r.dir, { lmHead: "none" }), tok, {
      numSlots: T,
      outDim: d,
      maxLength: a.maxLength,
      maskEncoder: a.maskEncoder,
      seed: rng.u32(),
    });
    questionEncoder = new T5Amortizer(loadT5(r.dir, { lmHead: "none" }), tok, {
      numSlots: T,
      outDim: d,
      maxLength: config.questionMaxLength,
      maskEncoder: a.maskEncoder,
      seed: rng.u32(),
    });
  }
  const aggregator = createAggregator(config, d, new Rng(rng.u32()));
  const m = config.modulation;
  const modulation =
    m.kind === "tokens"
      ? new TokensModulation(base.model, base.tokenizer, { before: m.before, after: m.after })
      : m.kind === "soft-prompt"
        ? new SoftPromptModulation(base.model, d, {
            rng: new Rng(rng.u32()),
            numTokens: T,
            gain: m.softGain * embeddingRms(base.model),
            base: neutralEmbeddings(base.model, base.tokenizer, T),
          })
        : createModulation(
            base.model,
            d,
            m.kind === "lora"
              ? { kind: "lora", rank: m.rank, alpha: m.alpha, hidden: m.hidden, rng: new Rng(rng.u32()) }
              : { kind: m.kind, numPrefixTokens: m.numPrefixTokens, hidden: m.hidden, rng: new Rng(rng.u32()) },
          );
  const mac = new MacModel({
    base: base.model,
    baseTokenizer: base.tokenizer,
    amortizer,
    questionEncoder,
    aggregator,
    modulation,
  });
  mac.maxQaLength = config.maxQaLength;
  mac.qaTemplate = config.qaTemplate;
  return mac;
}

/** The config saved beside a checkpoint, if any. */
export const configPathIn = (dir: string): string | null =>
  existsSync(join(dir, "config.json")) ? join(dir, "config.json") : null;

/** The aggregation network of a configuration, for an LM of width d. */
export function createAggregator(config: MacConfig, d: number, rng: Rng): MemoryAggregator {
  const g = config.aggregator;
  return g.kind === "select"
    ? new SelectAggregator(d, { rank: g.rank, lexicalGain: g.lexicalGain, rng })
    : new Aggregator(d, { ...g, rng });
}

/** The input embeddings (T, C) of a neutral preamble, cycled to T tokens: the soft prompt's starting point. */
function neutralEmbeddings(lm: CausalLM, tokenizer: Tokenizer, T: number): Tensor | undefined {
  const w = inputEmbeddingTable(lm);
  if (!w) return undefined;
  const ids = tokenizer.encode("Here is some background information.\n\n", { addSpecialTokens: false });
  const C = lm.hiddenSize;
  const out = Tensor.zeros([T, C]);
  for (let t = 0; t < T; t++)
    out.data.set(w.data.subarray(ids[t % ids.length]! * C, (ids[t % ids.length]! + 1) * C), t * C);
  return out;
}

/** RMS of the LM's input embedding table: the scale soft tokens should start at. */
function embeddingRms(lm: CausalLM): number {
  const w = inputEmbeddingTable(lm);
  if (!w) return 1;
  let s = 0;
  for (let i = 0; i < w.data.length; i++) s += w.data[i]! * w.data[i]!;
  return Math.sqrt(s / w.data.length);
}
