/**
 * A character-level Tokenizer for tests with tiny models: pad 0, eos 1, then lowercase letters, digits, space and
 * a little punctuation (vocabSize 48). Unknown characters map to "?".
 */
import type { Tokenizer } from "../../src/tokenizers/index.js";

const CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 .,?'-:;!()";

export class CharTokenizer implements Tokenizer {
  readonly kind = "bpe" as const;
  readonly vocabSize = CHARS.length + 2;
  readonly bosId = null;
  readonly eosId = 1;
  readonly padId = 0;
  readonly unkId = null;
  readonly clsId = null;
  readonly sepId = null;
  readonly maskId = null;
  readonly specialIds: ReadonlySet<number> = new Set([0, 1]);

  encode(text: string): number[] {
    return [...text.toLowerCase()].map((c) => {
      const i = CHARS.indexOf(c);
      return 2 + (i >= 0 ? i : CHARS.indexOf("?"));
    });
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return ids
      .filter((i) => !(opts.skipSpecialTokens && this.specialIds.has(i)))
      .map((i) => (i === 0 ? "<pad>" : i === 1 ? "</s>" : (CHARS[i - 2] ?? "?")))
      .join("");
  }

  tokenize(text: string): string[] {
    return this.encode(text).map((i) => CHARS[i - 2]!);
  }

  idToToken(id: number): string | undefined {
    return id >= 2 ? CHARS[id - 2] : undefined;
  }

  tokenToId(token: string): number | undefined {
    const i = CHARS.indexOf(token);
    return i >= 0 ? i + 2 : undefined;
  }
}
