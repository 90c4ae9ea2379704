/**
 * Document retrievers for the retrieval baselines (mac-reference §6.2: BM25, and a dense retriever in place of
 * Contriever/DPR) and for BM25 + MAC: an index that grows with the stream and returns the top-k documents for a
 * question.
 *
 *   const r = await createRetriever("bm25");
 *   r.add(stream.docs);
 *   const [best] = r.search("Who won the Best Pie contest?", 1);
 *   r.dispose();
 *
 * BM25: SQLite FTS5 in memory (better-sqlite3), ranked by FTS5's bm25() (k1 1.2, b 0.75), tokenised by
 * `porter unicode61 remove_diacritics 2` (lowercase, accents removed, Porter stems). A question becomes the OR of its
 * distinct word tokens (Unicode letters, digits and marks), each quoted, so no query syntax (quotes, NEAR, AND/OR/
 * NOT, *, ^, parentheses, column filters) can come from the question; common English function words are dropped
 * unless nothing else is left. A question without any word token retrieves nothing.
 *
 * Dense: sentence-transformers all-MiniLM-L6-v2 (src/models/bert): [CLS] text [SEP] truncated to 256 tokens (the
 * model's max_seq_length), mean pooling over the attention mask, L2 normalisation; documents are embedded in batches
 * of similar length, and the top-k by cosine similarity (dot product of unit vectors) are returned.
 *
 * Both return fewer than k documents only when fewer are indexed (or, for BM25, match any term); ties keep the
 * order documents were added in. Adding a document whose id is already indexed does nothing.
 */
import Database from "better-sqlite3";
import { MacLmError } from "../../errors.js";
import { resolveModel } from "../../hub/pull.js";
import type { BertModel } from "../../models/bert/model.js";
import { loadBert } from "../../models/bert/weights.js";
import { Tensor, noGrad, scope } from "../../tensor/index.js";
import { type Tokenizer, tokenizerFromHfDir } from "../../tokenizers/index.js";
import type { StreamDoc } from "../stream.js";
import type { ProgressFn } from "./types.js";

export type RetrieverKind = "bm25" | "dense";

export interface Retriever {
  readonly kind: RetrieverKind;
  /** Documents indexed so far. */
  readonly size: number;
  /** Indexes more documents (appends; ids already indexed are skipped). */
  add(docs: readonly StreamDoc[], progress?: ProgressFn): void;
  /** The top-k documents for a query, best first. */
  search(query: string, k: number): StreamDoc[];
  /** search() for many queries (batched where the retriever can batch). */
  searchMany(queries: readonly string[], k: number, progress?: ProgressFn): StreamDoc[][];
  /**
   * The score the ranking orders by (higher is better) of each named document for a query: BM25's (0 for a
   * document sharing no query term) or the cosine similarity. Ids that are not indexed are an error.
   */
  scoresOf(query: string, ids: readonly string[]): number[];
  dispose(): void;
}

function checkK(op: string, k: number): void {
  if (!Number.isInteger(k) || k < 1)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: k must be an integer >= 1, got ${k}`);
}

/** The row of an indexed document id; an id that is not indexed is an error naming it. */
function rowOf(rows: ReadonlyMap<string, number>, id: string, op: string): number {
  const r = rows.get(id);
  if (r === undefined) throw new MacLmError("MACLM_BAD_ARGUMENT", `${op}: no document "${id}" is indexed`);
  return r;
}

/** The documents whose ids are not in `ids`, each id once (first occurrence). */
function unseen(docs: readonly StreamDoc[], ids: ReadonlyMap<string, number>): StreamDoc[] {
  const batch = new Set<string>();
  return docs.filter((d) => !ids.has(d.id) && !batch.has(d.id) && (batch.add(d.id), true));
}

// ---- BM25 --------------------------------------------------------------------------------------------------

/** Function words dropped from BM25 queries (they would only add near-zero-IDF terms). */
const STOPWORDS = new Set(
  (
    "a an and are as at be been being but by can could did do does for from had has have he her his how i if in " +
    "into is it its me my of on or our she so than that the their them then there these they this those to was " +
    "we were what when where which who whom whose why will with would you your"
  ).split(" "),
);

/** The FTS5 MATCH expression for a free-text query: its distinct word tokens, quoted, OR-ed; null if none. */
export function bm25Query(text: string): string | null {
  const words = [...new Set((text.normalize("NFC").match(/[\p{L}\p{N}\p{M}]+/gu) ?? []).map((w) => w.toLowerCase()))];
  const content = words.filter((w) => !STOPWORDS.has(w));
  const terms = content.length > 0 ? content : words;
  if (terms.length === 0) return null;
  return terms.map((t) => `"${t.replace(/"/g, '""')}"`).join(" OR ");
}

export class Bm25Retriever implements Retriever {
  readonly kind = "bm25" as const;
  #db: Database.Database | null;
  readonly #docs: StreamDoc[] = [];
  /** Each indexed id's row in #docs (and, for BM25, its rowid). */
  readonly #rows = new Map<string, number>();
  readonly #insert: Database.Statement<[number, string]>;
  readonly #query: Database.Statement<[string, number], { rowid: number; rank: number }>;
  readonly #rank: Database.Statement<[string, string], { rowid: number; rank: number }>;

