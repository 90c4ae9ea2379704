/**
 * mac-lm: keep a language model up to date with a stream of documents, without fine-tuning it (MAC, Tack et al.
 * 2024). The package's one entry point.
 *
 *   import { Mac } from "mac-lm";
 *   const mac = await Mac.load("checkpoints/mac-default", { bank: "bank/" });
 *   await mac.adapt([{ id: "doc-1", text: "…" }]);
 *   const { answer, sources } = await mac.ask("…");
 *   await mac.close();
 *
 * Below Mac, the pieces it is built of are exported for those who need them: the memory bank, MAC checkpoints and
 * models, provenance, text generation, the model cache, tensors and errors.
 */
export {
  Mac,
  DEFAULT_GROUP_SIZE,
  type AdaptOptions,
  type AdaptResult,
  type AskOptions,
  type AskResult,
  type ChosenWindow,
  type AskStream,
  type AskTimings,
  type DecodingChoice,
  type MacDocument,
  type MacFromModelOptions,
  type MacLoadOptions,
  type Source,
} from "./api/mac.js";
export { snippetFor } from "./api/snippet.js";
export { MacLmError, ShapeError, type ErrorCode } from "./errors.js";

// The HTTP server (`mac-lm serve`) over a Mac.
export { buildServer, type MacServer, type ServerOptions } from "./server/app.js";
export { serve, type RunningServer, type ServeOptions } from "./server/serve.js";
export { DEFAULT_LIMITS, type ServeLimits } from "./server/limits.js";

// The memory bank.
export {
  MemoryBank,
  BANK_SCHEMA_VERSION,
  type AppendOptions,
  type BankDType,
  type BankDocumentInfo,
  type BankDocumentInput,
  type BankEntryInfo,
  type BankEntryInput,
  type JsonObject,
  type JsonValue,
  type MemoryBankConfig,
  type OpenMemoryBankOptions,
} from "./mac/memory/bank.js";

// MAC models, checkpoints, aggregation and provenance.
export { MacModel, type AggregationMode, type QaExample } from "./mac/model.js";
export { loadMac, exportMac, checkpointFingerprint, weightsFolder } from "./mac/io.js";
export { buildMac, type BuildOptions } from "./mac/build.js";
export {
  Aggregator,
  aggregateFull,
  aggregateHierarchical,
  aggregateHierarchicalAsync,
  type AttentionSink,
  type MemorySource,
} from "./mac/aggregate/index.js";
export { aggregateWithShares, hierarchicalShares, type SharesResult } from "./mac/provenance.js";

// Text generation over any causal LM, and the models.
export {
  generate,
  generateText,
  greedySearch,
  greedyTokens,
  beamSearch,
  MAC_DECODING,
  type GenerateOptions,
  type GenerateOutput,
  type GenerateTextOptions,
  type GeneratedText,
} from "./generate/index.js";
export { loadCausalLM, type LoadCausalLMOptions } from "./models/load.js";
export type { CausalLM, Modulation } from "./models/types.js";
export type { Tokenizer } from "./tokenizers/index.js";

// The model cache.
export { pull, resolveModel, MODELS, type PullOptions, type PullResult } from "./hub/pull.js";
export { cacheDir, listCachedModels } from "./hub/cache.js";

// Tensors (what callers of the lower-level pieces need to hold and free results).
export { Tensor, scope, noGrad, keep, untrack, nextTurn, type DType, type Shape } from "./tensor/index.js";
