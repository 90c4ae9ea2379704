/**
 * MemoryBank: MAC's memory of amortized contexts, on disk, durable, organised by document.
 *
 * A document (an id unique within the bank, its text, an optional title and JSON metadata) owns one or more memory
 * entries: (T, d) latents from the amortization network (mac-reference.md §3.1), one per window of the document
 * (a short document has one window). The entries of all documents are read back in one stable order, the
 * aggregation order (by insertion; a replaced document's entries move to the end), whole (loadAll → (N, T, d)) or
 * in consecutive groups of M entries for hierarchical aggregation (§3.3), as float32 tensors; entryDocIds() gives
 * the document of each entry in that order, which is how provenance maps attention back to documents.
 *
 * Storage is one SQLite file (better-sqlite3), journal_mode=WAL with synchronous=FULL: a write returns after its
 * transaction is committed and the WAL is fsynced, so an acknowledged document survives a crash of the process (and
 * of the machine), and a crash mid-write leaves the bank as it was before that write (the transaction is atomic).
 *
 * Schema (version 3; PRAGMA application_id = 0x4d41434d "MACM", PRAGMA user_version = 3):
 *   meta(key TEXT PRIMARY KEY, value TEXT)   schema_version, T, d, dtype, model_fingerprint, created_at
 *   documents(doc_id TEXT PRIMARY KEY, title TEXT, text TEXT NOT NULL, metadata TEXT, added_at TEXT NOT NULL,
 *             n_entries INTEGER NOT NULL, text_sha256 TEXT)     one row per document; its rowid is insertion order
 *   entries(idx INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, win INTEGER NOT NULL, UNIQUE (doc_id, win))
 *                                                               small rows: id queries never touch the latents
 *   payloads(idx INTEGER PRIMARY KEY, data BLOB NOT NULL, checksum TEXT NOT NULL)
 *                                                               T·d little-endian float32 or IEEE half values
 *
 * Integrity: every payload carries a checksum written with it (sha256 of its idx, document id, window and bytes,
 * so a payload moved to another entry fails too) and every document its text's sha256. Every read checks them and
 * that the values are finite; a failure is MACLM_BANK_DAMAGED naming the bank, the document id and what failed (and
 * `mac-lm bank repair`, which recomputes entries from the stored text). Opening runs SQLite's quick_check; check()
 * runs the full integrity_check and reads every entry.
 * idx orders the entries (aggregation order); it grows with each insertion and has gaps where documents were
 * removed, so positions (0 … count−1, what readRange/groups/indexOf speak of) are ranks of idx, not idx itself.
 * Opening reads the meta table only, so it takes milliseconds whatever the bank's size.
 *
 * Version 1 banks (one entry per document, no stored text) and version 2 banks (no checksums) are migrated in
 * place, in one transaction, when opened for writing: a version 1 entry becomes a document with empty text (version 1
 * did not keep the text) and its metadata; checksums are computed from the values stored then. Opened readonly, an
 * older bank is refused with a message saying how to migrate it.
 *
 * float16 storage halves disk and memory; values are rounded to nearest even (f16.ts) and must be finite with
 * magnitude below 65520 (which would round to Infinity): writes reject anything else rather than store ±Inf/NaN.
 *
 * Ids: putDocument()/putDocuments() replace a stored document with the same id (idempotent ids); removeDocument()
 * deletes one with all its entries. The lower-level append() stores one-entry documents and, for a stored id,
 * throws MACLM_DUPLICATE_ID by default (nothing of that call is written) or skips it with { onDuplicate: "skip" }.
 *
 * Several processes may open one bank: SQLite serialises writers (a busy writer waits up to `timeoutMs`) and
 * readers see committed writes only.
 */
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { endianness, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { Tensor } from "../../tensor/tensor.js";
import { F16_OVERFLOW, decodeF16, encodeF16 } from "./f16.js";

export type BankDType = "float32" | "float16";

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** What every entry of a bank shares. Fixed when the bank is created. */
export interface MemoryBankConfig {
  /** Tokens per entry (the amortization network's number of output tokens). */
  T: number;
  /** Width of each token. */
  d: number;
  /** Storage precision of the latents (reads always return float32). */
  dtype: BankDType;
  /** Identifies the network that produced the latents (e.g. a checkpoint hash); null if not recorded. */
  modelFingerprint: string | null;
}

export interface OpenMemoryBankOptions {
  /** Required to create a bank; when opening an existing bank, checked against it if given. */
  T?: number;
  d?: number;
  /** Default "float32" for a new bank; checked against an existing bank if given. */
  dtype?: BankDType;
  /** Stored in a new bank; checked against an existing bank if given. */
  modelFingerprint?: string;
  /** Open an existing bank for reading only (default false). */
  readonly?: boolean;
  /** Create the bank if the file does not exist (default true unless readonly). */
  create?: boolean;
  /** How long a write waits for another process's write to finish (default 10 s). */
  timeoutMs?: number;
  /** Run SQLite's quick_check when opening (default true; it reads every page, ~1 s per GB). */
  quickCheck?: boolean;
}

/** A latent: a (T, d) or (1, T, d) float tensor, or T·d numbers in row-major order. */
export type LatentInput = Tensor | Float32Array | Float64Array | readonly number[];

/** A one-entry document for append(). */
export interface BankEntryInput {
  id: string;
  latent: LatentInput;
  metadata?: JsonObject;
  /** The document's text (stored so the entry can be recomputed; default empty). */
  text?: string;
  title?: string;
}

export interface BankEntryInfo {
  id: string;
  /** Position of the document's first entry in aggregation order. */
  index: number;
  metadata: JsonObject | null;
}

/** A document and its memory entries, for putDocument(). */
export interface BankDocumentInput {
  id: string;
  text: string;
  title?: string | null;
  meta?: JsonObject | null;
  /** Its entries, one per window: (n, T, d) or (T, d) for one; float32 or float64. */
  entries: Tensor;
}

/** A stored document (documents()). */
export interface BankDocumentInfo {
  id: string;
  title: string | null;
  /** Length of the stored text in UTF-16 code units (string length). */
  chars: number;
  /** Number of memory entries (windows). */
  entries: number;
  /** When it was (last) stored, ISO 8601. */
  addedAt: string;
  meta: JsonObject | null;
}

export interface AppendOptions {
  /** "error" (default): a stored id (or one repeated in the call) fails the whole call. "skip": keep the stored entry. */
  onDuplicate?: "error" | "skip";
}

export const BANK_SCHEMA_VERSION = 3;
const APPLICATION_ID = 0x4d41434d; // "MACM"
const BANK_DTYPES: readonly BankDType[] = ["float32", "float16"];
/** Rows per query when reading many entries (bounds the Buffers held at once). */
const READ_CHUNK = 256;

const bytesOf = (dtype: BankDType): number => (dtype === "float16" ? 2 : 4);

/** The checksum stored with a payload: binds its bytes to its place (idx), its document and its window. */
export function entryChecksum(idx: number, docId: string, win: number, data: Uint8Array): string {
  return createHash("sha256").update(`${idx}\0${docId}\0${win}\0`).update(data).digest("hex").slice(0, 32);
}

export const textChecksum = (text: string): string =>
  createHash("sha256").update(text, "utf8").digest("hex").slice(0, 32);

/** One problem found by check(): which document (and window) and what failed. */
export interface BankProblem {
  docId: string | null;
  window: number | null;
  problem: string;
}

/** A payload row as read back, with what its checksum binds it to. */
interface PayloadRow {
  idx: number;
  data: Buffer | null;
  checksum: string | null;
  doc_id: string | null;
  win: number | null;
}

function checkDim(value: unknown, field: string, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `memory bank ${path}: ${field} must be a positive integer, got ${String(value)}`,
    );
  return value;
}

