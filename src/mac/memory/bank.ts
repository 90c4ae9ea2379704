/**
 * MemoryBank: MAC's memory of amortized contexts, on disk. Append-only and durable.
 *
 * One entry per document: its (T, d) latent from the amortization network (mac-reference.md §3.1), a document id
 * (unique within the bank), optional JSON metadata and a 0-based insertion index. The bank is read back in
 * insertion order, whole (loadAll → (N, T, d)) or in consecutive groups of M entries for hierarchical aggregation
 * (§3.3), as float32 tensors.
 *
 * Storage is one SQLite file (better-sqlite3), journal_mode=WAL with synchronous=FULL: append() returns after its
 * transaction is committed and the WAL is fsynced, so an acknowledged entry survives a crash of the process (and of
 * the machine), and a crash mid-append leaves the bank as it was before that append (the transaction is atomic).
 *
 * Schema (version 1; PRAGMA application_id = 0x4d41434d "MACM", PRAGMA user_version = 1):
 *   meta(key TEXT PRIMARY KEY, value TEXT)   schema_version, T, d, dtype, model_fingerprint, created_at
 *   entries(idx INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, metadata TEXT)   small rows: ids/metadata queries
 *                                                                                  never touch the latents
 *   payloads(idx INTEGER PRIMARY KEY, data BLOB NOT NULL)   T·d little-endian float32 or IEEE half values, row-major
 * idx is the insertion index (0, 1, 2, … with no gaps: entries are never deleted). Opening reads the meta table and
 * max(idx) only, so it takes milliseconds whatever the bank's size.
 *
 * float16 storage halves disk and memory; values are rounded to nearest even (f16.ts) and must be finite with
 * magnitude below 65520 (which would round to Infinity): append() rejects anything else rather than store ±Inf/NaN.
 *
 * Duplicate ids: append() throws MACLM_DUPLICATE_ID by default (nothing of that call is written). With
 * { onDuplicate: "skip" } an entry whose id is already stored is skipped (its stored latent is kept, not compared),
 * which makes re-running a partly processed stream after a crash idempotent.
 *
 * Several processes may open one bank: SQLite serialises writers (a busy writer waits up to `timeoutMs`) and
 * readers see committed entries only.
 */
import { existsSync } from "node:fs";
import { endianness } from "node:os";
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
}

/** A latent: a (T, d) or (1, T, d) float tensor, or T·d numbers in row-major order. */
export type LatentInput = Tensor | Float32Array | Float64Array | readonly number[];

export interface BankEntryInput {
  id: string;
  latent: LatentInput;
  metadata?: JsonObject;
}

export interface BankEntryInfo {
  id: string;
  index: number;
  metadata: JsonObject | null;
}

export interface AppendOptions {
  /** "error" (default): a stored id (or one repeated in the call) fails the whole call. "skip": keep the stored entry. */
  onDuplicate?: "error" | "skip";
}

const SCHEMA_VERSION = 1;
const APPLICATION_ID = 0x4d41434d; // "MACM"
const BANK_DTYPES: readonly BankDType[] = ["float32", "float16"];
/** Rows per query when reading many entries (bounds the Buffers held at once). */
const READ_CHUNK = 256;

const bytesOf = (dtype: BankDType): number => (dtype === "float16" ? 2 : 4);

function checkDim(value: unknown, field: string, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `memory bank ${path}: ${field} must be a positive integer, got ${String(value)}`,
    );
  return value;
}

export class MemoryBank {
  readonly path: string;
  readonly config: Readonly<MemoryBankConfig>;
  readonly readonly: boolean;

  private db: Database.Database | null;
  private readonly entrySize: number; // T·d
  private readonly payloadBytes: number;
  private readonly stmts: {
    count: Database.Statement<[], number>;
    indexOf: Database.Statement<[string], number>;
    insertEntry: Database.Statement<[number, string, string | null]>;
    insertPayload: Database.Statement<[number, Buffer]>;
    idRange: Database.Statement<[number, number], string>;
    infoRange: Database.Statement<[number, number], { idx: number; doc_id: string; metadata: string | null }>;
    infoById: Database.Statement<[string], { idx: number; doc_id: string; metadata: string | null }>;
    payload: Database.Statement<[number], Buffer>;
    payloadRange: Database.Statement<[number, number], Buffer>;
  };
  private readonly appendTxn: (rows: EncodedEntry[], onDuplicate: "error" | "skip") => number[];

