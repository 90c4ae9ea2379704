/** Evaluation streams (QaStream) from the data files mac-lm reads; see each loader's file comment. */
export {
  archivalQaStream,
  camelsCsvStream,
  type CamelsCsvFormat,
  type CamelsCsvOptions,
  streamingQaStream,
} from "./camels-csv.js";
export { type DocRow, type QaRow, streamFromRows, type StreamFromRowsOptions } from "./dedup.js";
export {
  DEFAULT_SQUAD_SPLIT,
  squadSplitArticles,
  squadStream,
  type SquadStreamOptions,
  type SquadStreamSplit,
} from "./squad.js";
export { syntheticQaStream } from "./synthetic.js";