interface DocRow {
  doc_id: string;
  title: string | null;
  chars: number;
  n_entries: number;
  added_at: string;
  metadata: string | null;
}

/** A document ready to be written: validated, metadata serialised, payloads encoded. */
interface EncodedDoc {
  id: string;
  title: string | null;
  text: string;
  metadata: string | null;
  payloads: Buffer[];
}

export class MemoryBank {
  readonly path: string;
  readonly config: Readonly<MemoryBankConfig>;
  readonly readonly: boolean;

  private db: Database.Database | null;
  /** A temporary copy read instead of a bank whose folder is read-only (removed on close). */
  private tempCopy: string | null = null;
  private readonly entrySize: number; // T·d
  private readonly payloadBytes: number;
  private readonly stmts: ReturnType<typeof prepare>;
  private readonly writeDocs: (docs: EncodedDoc[], onDuplicate: "replace" | "error" | "skip") => number[];
  private readonly removeTxn: (id: string) => number;

  private constructor(path: string, db: Database.Database, config: MemoryBankConfig, readonly: boolean) {
    this.path = path;
    this.db = db;
    this.config = Object.freeze({ ...config });
    this.readonly = readonly;
    this.entrySize = config.T * config.d;
    this.payloadBytes = this.entrySize * bytesOf(config.dtype);
    const s = (this.stmts = prepare(db));
    /** Removes a document's rows; returns how many entries it had (−1: not stored). */
    const remove = (id: string): number => {
      s.deletePayloads.run(id);
      const entries = s.deleteEntries.run(id).changes;
      return s.deleteDocument.run(id).changes > 0 ? entries : -1;
    };
    const write = db.transaction((docs: EncodedDoc[], onDuplicate: "replace" | "error" | "skip"): number[] => {
      const seen = new Set<string>();
      const positions: number[] = [];
      const now = new Date().toISOString();
      let count = s.count.get()!; // new entries go at the end: a document's position is the count before it
      let idx = s.nextIdx.get()!;
      for (const doc of docs) {
        if (seen.has(doc.id) && onDuplicate === "error")
          throw new MacLmError(
            "MACLM_DUPLICATE_ID",
            `memory bank ${this.path}: document id "${doc.id}" appears twice in this append; nothing of it was written`,
          );
        seen.add(doc.id);
        if (s.hasDocument.get(doc.id) !== undefined) {
          if (onDuplicate === "skip") {
            positions.push(this.position(doc.id)!);
            continue;
          }
          if (onDuplicate === "error")
            throw new MacLmError(
              "MACLM_DUPLICATE_ID",
              `memory bank ${this.path}: document id "${doc.id}" is already stored (index ${this.position(doc.id)}); nothing of this append was written (use onDuplicate: "skip" to keep stored entries)`,
            );
          count -= Math.max(0, remove(doc.id));
        }
        s.insertDocument.run(
          doc.id,
          doc.title,
          doc.text,
          doc.metadata,
          now,
          doc.payloads.length,
          textChecksum(doc.text),
        );
        positions.push(count);
        doc.payloads.forEach((p, w) => {
          s.insertEntry.run(idx, doc.id, w);
          s.insertPayload.run(idx, p, entryChecksum(idx, doc.id, w, p));
          idx++;
        });
        count += doc.payloads.length;
      }
      return positions;
    });
    this.writeDocs = (docs, onDuplicate) => this.writing(() => write.immediate(docs, onDuplicate));
    const removeTxn = db.transaction(remove);
    this.removeTxn = (id) => this.writing(() => removeTxn.immediate(id));
  }

