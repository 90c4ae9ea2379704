/**
 * Character offsets of tokens: for the ids of tok.encode(text), the [start, end) range of `text` that each token
 * covers (Hugging Face's offset_mapping with trim_offsets: leading whitespace excluded). tokenizers.js returns no
 * offsets, so they are recovered by decoding and counting non-whitespace characters, which is tokenizer-agnostic:
 *
 *   end of token i = position in `text` of the n-th non-whitespace character, n = non-whitespace characters in
 *   decode(ids[0..i]) (special tokens skipped);  start = position of the first character of its own.
 *
 * Exact for tokenizers whose decoding reproduces the text up to whitespace and letter case (byte-level BPE as in
 * GPT-2 and SmolLM2, SentencePiece, the word and character tokenizers). A token that ends inside a multi-byte
 * character (byte-level BPE splitting a UTF-8 sequence) covers that character too, so every token holding bytes of
 * it overlaps it (as Hugging Face's offsets for byte-level BPE). Special tokens, whitespace-only tokens and tokens decoding to nothing get an empty span [x, x) at the
 * end of the previous token. If decoding adds or drops non-whitespace characters (an <unk> piece, NFKC
 * normalisation) the following spans shift by that many characters; counts are clamped to the text.
 *
 * Cost: decodes are incremental from the last complete-character boundary, so O(tokens × window), not quadratic.
 */
import type { Tokenizer } from "./tokenizer.js";

const REPLACEMENT = 0xfffd;
const isSpace = (c: string): boolean => /\s/u.test(c);

/** Non-whitespace UTF-16 units of s, not counting a trailing run of U+FFFD (an incomplete UTF-8 sequence). */
function visible(s: string): { count: number; complete: boolean } {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === REPLACEMENT) end--;
  let count = 0;
  for (let i = 0; i < end; i++) if (!isSpace(s[i]!)) count++;
  return { count, complete: end === s.length };
}

/** [start, end) character span of each token of `ids` (the encoding of `text`) in `text`. */
export function tokenSpans(
  tok: Pick<Tokenizer, "decode">,
  text: string,
  ids: readonly number[],
  opts: { window?: number } = {},
): [number, number][] {
  const window = opts.window ?? 16;
  // pos[k]: index in text of the k-th non-whitespace UTF-16 unit.
  const pos: number[] = [];
  for (let i = 0; i < text.length; i++) if (!isSpace(text[i]!)) pos.push(i);
  const at = (n: number): number => (n <= 0 ? 0 : pos[Math.min(n, pos.length) - 1]! + 1);
  const spans: [number, number][] = [];
  let base = 0; // decoding restarts at ids[base], a complete-character boundary ...
  let baseCount = 0; // ... with this many non-whitespace units before it
  let prevCount = 0;
  for (let i = 0; i < ids.length; i++) {
    const v = visible(tok.decode(ids.slice(base, i + 1), { skipSpecialTokens: true }));
    const count = Math.min(pos.length, Math.max(prevCount, baseCount + v.count));
    // A token ending inside a character (bytes of it, not all) also covers that character.
    const end = v.complete || count >= pos.length ? count : count + 1;
    if (end > prevCount) spans.push([pos[prevCount]!, at(end)]);
    else spans.push([at(prevCount), at(prevCount)]);
    prevCount = count;
    if (v.complete && i + 1 - base >= window) {
      base = i + 1;
      baseCount = count;
    }
  }
  return spans;
}
