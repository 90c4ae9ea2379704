/** `mac-lm generate`: load a causal LM and its tokenizer, continue a prompt, print the continuation(s). */
import { MacLmError } from "../../errors.js";
import { type GenerateOptions, MAC_DECODING, generateText } from "../../generate/index.js";
import { describeResolved, resolveModel } from "../../hub/pull.js";
import { openGguf } from "../../io/gguf.js";
import { loadCausalLM } from "../../models/load.js";
import { type Tokenizer, tokenizerFromGguf, tokenizerFromHfDir } from "../../tokenizers/index.js";
import type { CliIO } from "../main.js";
import { formatSeconds } from "./progress.js";

export interface GenerateCommandOptions {
  model: string;
  prompt: string;
  maxNewTokens: number;
  beams: number;
  beamGroups: number;
  diversityPenalty?: number;
  lengthPenalty: number;
  numReturn: number;
  mac?: boolean;
  ids?: boolean;
  specialTokens: boolean;
  cache?: string;
}

export async function run(opts: GenerateCommandOptions, io: CliIO): Promise<void> {
  const resolved = await resolveModel(opts.model, opts.cache !== undefined ? { cacheDir: opts.cache } : {});
  const t0 = performance.now();
  const gguf = resolved.weights !== null && resolved.weights.toLowerCase().endsWith(".gguf") ? resolved.weights : null;
  const model = loadCausalLM(gguf ?? resolved.dir);
  try {
    let tokenizer: Tokenizer;
    try {
      tokenizer = gguf !== null ? tokenizerFromGguf(openGguf(gguf)) : tokenizerFromHfDir(resolved.dir);
    } catch (e) {
      throw new MacLmError("MACLM_BAD_CHECKPOINT", `cannot load a tokenizer: ${(e as Error).message}`, { cause: e });
    }
    const loaded = performance.now();
    const decoding: GenerateOptions = opts.mac
      ? { ...MAC_DECODING, numReturnSequences: opts.numReturn }
      : {
          maxNewTokens: opts.maxNewTokens,
          numBeams: opts.beams,
          numBeamGroups: opts.beamGroups,
          ...(opts.diversityPenalty !== undefined ? { diversityPenalty: opts.diversityPenalty } : {}),
          lengthPenalty: opts.lengthPenalty,
          numReturnSequences: opts.numReturn,
        };
    const results = generateText(model, tokenizer, opts.prompt, { ...decoding, addSpecialTokens: opts.specialTokens });
    const secs = (performance.now() - loaded) / 1000;
    for (const r of results) io.stdout.write(`${opts.ids ? r.ids.join(" ") : r.text}\n`);
    const n = results[0]?.ids.length ?? 0;
    io.stderr.write(
      `${model.modelType} from ${describeResolved(resolved)} loaded in ${formatSeconds((loaded - t0) / 1000)}; ` +
        `${n} new token(s) in ${formatSeconds(secs)}${decoding.numBeams && decoding.numBeams > 1 ? ` (${decoding.numBeams} beams${(decoding.numBeamGroups ?? 1) > 1 ? `, ${decoding.numBeamGroups} groups` : ""})` : ""}\n`,
    );
  } finally {
    model.dispose();
  }
}