  constructor() {
    this.#db = new Database(":memory:");
    this.#db.exec(`CREATE VIRTUAL TABLE docs USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2')`);
    this.#insert = this.#db.prepare("INSERT INTO docs(rowid, text) VALUES (?, ?)");
    this.#query = this.#db.prepare(
      "SELECT rowid, bm25(docs) AS rank FROM docs WHERE docs MATCH ? ORDER BY rank, rowid LIMIT ?",
    );
    this.#rank = this.#db.prepare(
      "SELECT rowid, bm25(docs) AS rank FROM docs WHERE docs MATCH ? AND rowid IN (SELECT value FROM json_each(?))",
    );
  }

  get size(): number {
    return this.#docs.length;
  }

  #open(op: string): Database.Database {
    if (!this.#db) throw new MacLmError("MACLM_DISPOSED", `bm25 retriever: ${op} after dispose()`);
    return this.#db;
  }

  add(docs: readonly StreamDoc[], progress?: ProgressFn): void {
    const db = this.#open("add");
    const fresh = unseen(docs, this.#rows);
    db.transaction(() => {
      for (const d of fresh) {
        this.#insert.run(this.#docs.length, d.text);
        this.#rows.set(d.id, this.#docs.length);
        this.#docs.push(d);
      }
    })();
    progress?.(docs.length, docs.length);
  }

  search(query: string, k: number): StreamDoc[] {
    return this.scored(query, k).map((r) => r.doc);
  }

  /** search() with each document's BM25 score (FTS5's bm25() negated: higher is better). */
  scored(query: string, k: number): { doc: StreamDoc; score: number }[] {
    checkK("bm25 search", k);
    this.#open("search");
    const match = bm25Query(query);
    if (match === null) return [];
    return this.#query.all(match, k).map((r) => ({ doc: this.#docs[r.rowid]!, score: -r.rank }));
  }

  scoresOf(query: string, ids: readonly string[]): number[] {
    this.#open("scoresOf");
    const rows = ids.map((id) => rowOf(this.#rows, id, "bm25 scoresOf"));
    const match = bm25Query(query);
    if (match === null) return rows.map(() => 0);
    const found = new Map(this.#rank.all(match, JSON.stringify(rows)).map((r) => [r.rowid, -r.rank]));
    return rows.map((r) => found.get(r) ?? 0);
  }

  searchMany(queries: readonly string[], k: number, progress?: ProgressFn): StreamDoc[][] {
    const out = queries.map((q) => this.search(q, k));
    progress?.(queries.length, queries.length);
    return out;
  }

  dispose(): void {
    this.#db?.close();
    this.#db = null;
  }
}

// ---- dense -------------------------------------------------------------------------------------------------

export interface DenseRetrieverOptions {
  /** Tokens per text, [CLS] and [SEP] included (default 256, all-MiniLM-L6-v2's max_seq_length). */
  maxLength?: number;
  /** Texts per forward pass (default 16). */
  batchSize?: number;
  /** dispose() also disposes the encoder (default false; true when createRetriever loaded it). */
  ownsEncoder?: boolean;
}

export class DenseRetriever implements Retriever {
  readonly kind = "dense" as const;
  readonly dim: number;
  readonly maxLength: number;
  readonly batchSize: number;
  readonly #docs: StreamDoc[] = [];
  /** Each indexed id's row in #docs (and, for BM25, its rowid). */
  readonly #rows = new Map<string, number>();
  #emb: Float32Array = new Float32Array(0); // (capacity, dim) unit rows; the first size rows are used
  #disposed = false;

  constructor(
    readonly encoder: BertModel,
    readonly tokenizer: Tokenizer,
    private readonly opts: DenseRetrieverOptions = {},
  ) {
    this.dim = encoder.hiddenSize;
    this.maxLength = opts.maxLength ?? 256;
    this.batchSize = opts.batchSize ?? 16;
    if (tokenizer.clsId === null || tokenizer.sepId === null)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        "dense retriever: the tokenizer has no [CLS]/[SEP] token (not a BERT tokenizer)",
      );
    if (!(Number.isInteger(this.maxLength) && this.maxLength >= 3))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `dense retriever: maxLength must be an integer >= 3, got ${this.maxLength}`,
      );
    if (!(Number.isInteger(this.batchSize) && this.batchSize >= 1))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `dense retriever: batchSize must be an integer >= 1, got ${this.batchSize}`,
      );
  }

  get size(): number {
    return this.#docs.length;
  }

  #check(op: string): void {
    if (this.#disposed) throw new MacLmError("MACLM_DISPOSED", `dense retriever: ${op} after dispose()`);
  }

  /** Unit sentence embeddings (N, dim), row i for texts[i]; batches hold texts of similar length. */
  embed(texts: readonly string[], progress?: ProgressFn): Float32Array {
    this.#check("embed");
    const tok = this.tokenizer;
    const body = this.maxLength - 2;
    const rows = texts.map((t) => [
      tok.clsId!,
      ...tok.encode(t, { addSpecialTokens: false }).slice(0, body),
      tok.sepId!,
    ]);
    const order = rows.map((_, i) => i).sort((a, b) => rows[a]!.length - rows[b]!.length || a - b);
    const out = new Float32Array(texts.length * this.dim);
    const padId = tok.padId ?? 0;
    for (let s = 0; s < order.length; s += this.batchSize) {
      const batch = order.slice(s, s + this.batchSize);
      const L = Math.max(...batch.map((i) => rows[i]!.length));
      const ids = new Int32Array(batch.length * L).fill(padId);
      const mask = new Float32Array(batch.length * L);
      batch.forEach((i, b) => {
        rows[i]!.forEach((id, t) => {
          ids[b * L + t] = id;
          mask[b * L + t] = 1;
        });
      });
      noGrad(() =>
        scope(() => {
          const e = this.encoder.sentenceEmbedding(
            Tensor.from(ids, [batch.length, L]),
            Tensor.from(mask, [batch.length, L]),
          ); // (B, dim)
          const data = e.data;
          batch.forEach((i, b) => out.set(data.subarray(b * this.dim, (b + 1) * this.dim), i * this.dim));
        }),
      );
      progress?.(Math.min(s + this.batchSize, order.length), order.length);
    }
    return out;
  }

  add(docs: readonly StreamDoc[], progress?: ProgressFn): void {
    this.#check("add");
    const fresh = unseen(docs, this.#rows);
    if (fresh.length === 0) {
      progress?.(docs.length, docs.length);
      return;
    }
    const emb = this.embed(
      fresh.map((d) => d.text),
      progress,
    );
    const n = this.#docs.length;
    const need = (n + fresh.length) * this.dim;
    if (need > this.#emb.length) {
      const grown = new Float32Array(Math.max(need, 2 * this.#emb.length));
      grown.set(this.#emb.subarray(0, n * this.dim));
      this.#emb = grown;
    }
    this.#emb.set(emb, n * this.dim);
    for (const d of fresh) {
      this.#rows.set(d.id, this.#docs.length);
      this.#docs.push(d);
    }
  }

  scoresOf(query: string, ids: readonly string[]): number[] {
    this.#check("scoresOf");
    const rows = ids.map((id) => rowOf(this.#rows, id, "dense scoresOf"));
    const q = this.embed([query]);
    return rows.map((n) => {
      let s = 0;
      for (let c = 0; c < this.dim; c++) s += q[c]! * this.#emb[n * this.dim + c]!;
      return s;
    });
  }

  /** A copy of the stored unit embedding of an indexed document (undefined if the id is not indexed). */
  embeddingOf(id: string): Float32Array | undefined {
    const n = this.#rows.get(id) ?? -1;
    return n < 0 ? undefined : this.#emb.slice(n * this.dim, (n + 1) * this.dim);
  }

  search(query: string, k: number): StreamDoc[] {
    return this.searchMany([query], k)[0]!;
  }

  searchMany(queries: readonly string[], k: number, progress?: ProgressFn): StreamDoc[][] {
    checkK("dense search", k);
    this.#check("search");
    if (queries.length === 0) return [];
    const q = this.embed(queries);
    const N = this.#docs.length;
    const D = this.dim;
    const scores = new Float64Array(N);
    const out = queries.map((_, qi) => {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let c = 0; c < D; c++) s += q[qi * D + c]! * this.#emb[n * D + c]!;
        scores[n] = s;
      }
      return topK(scores, Math.min(k, N)).map((n) => this.#docs[n]!);
    });
    progress?.(queries.length, queries.length);
    return out;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.opts.ownsEncoder) this.encoder.dispose();
  }
}

/** Indices of the k largest scores, best first; ties by lower index. */
function topK(scores: Float64Array, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (best.length === k && s <= scores[best[k - 1]!]!) continue;
    if (best.length < k) best.push(i);
    else best[k - 1] = i;
    for (let j = best.length - 1; j > 0 && scores[best[j - 1]!]! < s; j--) {
      best[j] = best[j - 1]!;
      best[j - 1] = i;
    }
  }
  return best;
}

// ---- factory -----------------------------------------------------------------------------------------------

export interface CreateRetrieverOptions extends Omit<DenseRetrieverOptions, "ownsEncoder"> {
  /** Dense: the sentence encoder, a registry name or a folder (default "all-minilm-l6-v2"). */
  encoder?: string;
  cacheDir?: string;
}

export async function createRetriever(kind: RetrieverKind, opts: CreateRetrieverOptions = {}): Promise<Retriever> {
  if (kind === "bm25") return new Bm25Retriever();
  if (kind === "dense") {
    const r = await resolveModel(opts.encoder ?? "all-minilm-l6-v2", { cacheDir: opts.cacheDir });
    const tokenizer = tokenizerFromHfDir(r.dir);
    const encoder = loadBert(r.dir, { freeze: true });
    return new DenseRetriever(encoder, tokenizer, { ...opts, ownsEncoder: true });
  }
  throw new MacLmError("MACLM_BAD_ARGUMENT", `createRetriever: kind must be bm25 or dense, got "${String(kind)}"`);
}