  /**
   * Opens the bank at `path`, creating it if missing (then T and d are required). Throws MACLM_CONFIG_MISMATCH if
   * the bank exists with another T, d, dtype or model fingerprint than given, MACLM_BAD_FILE if the file is not a
   * memory bank (or one of a newer schema, or of version 1 opened readonly).
   */
  static open(path: string, opts: OpenMemoryBankOptions = {}): MemoryBank {
    if (endianness() !== "LE")
      throw new MacLmError("MACLM_BAD_ARGUMENT", "memory bank: big-endian hosts are not supported");
    const readonly = opts.readonly ?? false;
    const create = opts.create ?? !readonly;
    if (opts.dtype !== undefined && !BANK_DTYPES.includes(opts.dtype))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `memory bank ${path}: dtype must be "float32" or "float16", got ${String(opts.dtype)}`,
      );
    if (opts.T !== undefined) checkDim(opts.T, "T", path);
    if (opts.d !== undefined) checkDim(opts.d, "d", path);
    const exists = existsSync(path);
    if (!exists && !create)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `memory bank ${path} does not exist${readonly ? " (opened readonly)" : ""}`,
      );

    let db: Database.Database;
    let copy: string | null = null;
    try {
      db = new Database(path, { readonly, fileMustExist: !create, timeout: opts.timeoutMs ?? 10_000 });
      if (readonly) db.prepare("SELECT count(*) FROM sqlite_schema").get();
    } catch (e) {
      // A bank that may be read but not written (its folder or file read-only): SQLite cannot create the WAL's
      // shared-memory file beside it. With no WAL content pending, the file alone is the whole bank: read a copy.
      const wal = `${path}-wal`;
      if (!readonly || (existsSync(wal) && statSync(wal).size > 0))
        throw new MacLmError(
          "MACLM_BAD_FILE",
          `memory bank ${path}: cannot open${readonly ? " for reading" : " for writing"}: ${(e as Error).message}${/readonly|read-only|permission|unable to open/i.test((e as Error).message) ? " (check that you may read and write the bank's folder, or open it readonly)" : ""}`,
          { cause: e },
        );
      copy = mkdtempSync(join(tmpdir(), "mac-lm-bank-"));
      copyFileSync(path, join(copy, "bank.sqlite"));
      db = new Database(join(copy, "bank.sqlite"), { readonly: true, fileMustExist: true });
    }
    try {
      const config = readonly ? readConfig(db, path, "refuse-old") : initialise(db, path, opts);
      if (config === null)
        throw new MacLmError("MACLM_BAD_FILE", `memory bank ${path} is empty (no bank was created in it)`);
      if (opts.quickCheck ?? true) {
        const problems = db.pragma("quick_check(20)", { simple: false }) as { quick_check: string }[];
        if (problems.length !== 1 || problems[0]!.quick_check !== "ok")
          throw new MacLmError(
            "MACLM_BANK_DAMAGED",
            `memory bank ${path} is damaged (SQLite quick_check: ${problems
              .slice(0, 3)
              .map((p) => p.quick_check)
              .join(
                "; ",
              )}); run \`mac-lm bank repair -c CHECKPOINT -b ${dirname(path)}\` to rebuild it from the stored documents`,
          );
      }
      checkConfig(path, config, opts);
      const bank = new MemoryBank(path, db, config, readonly);
      bank.tempCopy = copy;
      return bank;
    } catch (e) {
      db.close();
      if (copy !== null) rmSync(copy, { recursive: true, force: true });
      if (e instanceof MacLmError) throw e;
      if (/readonly database|read-only/i.test((e as Error).message))
        throw new MacLmError(
          "MACLM_BAD_FILE",
          `memory bank ${path} cannot be written (${(e as Error).message}): check the permissions of the file and of its folder (ls -l); reading it (\`mac-lm ask\`) still works`,
          { cause: e },
        );
      const corrupt = /malformed|corrupt/i.test((e as Error).message);
      throw new MacLmError(
        corrupt ? "MACLM_BANK_DAMAGED" : "MACLM_BAD_FILE",
        `memory bank ${path}: not a readable memory bank: ${(e as Error).message}${corrupt ? `; \`mac-lm bank repair -c CHECKPOINT -b ${dirname(path)}\` recovers what can be read` : ""}`,
        { cause: e },
      );
    }
  }

  // ---- writing documents ----------------------------------------------------------------------------------

  /**
   * Stores a document with its entries in one transaction, replacing any stored document with the same id (and all
   * of its entries). Durable when it returns. Returns the position of its first entry in aggregation order.
   */
  putDocument(doc: BankDocumentInput): number {
    return this.putDocuments([doc])[0]!;
  }

  /** putDocument() for several documents in one transaction (all or none are stored; one fsync). */
  putDocuments(docs: readonly BankDocumentInput[]): number[] {
    this.writable("putDocuments");
    if (docs.length === 0) return [];
    return this.writeDocs(
      docs.map((d) => this.encodeDocument(d)),
      "replace",
    );
  }

  /** Removes a document and all its entries in one transaction; false if it was not stored. Durable when it returns. */
  removeDocument(id: string): boolean {
    this.writable("removeDocument");
    if (typeof id !== "string" || id.length === 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `memory bank ${this.path}: document id must be a non-empty string`);
    return this.removeTxn(id) >= 0;
  }

  // ---- writing one-entry documents (lower level) ------------------------------------------------------------

  /**
   * Appends one-entry documents (in one transaction: all or none are stored) and returns their positions (with
   * onDuplicate "skip", a skipped document's position is that of the stored one). Returns once the entries are
   * durable on disk. Every latent is validated before anything is written.
   */
  append(entries: BankEntryInput | readonly BankEntryInput[], opts: AppendOptions = {}): number[] {
    this.writable("append");
    const list = Array.isArray(entries) ? (entries as readonly BankEntryInput[]) : [entries as BankEntryInput];
    if (list.length === 0) return [];
    const rows = list.map((e) => this.encodeEntry(e));
    const onDuplicate = opts.onDuplicate ?? "error";
    if (onDuplicate !== "error" && onDuplicate !== "skip")
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `memory bank ${this.path}: onDuplicate must be "error" or "skip", got ${String(onDuplicate)}`,
      );
    return this.writeDocs(rows, onDuplicate);
  }

  /** Appends the rows of `latents` (n, T, d) under `ids` (n), in one transaction; see append(). */
  appendBatch(
    ids: readonly string[],
    latents: Tensor,
    metadata?: readonly (JsonObject | undefined)[],
    opts: AppendOptions = {},
  ): number[] {
    const { T, d } = this.config;
    if (latents.ndim !== 3 || latents.dim(1) !== T || latents.dim(2) !== d || latents.dim(0) !== ids.length)
      throw new ShapeError(
        "MemoryBank.appendBatch",
        `latents ${fmtShape(latents.shape)} do not match ${ids.length} ids of (T, d) = (${T}, ${d}) in ${this.path}`,
      );
    if (metadata !== undefined && metadata.length !== ids.length)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `MemoryBank.appendBatch: ${metadata.length} metadata for ${ids.length} ids`,
      );
    const data = floatData(latents, "MemoryBank.appendBatch");
    const n = this.entrySize;
    const entries = ids.map((id, i): BankEntryInput => {
      const m = metadata?.[i];
      return m === undefined
        ? { id, latent: data.subarray(i * n, (i + 1) * n) }
        : { id, latent: data.subarray(i * n, (i + 1) * n), metadata: m };
    });
    return this.append(entries, opts);
  }

  // ---- reading documents --------------------------------------------------------------------------------------

  /** The stored documents, in insertion order (a replaced document counts as inserted when it was replaced). */
  documents(): BankDocumentInfo[] {
    this.live("documents");
    return this.stmts.documents.all().map(toDocumentInfo);
  }

  /** One stored document's description, or undefined. */
  document(id: string): BankDocumentInfo | undefined {
    this.live("document");
    const row = this.stmts.documentById.get(id);
    return row === undefined ? undefined : toDocumentInfo(row);
  }

  /** Number of documents. */
  get documentCount(): number {
    this.live("documentCount");
    return this.stmts.documentCount.get()!;
  }

  /** A stored document's text (empty for documents stored without it), or undefined if it is not stored. */
  documentText(id: string): string | undefined {
    this.live("documentText");
    const row = this.stmts.documentText.get(id);
    if (row === undefined) return undefined;
    if (row.text_sha256 !== textChecksum(row.text))
      throw this.damaged(id, null, "its stored text does not match its checksum");
    return row.text;
  }

  /** The document id of every entry, in aggregation order (a document with several windows appears once per entry). */
  entryDocIds(): string[] {
    this.live("entryDocIds");
    return this.stmts.entryDocIds.all();
  }

  /** A document's entries (n, T, d) in window order, as float32. Throws if it is not stored. */
  documentEntries(id: string): Tensor {
    this.live("documentEntries");
    const rows = this.stmts.payloadsOf.all(id);
    if (rows.length === 0) throw this.missing([id]);
    const out = Tensor.empty([rows.length, this.config.T, this.config.d]);
    try {
      rows.forEach((r, i) => this.decodeInto(r, out.f32, i));
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  // ---- reading entries ------------------------------------------------------------------------------------------

  /** Number of entries (all windows of all documents). */
  get count(): number {
    this.live("count");
    return this.stmts.count.get()!;
  }

  /** Whether a document with this id is stored. */
  has(id: string): boolean {
    this.live("has");
    return this.stmts.hasDocument.get(id) !== undefined;
  }

  /** Position of the document's first entry in aggregation order, or undefined. */
  indexOf(id: string): number | undefined {
    this.live("indexOf");
    return this.position(id);
  }

  /** Document ids of entries [start, end) in aggregation order (default: all). */
  ids(start = 0, end?: number): string[] {
    this.live("ids");
    const stop = end ?? this.count;
    if (stop <= start) return [];
    return this.stmts.idPage.all(stop - start, start);
  }

  /** Id, position and metadata of the documents of entries [start, end) (default: all), in aggregation order. */
  list(start = 0, end?: number): BankEntryInfo[] {
    this.live("list");
    const stop = end ?? this.count;
    if (stop <= start) return [];
    return this.stmts.infoPage
      .all(stop - start, start)
      .map((r, i) => ({ id: r.doc_id, index: start + i, metadata: parseMeta(r.metadata) }));
  }

  /** Id, position and metadata of `id`, or undefined. */
  info(id: string): BankEntryInfo | undefined {
    this.live("info");
    const row = this.stmts.documentById.get(id);
    return row === undefined ? undefined : { id, index: this.position(id)!, metadata: parseMeta(row.metadata) };
  }

  /** Metadata of `id` (null when stored without); throws if `id` is not stored. */
  metadata(id: string): JsonObject | null {
    const info = this.info(id);
    if (info === undefined) throw this.missing([id]);
    return info.metadata;
  }

  /**
   * The latents of one-entry documents `ids`, in that order, as a float32 tensor (ids.length, T, d). Throws if any
   * id is missing or has several entries (use documentEntries()).
   */
  get(ids: readonly string[]): Tensor {
    this.live("get");
    const missing = ids.filter((id) => this.stmts.hasDocument.get(id) === undefined);
    if (missing.length > 0) throw this.missing(missing);
    const out = Tensor.empty([ids.length, this.config.T, this.config.d]);
    ids.forEach((id, i) => {
      const rows = this.stmts.payloadsOf.all(id);
      if (rows.length !== 1) {
        out.dispose();
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `memory bank ${this.path}: document "${id}" has ${rows.length} entries; get() reads one-entry documents (use documentEntries())`,
        );
      }
      try {
        this.decodeInto(rows[0]!, out.f32, i);
      } catch (e) {
        out.dispose();
        throw e;
      }
    });
    return out;
  }

  /**
   * Consecutive groups of (up to) M entries in aggregation order, as float32 tensors (M', T, d) with M' = M except
   * possibly the last. Covers the entries stored when iteration starts (documents removed meanwhile are skipped);
   * one group is in memory at a time. The caller owns each yielded tensor (dispose it, or iterate inside scope()).
   */
  *groups(M: number): Generator<Tensor, void, undefined> {
    if (!Number.isInteger(M) || M <= 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `MemoryBank.groups: M must be a positive integer, got ${M}`);
    this.live("groups");
    const last = this.stmts.maxIdx.get();
    if (last === null || last === undefined) return;
    let from = 0;
    for (;;) {
      const g = this.readFrom(from, last, M);
      if (g === null) return;
      from = g.nextIdx;
      yield g.tensor;
    }
  }

  /** Entries at positions [start, end) as a float32 tensor (end − start, T, d). */
  readRange(start: number, end: number): Tensor {
    this.live("readRange");
    const n = this.count;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > n)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `MemoryBank.readRange: [${start}, ${end}) is not a range of the ${n} entries of ${this.path}`,
      );
    if (end === start) return Tensor.empty([0, this.config.T, this.config.d]);
    const first = this.stmts.idxAt.get(start)!;
    const g = this.readFrom(first, Number.MAX_SAFE_INTEGER, end - start);
    if (g === null || g.tensor.dim(0) !== end - start) {
      g?.tensor.dispose();
      throw new MacLmError("MACLM_BAD_FILE", `memory bank ${this.path}: entries [${start}, ${end}) are incomplete`);
    }
    return g.tensor;
  }

  /** All entries as one float32 tensor (N, T, d), for full aggregation of small banks. */
  loadAll(): Tensor {
    return this.readRange(0, this.count);
  }

  /** Closes the file. Idempotent; any later use throws MACLM_DISPOSED. */
  close(): void {
    const db = this.db;
    this.db = null;
    db?.close();
    if (this.tempCopy !== null) rmSync(this.tempCopy, { recursive: true, force: true });
    this.tempCopy = null;
  }

  get closed(): boolean {
    return this.db === null;
  }

  toString(): string {
    const { T, d, dtype } = this.config;
    return `MemoryBank(${this.path}, T=${T}, d=${d}, ${dtype}${this.closed ? ", closed" : ""})`;
  }

  // ---- internals ------------------------------------------------------------------------------------------------

  private live(op: string): void {
    if (this.db === null)
      throw new MacLmError("MACLM_DISPOSED", `MemoryBank.${op}: memory bank ${this.path} is closed`);
  }

  /** Runs a write; an SQLite failure (read-only file, disk full, damage) becomes an error naming the bank. */
  private writing<R>(fn: () => R): R {
    try {
      return fn();
    } catch (e) {
      if (e instanceof MacLmError || !(e instanceof Error) || e.name !== "SqliteError") throw e;
      const readonly = /readonly|read-only/i.test(e.message);
      throw new MacLmError(
        /malformed|corrupt/i.test(e.message) ? "MACLM_BANK_DAMAGED" : "MACLM_BAD_FILE",
        `memory bank ${this.path} cannot be written (${e.message})${readonly ? ": check the permissions of the file and of its folder (ls -l); reading it (`mac-lm ask`) still works" : ""}; nothing of this write was stored`,
        { cause: e },
      );
    }
  }

  private writable(op: string): void {
    this.live(op);
    if (this.readonly)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `memory bank ${this.path} was opened readonly: cannot ${op}`);
  }

  private position(id: string): number | undefined {
    const idx = this.stmts.firstIdxOf.get(id);
    return idx === null || idx === undefined ? undefined : this.stmts.countBefore.get(idx)!;
  }

  /** Up to `limit` entries with fromIdx ≤ idx ≤ lastIdx, in order; null if there are none. */
  private readFrom(fromIdx: number, lastIdx: number, limit: number): { tensor: Tensor; nextIdx: number } | null {
    const rows: PayloadRow[][] = [];
    let got = 0;
    let next = fromIdx;
    while (got < limit) {
      const page = this.stmts.payloadPage.all(next, lastIdx, Math.min(READ_CHUNK, limit - got));
      if (page.length === 0) break;
      rows.push(page);
      got += page.length;
      next = page[page.length - 1]!.idx + 1;
    }
    if (got === 0) return null;
    const out = Tensor.empty([got, this.config.T, this.config.d]);
    let row = 0;
    try {
      for (const page of rows) for (const r of page) this.decodeInto(r, out.f32, row++);
    } catch (e) {
      out.dispose();
      throw e;
    }
    return { tensor: out, nextIdx: next };
  }

  private missing(ids: readonly string[]): MacLmError {
    const shown = ids
      .slice(0, 5)
      .map((id) => `"${id}"`)
      .join(", ");
    return new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `memory bank ${this.path}: no entry for id ${shown}${ids.length > 5 ? ` and ${ids.length - 5} more` : ""}`,
    );
  }

  private checkId(id: unknown): string {
    if (typeof id !== "string" || id.length === 0)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `memory bank ${this.path}: document id must be a non-empty string, got ${String(id)}`,
      );
    return id;
  }

  private encodeEntry(e: BankEntryInput): EncodedDoc {
    const id = this.checkId(e?.id);
    const where = `memory bank ${this.path}: entry "${id}"`;
    return {
      id,
      title: optionalString(e.title, `${where}: title`),
      text: e.text === undefined ? "" : requireString(e.text, `${where}: text`),
      metadata: encodeMeta(e.metadata, where),
      payloads: [this.encodeLatent(this.latentValues(e.latent, id), where)],
    };
  }

  private encodeDocument(doc: BankDocumentInput): EncodedDoc {
    const id = this.checkId(doc?.id);
    const where = `memory bank ${this.path}: document "${id}"`;
    const text = requireString(doc.text, `${where}: text`);
    const { T, d } = this.config;
    const e = doc.entries;
    if (!(e instanceof Tensor))
      throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: entries must be a Tensor (n, T, d)`);
    const ok =
      (e.ndim === 3 && e.dim(0) >= 1 && e.dim(1) === T && e.dim(2) === d) ||
      (e.ndim === 2 && e.dim(0) === T && e.dim(1) === d);
    if (!ok)
      throw new ShapeError(
        "MemoryBank.putDocument",
        `document "${id}": entries ${fmtShape(e.shape)} are not (n ≥ 1, T, d) = (n, ${T}, ${d}) of ${this.path}`,
      );
    const data = floatData(e, `MemoryBank.putDocument: document "${id}"`);
    const n = e.ndim === 3 ? e.dim(0) : 1;
    const size = this.entrySize;
    const payloads = Array.from({ length: n }, (_, w) =>
      this.encodeLatent(data.subarray(w * size, (w + 1) * size), `${where}, window ${w}`),
    );
    return {
      id,
      title: optionalString(doc.title, `${where}: title`),
      text,
      metadata: encodeMeta(doc.meta ?? undefined, where),
      payloads,
    };
  }

  private encodeLatent(values: Float32Array | Float64Array | readonly number[], where: string): Buffer {
    const overflow = this.config.dtype === "float16" ? F16_OVERFLOW : Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!(Math.abs(v) < overflow))
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `${where}: latent value ${v} at element ${i} is not ${this.config.dtype === "float16" ? "representable in float16 (|x| < 65520)" : "finite"}`,
        );
    }
    if (this.config.dtype === "float16") {
      const h = new Uint16Array(this.entrySize);
      encodeF16(values, h);
      return Buffer.from(h.buffer, h.byteOffset, h.byteLength);
    }
    const f = values instanceof Float32Array ? values.slice() : Float32Array.from(values);
    return Buffer.from(f.buffer, f.byteOffset, f.byteLength);
  }

  private latentValues(latent: LatentInput, id: string): Float32Array | Float64Array | readonly number[] {
    const { T, d } = this.config;
    if (latent instanceof Tensor) {
      const okShape =
        (latent.ndim === 2 && latent.dim(0) === T && latent.dim(1) === d) ||
        (latent.ndim === 3 && latent.dim(0) === 1 && latent.dim(1) === T && latent.dim(2) === d);
      if (!okShape)
        throw new ShapeError(
          "MemoryBank.append",
          `entry "${id}": latent ${fmtShape(latent.shape)} is not (T, d) = (${T}, ${d}) of ${this.path}`,
        );
      return floatData(latent, `MemoryBank.append: entry "${id}"`);
    }
    if (!(latent instanceof Float32Array || latent instanceof Float64Array || Array.isArray(latent)))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `MemoryBank.append: entry "${id}": latent must be a Tensor, Float32Array, Float64Array or number[]`,
      );
    if (latent.length !== this.entrySize)
      throw new ShapeError(
        "MemoryBank.append",
        `entry "${id}": latent has ${latent.length} values, (T, d) = (${T}, ${d}) of ${this.path} needs ${this.entrySize}`,
      );
    return latent;
  }

  /** The error for a damaged entry or document: the bank, the document id (and window) and what failed. */
  private damaged(docId: string | null, win: number | null, what: string): MacLmError {
    const which =
      docId === null ? "an entry with no document" : `document "${docId}"${win !== null ? ` (window ${win})` : ""}`;
    return new MacLmError(
      "MACLM_BANK_DAMAGED",
      `memory bank ${this.path} is damaged: ${which}: ${what}; \`mac-lm bank repair -c CHECKPOINT -b ${dirname(this.path)}\` recomputes damaged entries from the stored text`,
    );
  }

  /** What is wrong with a payload row (checksum, size, non-finite values), or null; decodes it into `out`. */
  private payloadProblem(r: PayloadRow, out: Float32Array): string | null {
    if (r.doc_id === null || r.win === null) return `entry ${r.idx} belongs to no document`;
    if (r.data === null || r.checksum === null) return "its latent is missing";
    if (r.data.length !== this.payloadBytes)
      return `its latent has ${r.data.length} bytes, expected ${this.payloadBytes} (T·d = ${this.entrySize}, ${this.config.dtype})`;
    if (entryChecksum(r.idx, r.doc_id, r.win, r.data) !== r.checksum) return "its latent does not match its checksum";
    const buf = r.data;
    if (this.config.dtype === "float32") {
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(buf);
    } else {
      const h =
        buf.byteOffset % 2 === 0
          ? new Uint16Array(buf.buffer, buf.byteOffset, this.entrySize)
          : new Uint16Array(Uint8Array.from(buf).buffer);
      decodeF16(h, out);
    }
    for (let i = 0; i < out.length; i++)
      if (!Number.isFinite(out[i]!)) return `its latent holds a non-finite value (${out[i]}) at element ${i}`;
    return null;
  }

  /** Verifies payload row `r` and decodes it into row `row` of `dst` (N, T, d); throws MACLM_BANK_DAMAGED. */
  private decodeInto(r: PayloadRow, dst: Float32Array, row: number): void {
    const n = this.entrySize;
    const problem = this.payloadProblem(r, dst.subarray(row * n, (row + 1) * n));
    if (problem !== null) throw this.damaged(r.doc_id, r.win, problem);
  }

  /** Deletes entries of no document and payloads of no entry (what check() reports as such); returns how many. */
  dropOrphans(): number {
    this.writable("dropOrphans");
    const db = this.db!;
    return db
      .transaction(() => {
        const e = db.prepare("DELETE FROM entries WHERE doc_id NOT IN (SELECT doc_id FROM documents)").run().changes;
        const p = db.prepare("DELETE FROM payloads WHERE idx NOT IN (SELECT idx FROM entries)").run().changes;
        return e + p;
      })
      .immediate();
  }

  /**
   * What can still be read from a damaged bank file, without trusting its structure: the config and every document
   * whose row and text (checked against its checksum) read back; the ids of documents whose text is lost.
   */
  static salvage(path: string): {
    config: MemoryBankConfig;
    documents: { id: string; title: string | null; text: string; meta: JsonObject | null }[];
    lost: string[];
  } {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      const config = readConfig(db, path, "accept-old")?.config;
      if (config === undefined || config === null)
        throw new MacLmError("MACLM_BAD_FILE", `memory bank ${path}: its settings (meta table) cannot be read`);
      const ids = new Set<string>();
      const rowids: number[] = [];
      try {
        for (const r of db.prepare<[], number>("SELECT rowid FROM documents ORDER BY rowid").pluck().iterate())
          rowids.push(r);
      } catch {
        // A damaged table: what was read so far, and the ids the entries table still names.
      }
      try {
        for (const id of db.prepare<[], string>("SELECT DISTINCT doc_id FROM entries").pluck().iterate()) ids.add(id);
      } catch {
        // as above
      }
      const documents: { id: string; title: string | null; text: string; meta: JsonObject | null }[] = [];
      const get = db.prepare<
        [number],
        { doc_id: string; title: string | null; text: string; metadata: string | null; text_sha256?: string | null }
      >("SELECT * FROM documents WHERE rowid = ?");
      const lost = new Set<string>();
      for (const rowid of rowids) {
        try {
          const r = get.get(rowid);
          if (r === undefined) continue;
          ids.delete(r.doc_id);
          if (r.text.length === 0 || (r.text_sha256 != null && r.text_sha256 !== textChecksum(r.text))) {
            lost.add(r.doc_id);
            continue;
          }
          documents.push({ id: r.doc_id, title: r.title, text: r.text, meta: parseMeta(r.metadata) });
        } catch {
          // this row is unreadable
        }
      }
      for (const id of ids) lost.add(id);
      return { config, documents, lost: [...lost] };
    } finally {
      db.close();
    }
  }

  /**
   * Checks the whole bank: SQLite's full integrity_check, every entry (checksum, size, finite values), every
   * document's text checksum and entry count. Returns the problems found (empty: the bank is sound).
   */
  check(): BankProblem[] {
    this.live("check");
    const db = this.db!;
    const problems: BankProblem[] = [];
    for (const r of db.pragma("integrity_check(50)", { simple: false }) as { integrity_check: string }[])
      if (r.integrity_check !== "ok")
        problems.push({ docId: null, window: null, problem: `SQLite: ${r.integrity_check}` });
    const scratch = new Float32Array(this.entrySize);
    const perDoc = new Map<string, number>();
    for (const r of db
      .prepare<[], PayloadRow>(
        `SELECT e.idx AS idx, p.data AS data, p.checksum AS checksum, e.doc_id AS doc_id, e.win AS win
           FROM entries e LEFT JOIN payloads p USING (idx)
         UNION ALL
         SELECT p.idx, p.data, p.checksum, NULL, NULL FROM payloads p WHERE p.idx NOT IN (SELECT idx FROM entries)`,
      )
      .iterate()) {
      const problem = this.payloadProblem(r, scratch);
      if (problem !== null) problems.push({ docId: r.doc_id, window: r.win, problem });
      if (r.doc_id !== null) perDoc.set(r.doc_id, (perDoc.get(r.doc_id) ?? 0) + 1);
    }
    for (const d of db
      .prepare<[], { doc_id: string; text: string; text_sha256: string | null; n_entries: number }>(
        "SELECT doc_id, text, text_sha256, n_entries FROM documents",
      )
      .iterate()) {
      if (d.text_sha256 !== textChecksum(d.text))
        problems.push({ docId: d.doc_id, window: null, problem: "its stored text does not match its checksum" });
      const n = perDoc.get(d.doc_id) ?? 0;
      if (n !== d.n_entries)
        problems.push({
          docId: d.doc_id,
          window: null,
          problem: `it has ${n} entries, its record says ${d.n_entries}`,
        });
      perDoc.delete(d.doc_id);
    }
    for (const id of perDoc.keys())
      problems.push({ docId: id, window: null, problem: "it has entries but no document record (no text)" });
    return problems;
  }
}