  private constructor(path: string, db: Database.Database, config: MemoryBankConfig, readonly: boolean) {
    this.path = path;
    this.db = db;
    this.config = Object.freeze({ ...config });
    this.readonly = readonly;
    this.entrySize = config.T * config.d;
    this.payloadBytes = this.entrySize * bytesOf(config.dtype);
    this.stmts = {
      count: db.prepare<[], number>("SELECT coalesce(max(idx) + 1, 0) FROM entries").pluck(),
      indexOf: db.prepare<[string], number>("SELECT idx FROM entries WHERE doc_id = ?").pluck(),
      insertEntry: db.prepare("INSERT INTO entries (idx, doc_id, metadata) VALUES (?, ?, ?)"),
      insertPayload: db.prepare("INSERT INTO payloads (idx, data) VALUES (?, ?)"),
      idRange: db
        .prepare<[number, number], string>("SELECT doc_id FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx")
        .pluck(),
      infoRange: db.prepare("SELECT idx, doc_id, metadata FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx"),
      infoById: db.prepare("SELECT idx, doc_id, metadata FROM entries WHERE doc_id = ?"),
      payload: db.prepare<[number], Buffer>("SELECT data FROM payloads WHERE idx = ?").pluck(),
      payloadRange: db
        .prepare<[number, number], Buffer>("SELECT data FROM payloads WHERE idx >= ? AND idx < ? ORDER BY idx")
        .pluck(),
    };
    const txn = db.transaction((rows: EncodedEntry[], onDuplicate: "error" | "skip"): number[] => {
      const first = this.stmts.count.get()!;
      let next = first;
      const indices: number[] = [];
      for (const row of rows) {
        const existing = this.stmts.indexOf.get(row.id);
        if (existing !== undefined) {
          if (onDuplicate === "skip") {
            indices.push(existing);
            continue;
          }
          const where = existing >= first ? "appears twice in this append" : `is already stored (index ${existing})`;
          throw new MacLmError(
            "MACLM_DUPLICATE_ID",
            `memory bank ${this.path}: document id "${row.id}" ${where}; nothing of this append was written (use onDuplicate: "skip" to keep stored entries)`,
          );
        }
        this.stmts.insertEntry.run(next, row.id, row.metadata);
        this.stmts.insertPayload.run(next, row.payload);
        indices.push(next++);
      }
      return indices;
    });
    this.appendTxn = (rows, onDuplicate) => txn.immediate(rows, onDuplicate);
  }

