/**
 * MAC configurations (validated with zod): which base LM, which amortization network, and the sizes of the
 * trainable parts. DEFAULT_CONFIG is the CPU default: SmolLM2-135M-Instruct frozen, a frozen MiniLM encoder with a
 * small learned-query decoder as the amortizer and question encoder, two aggregation blocks, the shared-FFN prefix.
 */
import { readFileSync } from "node:fs";
import { basename, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { MacLmError } from "../errors.js";

const EncoderQueries = z.object({
  kind: z.literal("encoder-queries"),
  /** Registry name or path of a BERT-family encoder. */
  encoder: z.string().default("all-minilm-l6-v2"),
  maxLength: z.number().int().positive().default(256),
  decoderLayers: z.number().int().positive().default(1),
  decoderHeads: z.number().int().positive().optional(),
  dropout: z.number().min(0).max(1).default(0.1),
  trainEncoder: z.boolean().default(false),
});

const T5Amort = z.object({
  kind: z.literal("t5"),
  /** Registry name or path of a T5 checkpoint folder. */
  model: z.string(),
  maxLength: z.number().int().positive().default(512),
  maskEncoder: z.boolean().default(false),
});

const DecoderOnly = z.object({
  kind: z.literal("decoder-only"),
  /** Registry name or path of a causal LM (GPT-2 or Llama family). */
  model: z.string(),
  maxLength: z.number().int().positive().default(256),
  trainLM: z.boolean().default(false),
});

/**
 * The frozen base LM reads the text (its final hidden states, cacheable since it never changes), then the same
 * learned-query decoder and per-slot heads as "encoder-queries": the memory is built from the LM's own
 * understanding of the document. Questions are read the same way.
 */
const LmQueries = z.object({
  kind: z.literal("lm-queries"),
  maxLength: z.number().int().positive().default(256),
  decoderLayers: z.number().int().positive().default(2),
  decoderHeads: z.number().int().positive().optional(),
  dropout: z.number().min(0).max(1).default(0.1),
  /** The first decoder layer pools the LM's states without the learned queries' residual (EncoderQueriesOptions). */
  poolFirst: z.boolean().default(false),
});

/**
 * The extractive memory (with aggregator "select" and modulation "tokens"): each window of W tokens of a document
 * is an entry of its token embeddings and the frozen LM's mean state over it (amortize/window-entry.ts); a question
 * picks one entry and the LM reads its tokens. Entries have W + 1 rows whatever numSlots says.
 */
const LmWindow = z.object({
  kind: z.literal("lm-window"),
  /** W: tokens per window (documents are cut into overlapping windows of W). */
  window: z.number().int().min(2).default(32),
});

export const MacConfigSchema = z
  .object({
    version: z.literal(1).default(1),
    /** Registry name or path of the frozen base LM. */
    base: z.string().default("smollm2-135m-instruct"),
    /**
     * A LoRA adapter merged into the base LM at load (models/adapter.ts): a file beside config.json (or an absolute
     * path). Every caller of the checkpoint's base LM reads the adapted LM, the baselines of `mac-lm eval` included.
     */
    baseAdapter: z
      .string()
      .refine((p) => isAbsolute(p) || (p !== "" && basename(p) === p && p !== "." && p !== ".."), {
        message: "must be a file name beside config.json or an absolute path",
      })
      .optional(),
    /** T: latent tokens per memory entry. */
    numSlots: z.number().int().positive().default(8),
    amortizer: z
      .discriminatedUnion("kind", [EncoderQueries, T5Amort, DecoderOnly, LmQueries, LmWindow])
      .prefault({ kind: "encoder-queries" }),
    questionMaxLength: z.number().int().positive().default(64),
    aggregator: z
      .object({
        /** "attention": MAC's cross-attention blocks; "select": the extractive memory's choice of one entry. */
        kind: z.enum(["attention", "select"]).default("attention"),
        /** select: width of the dense score's projections. */
        rank: z.number().int().positive().default(64),
        /** select: initial weight of the shared-words evidence. */
        lexicalGain: z.number().min(0).default(1),
        numBlocks: z.number().int().positive().default(2),
        numHeads: z.number().int().positive().default(8),
        headDim: z.number().int().positive().default(96),
        dropout: z.number().min(0).max(1).default(0),
        /** Add the question tokens to the first block's readout (the reference does; see AggregatorOptions). */
        queryResidual: z.boolean().default(true),
      })
      .prefault({}),
    modulation: z
      .object({
        kind: z.enum(["prefix", "prefix-shared", "lora", "soft-prompt", "tokens"]).default("prefix-shared"),
        numPrefixTokens: z.number().int().positive().default(2),
        hidden: z.number().int().positive().default(768),
        rank: z.number().int().positive().default(8),
        alpha: z.number().positive().default(8),
        /**
         * soft-prompt: the latent's initial gain, as a multiple of the RMS of the LM's embeddings. 0 starts the memory
         * with no effect at all (as LoRA's B or ControlNet's zero convolutions): an untrained memory is then not noise
         * that training first learns to mute upstream (seen with 0.1: entries of unrelated documents went from 117 % apart
         * to 9 % in 50 steps), while the learned base embeddings take the answer format.
         */
        softGain: z.number().min(0).default(0.1),
        /**
         * tokens: text the LM reads before the chosen window and after it, so that the window sits where a prompt
         * puts its context (e.g. inside a chat template's user turn); the question's prompt (qaTemplate) follows.
         */
        before: z.string().default(""),
        after: z.string().default("\n\n"),
      })
      .prefault({}),
    /**
     * How a question is put to the base LM; "{question}" is replaced by it, and the answer follows after a space.
     * The reference feeds the raw question; an instruction-tuned LM such as SmolLM2-Instruct answers a bare question
     * with an immediate end-of-sequence, so the CPU default asks "Question: …\nAnswer:".
     */
    qaTemplate: z
      .string()
      .refine((t) => t.includes("{question}"), { message: 'must contain "{question}"' })
      .default("Question: {question}\nAnswer:"),
    /** Longest question + answer sequence fed to the base LM. */
    maxQaLength: z.number().int().positive().default(128),
    seed: z.number().int().default(0),
  })
  .superRefine((c, ctx) => {
    // The extractive memory's three parts only make sense together.
    const parts = [c.amortizer.kind === "lm-window", c.aggregator.kind === "select", c.modulation.kind === "tokens"];
    if (parts.some((p) => p) && !parts.every((p) => p))
      ctx.addIssue({
        code: "custom",
        path: ["aggregator", "kind"],
        message:
          'the extractive memory needs amortizer.kind "lm-window", aggregator.kind "select" and modulation.kind "tokens" together',
      });
  });

export type MacConfig = z.infer<typeof MacConfigSchema>;

export const DEFAULT_CONFIG: MacConfig = MacConfigSchema.parse({});

/** Validates a config object; errors name the field. */
export function parseConfig(json: unknown, source = "config"): MacConfig {
  const r = MacConfigSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${source}: ${i.path.join(".") || "(root)"}: ${i.message}`);
  }
  return r.data;
}

export function readConfig(file: string): MacConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new MacLmError("MACLM_BAD_FILE", `${file}: not readable JSON (${(e as Error).message})`);
  }
  return parseConfig(json, file);
}

/** Every model (registry name or path) a configuration depends on: the base LM first, then the amortizer's own. */
export function configModels(config: MacConfig): string[] {
  const a = config.amortizer;
  const own =
    a.kind === "encoder-queries" ? a.encoder : a.kind === "lm-queries" || a.kind === "lm-window" ? null : a.model;
  return own === null || own === config.base ? [config.base] : [config.base, own];
}

/** The base LM's adapter file of a configuration read from folder `dir` (null without one). */
export const baseAdapterPath = (config: MacConfig, dir: string): string | null =>
  config.baseAdapter === undefined ? null : resolve(dir, config.baseAdapter);

/** T: rows of a memory entry under a configuration (the extractive memory's are its window + 1). */
export const entrySlots = (config: MacConfig): number =>
  config.amortizer.kind === "lm-window" ? config.amortizer.window + 1 : config.numSlots;
