// Tokenizers: one interface over byte-level BPE (GGUF metadata, tokenizer.json, vocab.json + merges.txt),
// WordPiece (tokenizer.json, vocab.txt) and SentencePiece unigram (tokenizer.json, spiece.model).
export {
  type Tokenizer,
  type TokenizerKind,
  type EncodeOptions,
  type DecodeOptions,
  HfTokenizer,
  fixTokenizerJson,
} from "./tokenizer.js";
export { tokenizerFromGguf, tokenizerJsonFromGguf, ggufPreTokenizers, type GgufMetadataSource } from "./gguf.js";
export { tokenizerFromHfDir } from "./hf-dir.js";
export { bertTokenizerJson, parseVocabTxt, type BertOptions } from "./wordpiece.js";
export {
  parseSentencePieceModel,
  sentencePieceTokenizerJson,
  t5TokenizerJson,
  sentencePieceNormalizer,
  sentencePieceDecoder,
  type SentencePieceModel,
} from "./sentencepiece.js";
export { Charsmap } from "./charsmap.js";
export { WordTokenizer, type WordTokenizerOptions } from "./word.js";
export { tokenSpans } from "./offsets.js";