  /**
   * Opens the bank at `path`, creating it if missing (then T and d are required). Throws MACLM_CONFIG_MISMATCH if
   * the bank exists with another T, d, dtype or model fingerprint than given, MACLM_BAD_FILE if the file is not a
   * memory bank (or one of a newer schema).
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
    try {
      db = new Database(path, { readonly, fileMustExist: !create, timeout: opts.timeoutMs ?? 10_000 });
    } catch (e) {
      throw new MacLmError("MACLM_BAD_FILE", `memory bank ${path}: cannot open: ${(e as Error).message}`, { cause: e });
    }
    try {
      const config = readonly ? readConfig(db, path) : initialise(db, path, opts);
      if (config === null)
        throw new MacLmError("MACLM_BAD_FILE", `memory bank ${path} is empty (no bank was created in it)`);
      checkConfig(path, config, opts);
      return new MemoryBank(path, db, config, readonly);
    } catch (e) {
      db.close();
      if (e instanceof MacLmError) throw e;
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `memory bank ${path}: not a readable memory bank: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  // ---- writing -----------------------------------------------------------------------------------------

  /**
   * Appends one entry or many (in one transaction: all or none are stored) and returns their insertion indices
   * (with onDuplicate "skip", a skipped entry's index is that of the stored one). Returns once the entries are
   * durable on disk. Every latent is validated before anything is written.
   */
  append(entries: BankEntryInput | readonly BankEntryInput[], opts: AppendOptions = {}): number[] {
    this.live("append");
    if (this.readonly)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `memory bank ${this.path} was opened readonly: cannot append`);
    const list = Array.isArray(entries) ? (entries as readonly BankEntryInput[]) : [entries as BankEntryInput];
    if (list.length === 0) return [];
    const rows = list.map((e) => this.encode(e));
    const onDuplicate = opts.onDuplicate ?? "error";
    if (onDuplicate !== "error" && onDuplicate !== "skip")
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `memory bank ${this.path}: onDuplicate must be "error" or "skip", got ${String(onDuplicate)}`,
      );
    return this.appendTxn(rows, onDuplicate);
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
    const data = latents.data;
    if (!(data instanceof Float32Array || data instanceof Float64Array))
      throw new MacLmError(
        "MACLM_DTYPE_MISMATCH",
        `MemoryBank.appendBatch: latents must be float32 or float64, got ${latents.dtype}`,
      );
    const n = this.entrySize;
    const entries = ids.map((id, i): BankEntryInput => {
      const m = metadata?.[i];
      return m === undefined
        ? { id, latent: data.subarray(i * n, (i + 1) * n) }
        : { id, latent: data.subarray(i * n, (i + 1) * n), metadata: m };
    });
    return this.append(entries, opts);
  }

  // ---- reading -----------------------------------------------------------------------------------------

  /** Number of entries. */
  get count(): number {
    this.live("count");
    return this.stmts.count.get()!;
  }

  has(id: string): boolean {
    this.live("has");
    return this.stmts.indexOf.get(id) !== undefined;
  }

  /** Insertion index of `id`, or undefined. */
  indexOf(id: string): number | undefined {
    this.live("indexOf");
    return this.stmts.indexOf.get(id);
  }

  /** Document ids in insertion order (entries [start, end) if given). */
  ids(start = 0, end?: number): string[] {
    this.live("ids");
    return this.stmts.idRange.all(start, end ?? this.count);
  }

  /** Id, index and metadata of entries [start, end) (default: all), in insertion order. */
  list(start = 0, end?: number): BankEntryInfo[] {
    this.live("list");
    const stop = end ?? this.count;
    return this.stmts.infoRange.all(start, stop).map(toInfo);
  }

  /** Id, index and metadata of `id`, or undefined. */
  info(id: string): BankEntryInfo | undefined {
    this.live("info");
    const row = this.stmts.infoById.get(id);
    return row === undefined ? undefined : toInfo(row);
  }

  /** Metadata of `id` (null when stored without); throws if `id` is not stored. */
  metadata(id: string): JsonObject | null {
    const info = this.info(id);
    if (info === undefined) throw this.missing([id]);
    return info.metadata;
  }

  /** The latents of `ids`, in that order, as a float32 tensor (ids.length, T, d). Throws if any id is missing. */
  get(ids: readonly string[]): Tensor {
    this.live("get");
    const indices = ids.map((id) => this.stmts.indexOf.get(id));
    const missing = ids.filter((_, i) => indices[i] === undefined);
    if (missing.length > 0) throw this.missing(missing);
    const out = Tensor.empty([ids.length, this.config.T, this.config.d]);
    const dst = out.f32;
    indices.forEach((idx, i) => this.decodeInto(this.stmts.payload.get(idx!)!, dst, i, idx!));
    return out;
  }

  /**
   * Consecutive groups of (up to) M entries in insertion order, as float32 tensors (M', T, d) with M' = M except
   * possibly the last. Covers the entries stored when iteration starts; one group is in memory at a time. The
   * caller owns each yielded tensor (dispose it, or iterate inside scope()).
   */
  *groups(M: number): Generator<Tensor, void, undefined> {
    if (!Number.isInteger(M) || M <= 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `MemoryBank.groups: M must be a positive integer, got ${M}`);
    const n = this.count;
    for (let start = 0; start < n; start += M) yield this.readRange(start, Math.min(start + M, n));
  }

  /** Entries [start, end) as a float32 tensor (end − start, T, d). */
  readRange(start: number, end: number): Tensor {
    this.live("readRange");
    const n = this.count;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > n)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `MemoryBank.readRange: [${start}, ${end}) is not a range of the ${n} entries of ${this.path}`,
      );
    const out = Tensor.empty([end - start, this.config.T, this.config.d]);
    const dst = out.f32;
    for (let s = start; s < end; s += READ_CHUNK) {
      const e = Math.min(s + READ_CHUNK, end);
      const bufs = this.stmts.payloadRange.all(s, e);
      if (bufs.length !== e - s)
        throw new MacLmError(
          "MACLM_BAD_FILE",
          `memory bank ${this.path}: entries [${s}, ${e}) have ${bufs.length} payloads`,
        );
      bufs.forEach((b, i) => this.decodeInto(b, dst, s - start + i, s + i));
    }
    return out;
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
  }

  get closed(): boolean {
    return this.db === null;
  }

  toString(): string {
    const { T, d, dtype } = this.config;
    return `MemoryBank(${this.path}, T=${T}, d=${d}, ${dtype}${this.closed ? ", closed" : ""})`;
  }

  // ---- internals ---------------------------------------------------------------------------------------

  private live(op: string): void {
    if (this.db === null)
      throw new MacLmError("MACLM_DISPOSED", `MemoryBank.${op}: memory bank ${this.path} is closed`);
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

  private encode(e: BankEntryInput): EncodedEntry {
    const where = `memory bank ${this.path}: entry "${String(e?.id)}"`;
    if (typeof e?.id !== "string" || e.id.length === 0)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `memory bank ${this.path}: document id must be a non-empty string, got ${String(e?.id)}`,
      );
    const values = this.latentValues(e.latent, e.id);
    const overflow = this.config.dtype === "float16" ? F16_OVERFLOW : Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!(Math.abs(v) < overflow))
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `${where}: latent value ${v} at element ${i} is not ${this.config.dtype === "float16" ? "representable in float16 (|x| < 65520)" : "finite"}`,
        );
    }
    let payload: Buffer;
    if (this.config.dtype === "float16") {
      const h = new Uint16Array(this.entrySize);
      encodeF16(values, h);
      payload = Buffer.from(h.buffer, h.byteOffset, h.byteLength);
    } else {
      const f = values instanceof Float32Array ? values.slice() : Float32Array.from(values);
      payload = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
    }
    let metadata: string | null = null;
    if (e.metadata !== undefined) {
      const m = e.metadata as unknown;
      if (m === null || typeof m !== "object" || Array.isArray(m))
        throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: metadata must be a JSON object`);
      try {
        metadata = JSON.stringify(m);
      } catch (err) {
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `${where}: metadata is not JSON-serialisable: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    return { id: e.id, metadata, payload };
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
      const data = latent.data;
      if (!(data instanceof Float32Array || data instanceof Float64Array))
        throw new MacLmError(
          "MACLM_DTYPE_MISMATCH",
          `MemoryBank.append: entry "${id}": latent must be float32 or float64, got ${latent.dtype}`,
        );
      return data;
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

  /** Decodes payload `buf` (entry `idx`) into row `row` of `dst` (N, T, d). */
  private decodeInto(buf: Buffer, dst: Float32Array, row: number, idx: number): void {
    if (buf.length !== this.payloadBytes)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `memory bank ${this.path}: entry ${idx} has ${buf.length} bytes of latent, expected ${this.payloadBytes} (T·d = ${this.entrySize}, ${this.config.dtype})`,
      );
    const n = this.entrySize;
    const out = dst.subarray(row * n, (row + 1) * n);
    if (this.config.dtype === "float32") {
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(buf);
    } else {
      const h =
        buf.byteOffset % 2 === 0
          ? new Uint16Array(buf.buffer, buf.byteOffset, n)
          : new Uint16Array(Uint8Array.from(buf).buffer);
      decodeF16(h, out);
    }
  }
}

