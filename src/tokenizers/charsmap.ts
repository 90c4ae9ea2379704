/**
 * SentencePiece's precompiled character map ("precompiled_charsmap" of a model's NormalizerSpec, e.g. nmt_nfkc):
 * the normalisation rules of a SentencePiece model, compiled into a double-array trie over UTF-8 bytes.
 *
 * Blob layout: u32 (little-endian) trie size in bytes; the trie (darts-clone double array, u32 units); then the
 * replacement strings, each NUL-terminated, addressed by the values stored in the trie's leaves.
 * Unit bits (darts-clone): has_leaf = bit 8; value = low 31 bits (of a leaf unit); label = bit 31 | low 8 bits;
 * offset = (unit >> 10) << ((unit & (1 << 9)) >> 6).
 *
 * Two ways of applying it, because the two reference implementations differ:
 *  - normalizeSentencePiece(): what SentencePiece itself does: at each position take the LONGEST key that
 *    matches the bytes ahead, else copy one UTF-8 character.
 *  - normalizeHfPrecompiled(): what HF `tokenizers`' Precompiled normalizer does (its tokenizer.json component,
 *    used by T5TokenizerFast & co): per grapheme cluster, if the cluster is under 6 bytes, look the cluster up
 *    and use the replacement of the SHORTEST matching key; otherwise (or when nothing matches) do the same per
 *    character, keeping characters without a match.
 * tokenizers.js' own Precompiled normalizer ignores the charsmap (it approximates nmt_nfkc with NFKC), which is
 * why this module exists.
 */
import { MacLmError } from "../errors.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Charsmap {
  private readonly units: Uint32Array;
  private readonly strings: Uint8Array;

  constructor(blob: Uint8Array, where = "precompiled_charsmap") {
    if (blob.length < 4)
      throw new MacLmError("MACLM_BAD_FILE", `${where}: charsmap of ${blob.length} bytes is too short`);
    const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = dv.getUint32(0, true);
    if (trieSize % 4 !== 0 || 4 + trieSize > blob.length)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `${where}: trie size ${trieSize} does not fit the ${blob.length}-byte charsmap`,
      );
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = dv.getUint32(4 + 4 * i, true);
    this.strings = blob.slice(4 + trieSize);
    if (this.units.length === 0) throw new MacLmError("MACLM_BAD_FILE", `${where}: empty trie`);
  }

  static fromBase64(b64: string, where?: string): Charsmap {
    return new Charsmap(new Uint8Array(Buffer.from(b64, "base64")), where);
  }

  /**
   * Keys of the trie that are prefixes of bytes[from, to): calls onMatch(length, value) for each, shortest first;
   * stops early when onMatch returns false. `stopAtNul` mirrors HF's search, which ends at a 0 byte.
   */
  private prefixSearch(
    bytes: Uint8Array,
    from: number,
    to: number,
    stopAtNul: boolean,
    onMatch: (len: number, value: number) => boolean,
  ): void {
    const u = this.units;
    let pos = offsetOf(u[0]!);
    for (let i = from; i < to; i++) {
      const c = bytes[i]!;
      if (stopAtNul && c === 0) return;
      pos ^= c;
      if (pos >= u.length) return;
      const unit = u[pos]!;
      if ((unit & 0x800000ff) >>> 0 !== c) return;
      pos ^= offsetOf(unit);
      if ((unit >>> 8) & 1) {
        if (pos >= u.length) return;
        if (!onMatch(i - from + 1, u[pos]! & 0x7fffffff)) return;
      }
    }
  }

  private replacement(value: number): Uint8Array {
    let end = value;
    while (end < this.strings.length && this.strings[end] !== 0) end++;
    return this.strings.subarray(value, end);
  }

  /** SentencePiece's charsmap pass (longest match; invalid UTF-8 cannot occur in a JS string's encoding). */
  normalizeSentencePiece(text: string): string {
    const bytes = encoder.encode(text);
    const out = new ByteSink(bytes.length);
    let i = 0;
    while (i < bytes.length) {
      let bestLen = 0;
      let bestValue = 0;
      this.prefixSearch(bytes, i, bytes.length, false, (len, value) => {
        if (len > bestLen) {
          bestLen = len;
          bestValue = value;
        }
        return true;
      });
      if (bestLen > 0) {
        out.push(this.replacement(bestValue));
        i += bestLen;
      } else {
        const n = utf8Length(bytes[i]!);
        out.push(bytes.subarray(i, i + n));
        i += n;
      }
    }
    return decoder.decode(out.bytes());
  }

  /** HF tokenizers' Precompiled normalizer (see the module comment). */
  normalizeHfPrecompiled(text: string): string {
    let out = "";
    for (const { segment } of graphemes().segment(text)) {
      const g = encoder.encode(segment);
      if (g.length < 6) {
        const r = this.firstMatch(g);
        if (r !== null) {
          out += decoder.decode(r);
          continue;
        }
      }
      for (const ch of segment) {
        const r = this.firstMatch(encoder.encode(ch));
        out += r === null ? ch : decoder.decode(r);
      }
    }
    return out;
  }

  private firstMatch(bytes: Uint8Array): Uint8Array | null {
    let value = -1;
    this.prefixSearch(bytes, 0, bytes.length, true, (_len, v) => {
      value = v;
      return false;
    });
    return value < 0 ? null : this.replacement(value);
  }
}

const offsetOf = (unit: number): number => (unit >>> 10) << ((unit & (1 << 9)) >>> 6);

function utf8Length(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xf0) return 4;
  if (lead >= 0xe0) return 3;
  return 2;
}

let segmenter: Intl.Segmenter | null = null;
function graphemes(): Intl.Segmenter {
  segmenter ??= new Intl.Segmenter(undefined, { granularity: "grapheme" });
  return segmenter;
}

/** A growable byte buffer. */
class ByteSink {
  private buf: Uint8Array;
  private n = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(Math.max(16, capacity));
  }
  push(b: Uint8Array): void {
    if (this.n + b.length > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.n + b.length));
      next.set(this.buf.subarray(0, this.n));
      this.buf = next;
    }
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.n);
  }
}