function prepare(db: Database.Database) {
  return {
    count: db.prepare<[], number>("SELECT count(*) FROM entries").pluck(),
    maxIdx: db.prepare<[], number | null>("SELECT max(idx) FROM entries").pluck(),
    nextIdx: db.prepare<[], number>("SELECT coalesce(max(idx) + 1, 0) FROM entries").pluck(),
    countBefore: db.prepare<[number], number>("SELECT count(*) FROM entries WHERE idx < ?").pluck(),
    idxAt: db.prepare<[number], number>("SELECT idx FROM entries ORDER BY idx LIMIT 1 OFFSET ?").pluck(),
    firstIdxOf: db.prepare<[string], number | null>("SELECT min(idx) FROM entries WHERE doc_id = ?").pluck(),
    hasDocument: db.prepare<[string], number>("SELECT 1 FROM documents WHERE doc_id = ?").pluck(),
    documentCount: db.prepare<[], number>("SELECT count(*) FROM documents").pluck(),
    insertDocument: db.prepare<[string, string | null, string, string | null, string, number, string]>(
      "INSERT INTO documents (doc_id, title, text, metadata, added_at, n_entries, text_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
    ),
    insertEntry: db.prepare<[number, string, number]>("INSERT INTO entries (idx, doc_id, win) VALUES (?, ?, ?)"),
    insertPayload: db.prepare<[number, Buffer, string]>("INSERT INTO payloads (idx, data, checksum) VALUES (?, ?, ?)"),
    deletePayloads: db.prepare<[string]>(
      "DELETE FROM payloads WHERE idx IN (SELECT idx FROM entries WHERE doc_id = ?)",
    ),
    deleteEntries: db.prepare<[string]>("DELETE FROM entries WHERE doc_id = ?"),
    deleteDocument: db.prepare<[string]>("DELETE FROM documents WHERE doc_id = ?"),
    documents: db.prepare<[], DocRow>(
      "SELECT doc_id, title, length(text) AS chars, n_entries, added_at, metadata FROM documents ORDER BY rowid",
    ),
    documentById: db.prepare<[string], DocRow>(
      "SELECT doc_id, title, length(text) AS chars, n_entries, added_at, metadata FROM documents WHERE doc_id = ?",
    ),
    documentText: db.prepare<[string], { text: string; text_sha256: string | null }>(
      "SELECT text, text_sha256 FROM documents WHERE doc_id = ?",
    ),
    entryDocIds: db.prepare<[], string>("SELECT doc_id FROM entries ORDER BY idx").pluck(),
    idPage: db.prepare<[number, number], string>("SELECT doc_id FROM entries ORDER BY idx LIMIT ? OFFSET ?").pluck(),
    infoPage: db.prepare<[number, number], { doc_id: string; metadata: string | null }>(
      "SELECT e.doc_id, d.metadata FROM entries e JOIN documents d USING (doc_id) ORDER BY e.idx LIMIT ? OFFSET ?",
    ),
    payloadsOf: db.prepare<[string], PayloadRow>(
      `SELECT e.idx AS idx, p.data AS data, p.checksum AS checksum, e.doc_id AS doc_id, e.win AS win
         FROM entries e LEFT JOIN payloads p USING (idx) WHERE e.doc_id = ? ORDER BY e.win`,
    ),
    // Entries drive the read (a payload lost from under its entry is an error, not a silently shorter memory).
    payloadPage: db.prepare<[number, number, number], PayloadRow>(
      `SELECT e.idx AS idx, p.data AS data, p.checksum AS checksum, e.doc_id AS doc_id, e.win AS win
         FROM entries e LEFT JOIN payloads p USING (idx) WHERE e.idx >= ? AND e.idx <= ? ORDER BY e.idx LIMIT ?`,
    ),
  };
}