interface EncodedEntry {
  id: string;
  metadata: string | null;
  payload: Buffer;
}

function toInfo(row: { idx: number; doc_id: string; metadata: string | null }): BankEntryInfo {
  return {
    id: row.doc_id,
    index: row.idx,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as JsonObject),
  };
}

/** Sets up the connection (WAL, synchronous=FULL) and creates the schema if the file has none. */
function initialise(db: Database.Database, path: string, opts: OpenMemoryBankOptions): MemoryBankConfig | null {
  readConfig(db, path); // refuse a foreign database before changing its journal mode
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (String(mode).toLowerCase() !== "wal")
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `memory bank ${path}: cannot switch to WAL journal mode (got ${String(mode)})`,
    );
  db.pragma("synchronous = FULL");
  const create = db.transaction((): MemoryBankConfig => {
    const existing = readConfig(db, path);
    if (existing !== null) return existing;
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
      CREATE TABLE entries (idx INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, metadata TEXT) STRICT;
      CREATE TABLE payloads (idx INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT;
      PRAGMA application_id = ${APPLICATION_ID};
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
    const put = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
    put.run("schema_version", String(SCHEMA_VERSION));
    put.run("T", String(config.T));
    put.run("d", String(config.d));
    put.run("dtype", config.dtype);
    put.run("model_fingerprint", config.modelFingerprint);
    put.run("created_at", new Date().toISOString());
    return config;
  });
  return create.immediate();
}

/** The bank's config, or null if the file holds no tables at all (a new, empty database). */
function readConfig(db: Database.Database, path: string): MemoryBankConfig | null {
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
  if (version !== SCHEMA_VERSION)
    throw new MacLmError(
      "MACLM_BAD_FILE",
      `memory bank ${path} has schema version ${String(meta.get("schema_version"))}; this mac-lm reads version ${SCHEMA_VERSION}`,
    );
  const dtype = meta.get("dtype") as BankDType;
  if (!BANK_DTYPES.includes(dtype))
    throw new MacLmError("MACLM_BAD_FILE", `memory bank ${path}: unknown dtype ${String(dtype)} in its meta table`);
  return {
    T: checkDim(Number(meta.get("T")), "T (meta table)", path),
    d: checkDim(Number(meta.get("d")), "d (meta table)", path),
    dtype,
    modelFingerprint: meta.get("model_fingerprint") ?? null,
  };
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