function floatData(t: Tensor, where: string): Float32Array | Float64Array {
  const data = t.data;
  if (!(data instanceof Float32Array || data instanceof Float64Array))
    throw new MacLmError("MACLM_DTYPE_MISMATCH", `${where}: latents must be float32 or float64, got ${t.dtype}`);
  return data;
}

function requireString(v: unknown, what: string): string {
  if (typeof v !== "string") throw new MacLmError("MACLM_BAD_ARGUMENT", `${what} must be a string, got ${typeof v}`);
  return v;
}

function optionalString(v: unknown, what: string): string | null {
  return v === undefined || v === null ? null : requireString(v, what);
}

function encodeMeta(m: unknown, where: string): string | null {
  if (m === undefined || m === null) return null;
  if (typeof m !== "object" || Array.isArray(m))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: metadata must be a JSON object`);
  try {
    return JSON.stringify(m);
  } catch (err) {
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `${where}: metadata is not JSON-serialisable: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

const parseMeta = (m: string | null): JsonObject | null => (m === null ? null : (JSON.parse(m) as JsonObject));

function toDocumentInfo(r: DocRow): BankDocumentInfo {
  return {
    id: r.doc_id,
    title: r.title,
    chars: r.chars,
    entries: r.n_entries,
    addedAt: r.added_at,
    meta: parseMeta(r.metadata),
  };
}

const SCHEMA_V2 = `
  CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT, text TEXT NOT NULL, metadata TEXT,
                          added_at TEXT NOT NULL, n_entries INTEGER NOT NULL, text_sha256 TEXT) STRICT;
  CREATE TABLE entries (idx INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, win INTEGER NOT NULL,
                        UNIQUE (doc_id, win)) STRICT;
`;

/** Sets up the connection (WAL, synchronous=FULL), creates the schema if the file has none, migrates version 1. */
function initialise(db: Database.Database, path: string, opts: OpenMemoryBankOptions): MemoryBankConfig | null {
  readConfig(db, path, "accept-old"); // refuse a foreign database before changing its journal mode
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (String(mode).toLowerCase() !== "wal")
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `memory bank ${path}: cannot switch to WAL journal mode (got ${String(mode)})`,
    );
  db.pragma("synchronous = FULL");
  const create = db.transaction((): MemoryBankConfig => {
    const existing = readConfig(db, path, "accept-old");
    if (existing !== null) {
      if (existing.version === 1) migrateV1(db);
      if (existing.version <= 2) migrateToV3(db, existing.version);
      return existing.config;
    }
    if (opts.T === undefined || opts.d === undefined)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `memory bank ${path} does not exist yet: T and d are needed to create it`,
      );
    const config: MemoryBankConfig = {
      T: opts.T,
      d: opts.d,
      dtype: opts.dtype ?? "float32",
      modelFingerprint: opts.modelFingerprint ?? null,
    };
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) STRICT;
      ${SCHEMA_V2}
      CREATE TABLE payloads (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, checksum TEXT NOT NULL) STRICT;
      PRAGMA application_id = ${APPLICATION_ID};
      PRAGMA user_version = ${BANK_SCHEMA_VERSION};
    `);
    const put = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
    put.run("schema_version", String(BANK_SCHEMA_VERSION));
    put.run("T", String(config.T));
    put.run("d", String(config.d));
    put.run("dtype", config.dtype);
    put.run("model_fingerprint", config.modelFingerprint);
    put.run("created_at", new Date().toISOString());
    return config;
  });
  return create.immediate();
}

/**
 * Version 1 → 2, inside the caller's transaction: every entry becomes a one-entry document (empty text: version 1
 * did not store it; its metadata kept; its "title" metadata field, if a string, as the title), idx and payloads kept.
 */
function migrateV1(db: Database.Database): void {
  const created = db.prepare<[], string | null>("SELECT value FROM meta WHERE key = 'created_at'").pluck().get();
  db.exec(`
    ALTER TABLE entries RENAME TO entries_v1;
    ${SCHEMA_V2}
  `);
  db.prepare(
    `INSERT INTO documents (doc_id, title, text, metadata, added_at, n_entries)
     SELECT doc_id, CASE WHEN json_type(metadata, '$.title') = 'text' THEN json_extract(metadata, '$.title') END,
            '', metadata, ?, 1 FROM entries_v1 ORDER BY idx`,
  ).run(created ?? new Date(0).toISOString());
  db.exec(`
    INSERT INTO entries (idx, doc_id, win) SELECT idx, doc_id, 0 FROM entries_v1;
    DROP TABLE entries_v1;
    UPDATE meta SET value = '${BANK_SCHEMA_VERSION}' WHERE key = 'schema_version';
    PRAGMA user_version = ${BANK_SCHEMA_VERSION};
  `);
}

/**
 * Version 1 (already turned into version 2 tables) or 2 → 3, inside the caller's transaction: checksums for every
 * payload and text, computed from what is stored now (nothing older can vouch for it).
 */
function migrateToV3(db: Database.Database, from: number): void {
  if (from === 2) db.exec("ALTER TABLE documents ADD COLUMN text_sha256 TEXT");
  db.exec("ALTER TABLE payloads ADD COLUMN checksum TEXT NOT NULL DEFAULT ''");
  const setSum = db.prepare<[string, number]>("UPDATE payloads SET checksum = ? WHERE idx = ?");
  for (const r of db
    .prepare<[], { idx: number; data: Buffer; doc_id: string; win: number }>(
      "SELECT p.idx, p.data, e.doc_id, e.win FROM payloads p JOIN entries e USING (idx)",
    )
    .all())
    setSum.run(entryChecksum(r.idx, r.doc_id, r.win, r.data), r.idx);
  const setText = db.prepare<[string, string]>("UPDATE documents SET text_sha256 = ? WHERE doc_id = ?");
  for (const d of db.prepare<[], { doc_id: string; text: string }>("SELECT doc_id, text FROM documents").all())
    setText.run(textChecksum(d.text), d.doc_id);
  db.exec(`
    UPDATE meta SET value = '${BANK_SCHEMA_VERSION}' WHERE key = 'schema_version';
    PRAGMA user_version = ${BANK_SCHEMA_VERSION};
  `);
}

/** The bank's config and schema version, or null if the file holds no tables at all (a new, empty database). */
function readConfig(
  db: Database.Database,
  path: string,
  v1: "accept-old",
): { config: MemoryBankConfig; version: number } | null;
function readConfig(db: Database.Database, path: string, v1: "refuse-old"): MemoryBankConfig | null;
function readConfig(
  db: Database.Database,
  path: string,
  v1: "accept-old" | "refuse-old",
): { config: MemoryBankConfig; version: number } | MemoryBankConfig | null {
  const tables = db.prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all();
  const appId = Number(db.pragma("application_id", { simple: true }));
  if (tables.length === 0 && appId === 0) return null;
  if (
    appId !== APPLICATION_ID ||
    !tables.includes("meta") ||
    !tables.includes("entries") ||
    !tables.includes("payloads")
  )
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `${path} is an SQLite database but not a mac-lm memory bank (tables: ${tables.join(", ") || "none"})`,
    );
  const meta = new Map(
    db
      .prepare<[], { key: string; value: string | null }>("SELECT key, value FROM meta")
      .all()
      .map((r) => [r.key, r.value]),
  );
  const version = Number(meta.get("schema_version"));
  if ((version === 1 || version === 2) && v1 === "refuse-old")
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `memory bank ${path} has schema version ${version} and was opened readonly; open it once for writing (\`mac-lm bank check --upgrade -b ${dirname(path)}\`, or \`mac-lm adapt\` into it) to migrate it to version ${BANK_SCHEMA_VERSION} in place`,
    );
  if (version !== BANK_SCHEMA_VERSION && version !== 1 && version !== 2)
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `memory bank ${path} has schema version ${String(meta.get("schema_version"))}; this mac-lm reads versions 1 and 2 (migrated on open) and ${BANK_SCHEMA_VERSION}`,
    );
  const dtype = meta.get("dtype") as BankDType;
  if (!BANK_DTYPES.includes(dtype))
    throw new MacLmError("MACLM_BAD_FILE", `memory bank ${path}: unknown dtype ${String(dtype)} in its meta table`);
  const config: MemoryBankConfig = {
    T: checkDim(Number(meta.get("T")), "T (meta table)", path),
    d: checkDim(Number(meta.get("d")), "d (meta table)", path),
    dtype,
    modelFingerprint: meta.get("model_fingerprint") ?? null,
  };
  return v1 === "accept-old" ? { config, version } : config;
}

function checkConfig(path: string, bank: MemoryBankConfig, opts: OpenMemoryBankOptions): void {
  const diffs: string[] = [];
  if (opts.T !== undefined && opts.T !== bank.T) diffs.push(`T: bank ${bank.T}, requested ${opts.T}`);
  if (opts.d !== undefined && opts.d !== bank.d) diffs.push(`d: bank ${bank.d}, requested ${opts.d}`);
  if (opts.dtype !== undefined && opts.dtype !== bank.dtype)
    diffs.push(`dtype: bank ${bank.dtype}, requested ${opts.dtype}`);
  if (opts.modelFingerprint !== undefined && opts.modelFingerprint !== bank.modelFingerprint)
    diffs.push(`modelFingerprint: bank ${bank.modelFingerprint ?? "(none)"}, requested ${opts.modelFingerprint}`);
  if (diffs.length > 0)
    throw new MacLmError(
      "MACLM_CONFIG_MISMATCH",
      `memory bank ${path} does not match the requested config: ${diffs.join("; ")}`,
    );
}
