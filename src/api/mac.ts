/**
 * Mac: the library's front door. It owns a MAC model (with its frozen base LM) and a durable memory bank, and
 * turns the steps of MAC into five calls:
 *
 *   const mac = await Mac.load("checkpoints/mac-default", { bank: "bank/" });
 *   await mac.adapt([{ id: "doc-1", text: "…", title: "…" }]);   // durable when it resolves
 *   const { answer, sources } = await mac.ask("Who founded the company?");
 *   for await (const piece of mac.stream("…")) process.stdout.write(piece);
 *   await mac.forget("doc-1");
 *   await mac.close();                                              // frees the model, closes the bank
 *
 * Adapting amortizes each document once (one forward pass, no gradient) into one memory entry per window of what the
 * amortizer reads (src/mac/windows.ts: a long document is several overlapping windows), stored with the document's
 * text, title and metadata; re-adapting an id replaces its entries. Asking encodes the question, aggregates
 * it over the bank (full, or hierarchically in groups of M streamed from disk), maps the latent to the base LM's
 * modulation and generates. Sources are the documents ranked by the share of the aggregator's attention the
 * question gave their entries (src/mac/provenance.ts).
 *
 * Work is synchronous tensor computation; ask() and stream() yield to the event loop between generated tokens (so
 * a server stays responsive and an AbortSignal is honoured), adapt() between batches.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MacLmError } from "../errors.js";
import { type GenerateOptions, MAC_DECODING, generate, greedyTokens } from "../generate/index.js";
import { aggregateFull, aggregateHierarchical } from "../mac/aggregate/hierarchical.js";
import { checkBankFingerprint, checkpointFingerprint, loadMac, macFingerprint } from "../mac/io.js";
import { amortizeDocuments, documentWindows } from "../mac/windows.js";
import { type BankDType, type BankDocumentInfo, type JsonObject, MemoryBank } from "../mac/memory/bank.js";
import type { MacModel } from "../mac/model.js";
import { aggregateWithShares, hierarchicalShares } from "../mac/provenance.js";
import type { Modulation } from "../models/types.js";
import { type Tensor, nextTurn, noGrad, scope, untrack } from "../tensor/index.js";
import { snippetFor } from "./snippet.js";

/** A document to adapt to. */
export interface MacDocument {
  /** Unique within the bank; adapting an id again replaces its entry. */
  id: string;
  text: string;
  title?: string;
  meta?: JsonObject;
}

export interface MacLoadOptions {
  /** Folder of the memory bank (bank.sqlite inside; created if missing). Default: a temporary folder, deleted by close(). */
  bank?: string;
  /** Bank storage precision when the bank is created (default float32). */
  dtype?: BankDType;
  /** Open an existing bank for answering only (adapt/forget then throw). */
  readonly?: boolean;
  /** Model cache folder (default: $MACLM_CACHE, …, ~/.cache/mac-lm). */
  cacheDir?: string;
}

export interface MacFromModelOptions extends Omit<MacLoadOptions, "cacheDir"> {
  /** Recorded in a new bank and checked against an existing one (e.g. macFingerprint(dir)). */
  fingerprint?: string;
  /** Also accepted in an existing bank: what banks made before fingerprints covered the base models recorded. */
  legacyFingerprint?: string;
  /** Names the checkpoint in a fingerprint mismatch. */
  checkpoint?: string;
  /** close() disposes the model and its base LM (default false: the caller keeps them). */
  ownsModel?: boolean;
}

export interface AdaptOptions {
  /** Documents amortized per forward pass (default 8). */
  batchSize?: number;
  /** A stored id: "replace" it (default) or "skip" the document. */
  onExisting?: "replace" | "skip";
  /** Called after each batch is durable. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface AdaptResult {
  added: string[];
  replaced: string[];
  skipped: string[];
  /** Documents longer than the amortizer reads, stored as several overlapping windows (entries). */
  windows: { id: string; chars: number; windows: number }[];
  timings: { amortizeMs: number; writeMs: number; totalMs: number };
}

export type DecodingChoice = "greedy" | "mac" | GenerateOptions;

export interface AskOptions {
  /** Answer with the memory (default true) or with the frozen base LM alone. */
  memory?: boolean;
  /** Hierarchical aggregation with groups of M entries (true: M = 64); default full aggregation. */
  hierarchical?: number | boolean;
  /** "greedy" (default), "mac" (the paper's diverse beam search) or generation options. */
  decoding?: DecodingChoice;
  /** New tokens at most (default 32; overrides decoding's). */
  maxNewTokens?: number;
  /** Sources returned at most (default 5; 0: none, and provenance is not computed). */
  maxSources?: number;
  signal?: AbortSignal;
}

/** The window of a stored document that an extractive memory chose for a question. */
export interface ChosenWindow {
  /** The document's id. */
  id: string;
  /** Which of the document's windows (0 for a document the amortizer reads whole). */
  window: number;
  /** The window's text, as the base LM reads it. */
  text: string;
  /** The aggregator's score of the window for the question (comparable across the windows of one question). */
  score: number;
  /** With chooseWindows' `documentScores`: every stored document's best window score for the question. */
  documents?: Map<string, number>;
}

/** A document an answer drew on, with its share of the aggregator's attention. */
export interface Source {
  id: string;
  title: string | null;
  /** Share of the attention (0–1; the shares of all documents in the bank sum to 1). */
  weight: number;
  /**
   * The sentence of the document closest to the question (word overlap), at most ~240 characters; for the document
   * an extractive memory read a window of, that window (what the LM read).
   */
  snippet: string;
}

export interface AskTimings {
  encodeMs: number;
  aggregateMs: number;
  generateMs: number;
  totalMs: number;
}

export interface AskResult {
  answer: string;
  /** Documents by share, strongest first; an extractive memory's first is the one whose window the LM read. */
  sources: Source[];
  timings: AskTimings;
  /** What the answer was conditioned on: documents and entries in the bank (0 without memory). */
  memory: { documents: number; entries: number };
}

/** stream(): the answer's text pieces as they are generated; `result` resolves when it is done. */
export interface AskStream extends AsyncIterable<string> {
  result: Promise<AskResult>;
}

export const DEFAULT_GROUP_SIZE = 64;
const DEFAULT_MAX_NEW_TOKENS = 32;

const bankFileOf = (dir: string): string => join(dir, "bank.sqlite");

export class Mac {
  readonly model: MacModel;
  readonly bank: MemoryBank;
  readonly bankDir: string;
  readonly #ownsModel: boolean;
  readonly #tempDir: string | null;
  #closed = false;
  /** The whole bank for full aggregation, read once per bank state (dropped at every write). */
  #full: Tensor | null = null;
  #entryDocIds: string[] | null = null;

  private constructor(model: MacModel, bank: MemoryBank, bankDir: string, ownsModel: boolean, tempDir: string | null) {
    this.model = model;
    this.bank = bank;
    this.bankDir = bankDir;
    this.#ownsModel = ownsModel;
    this.#tempDir = tempDir;
  }

  /** Loads a MAC checkpoint (and its base LM from the model cache) and opens or creates the bank. */
  static async load(checkpoint: string, opts: MacLoadOptions = {}): Promise<Mac> {
    if (opts.readonly && (opts.bank === undefined || !existsSync(bankFileOf(opts.bank))))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `no memory bank at ${opts.bank ?? "(none given)"}; adapt to documents first (mac-lm adapt) or answer without memory`,
      );
    // The checkpoint and every model it uses (verified against their sha256 on the way) identify the bank's
    // entries; an existing bank of other models is refused before any model loads.
    const fingerprint = await macFingerprint(checkpoint, { cacheDir: opts.cacheDir });
    const legacyFingerprint = checkpointFingerprint(checkpoint);
    if (opts.bank !== undefined && existsSync(bankFileOf(opts.bank))) {
      const bank = MemoryBank.open(bankFileOf(opts.bank), { readonly: true });
      try {
        checkBankFingerprint(bank, checkpoint, fingerprint);
      } finally {
        bank.close();
      }
    }
    const model = await loadMac(checkpoint, { cacheDir: opts.cacheDir });
    try {
      return Mac.fromModel(model, { ...opts, fingerprint, legacyFingerprint, checkpoint, ownsModel: true });
    } catch (e) {
      model.dispose();
      model.base.dispose();
      throw e;
    }
  }

  /** A Mac over a model already in memory (tests, the benchmark); the bank as in load(). */
  static fromModel(model: MacModel, opts: MacFromModelOptions = {}): Mac {
    const tempDir = opts.bank === undefined ? mkdtempSync(join(tmpdir(), "mac-lm-bank-")) : null;
    const dir = opts.bank ?? tempDir!;
    try {
      if (!opts.readonly) mkdirSync(dir, { recursive: true });
      const existed = existsSync(bankFileOf(dir));
      const bank = MemoryBank.open(bankFileOf(dir), {
        T: opts.readonly ? undefined : model.numSlots,
        d: opts.readonly ? undefined : model.base.hiddenSize,
        dtype: opts.readonly ? undefined : opts.dtype,
        // A new bank records it; an existing one is compared below (with a message a user understands).
        ...(existed ? {} : { modelFingerprint: opts.fingerprint }),
        readonly: opts.readonly ?? false,
      });
      const stored = bank.config.modelFingerprint;
      if (
        existed &&
        opts.fingerprint !== undefined &&
        stored !== opts.fingerprint &&
        stored !== opts.legacyFingerprint
      ) {
        bank.close();
        throw new MacLmError(
          "MACLM_CONFIG_MISMATCH",
          `memory bank ${bank.path} was made with another checkpoint or other base models than ${opts.checkpoint ?? "this model"} (bank fingerprint ${stored ?? "(none)"}, now ${opts.fingerprint}); its entries would give wrong answers. Use the checkpoint and models it was made with, or adapt the documents into a new bank`,
        );
      }
      if (bank.config.T !== model.numSlots || bank.config.d !== model.base.hiddenSize) {
        bank.close();
        throw new MacLmError(
          "MACLM_CONFIG_MISMATCH",
          `memory bank ${bank.path} holds entries of (T, d) = (${bank.config.T}, ${bank.config.d}); this model makes (${model.numSlots}, ${model.base.hiddenSize})`,
        );
      }
      return new Mac(model, bank, dir, opts.ownsModel ?? false, tempDir);
    } catch (e) {
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      throw e;
    }
  }

  // ---- documents --------------------------------------------------------------------------------------------

  /**
   * Amortizes the documents (one forward pass each, no gradient) and stores their entries; resolves once they are
   * durable. Each batch is one transaction: a failure leaves the batches before it stored and nothing of its own.
   */
  async adapt(documents: readonly MacDocument[], opts: AdaptOptions = {}): Promise<AdaptResult> {
    this.live("adapt");
    const t0 = performance.now();
    const docs = documents.map((d, i) => checkDocument(d, i));
    const seen = new Set<string>();
    for (const d of docs) {
      if (seen.has(d.id))
        throw new MacLmError("MACLM_DUPLICATE_ID", `adapt: document id "${d.id}" appears twice in one call`);
      seen.add(d.id);
    }
    const batchSize = opts.batchSize ?? 8;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `adapt: batchSize must be an integer ≥ 1, got ${batchSize}`);
    const result: AdaptResult = {
      added: [],
      replaced: [],
      skipped: [],
      windows: [],
      timings: { amortizeMs: 0, writeMs: 0, totalMs: 0 },
    };
    const todo: MacDocument[] = [];
    for (const d of docs) {
      const stored = this.bank.has(d.id);
      if (stored && opts.onExisting === "skip") result.skipped.push(d.id);
      else {
        (stored ? result.replaced : result.added).push(d.id);
        todo.push(d);
      }
    }
    for (let i = 0; i < todo.length; i += batchSize) {
      checkSignal(opts.signal, "adapt");
      this.live("adapt");
      const batch = todo.slice(i, i + batchSize);
      scope(() => {
        const ta = performance.now();
        // A document longer than the amortizer reads is several overlapping windows, one entry each.
        const amortized = amortizeDocuments(
          this.model,
          batch.map((d) => d.text),
          batchSize,
        );
        const tw = performance.now();
        result.timings.amortizeMs += tw - ta;
        try {
          this.bank.putDocuments(
            batch.map((d, j) => ({
              id: d.id,
              text: d.text,
              title: d.title ?? null,
              meta: d.meta ?? null,
              entries: amortized[j]!.entries,
            })),
          );
        } finally {
          for (const a of amortized) a.entries.dispose();
        }
        batch.forEach((d, j) => {
          const n = amortized[j]!.windows.length;
          if (n > 1) result.windows.push({ id: d.id, chars: d.text.length, windows: n });
        });
        result.timings.writeMs += performance.now() - tw;
      });
      this.invalidate();
      opts.onProgress?.(Math.min(todo.length, i + batchSize), todo.length);
      await nextTurn(); // lets freed tensors' finalizers run, and other work (asks) interleave
    }
    result.timings.totalMs = performance.now() - t0;
    return result;
  }

  /** Removes a document's entries and text durably; false if it was not stored. */
  async forget(id: string): Promise<boolean> {
    this.live("forget");
    const removed = this.bank.removeDocument(id);
    if (removed) this.invalidate();
    return removed;
  }

  /** The stored documents, in insertion order. */
  documents(): BankDocumentInfo[] {
    this.live("documents");
    return this.bank.documents();
  }

  /** A stored document's text, or undefined. */
  documentText(id: string): string | undefined {
    this.live("documentText");
    return this.bank.documentText(id);
  }

  /** Documents and entries in the bank. */
  stats(): { documents: number; entries: number } {
    this.live("stats");
    return { documents: this.bank.documentCount, entries: this.bank.count };
  }

  // ---- answering --------------------------------------------------------------------------------------------

  /** Answers a question from the memory (or without it); see AskOptions. */
  async ask(question: string, opts: AskOptions = {}): Promise<AskResult> {
    const s = this.stream(question, opts);
    for await (const piece of s) void piece;
    return s.result;
  }

  /** Like ask(), streaming the answer's text as it is generated (one piece per token with greedy decoding). */
  stream(question: string, opts: AskOptions = {}): AskStream {
    let resolve!: (r: AskResult) => void;
    let reject!: (e: unknown) => void;
    const result = new Promise<AskResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    result.catch(() => {}); // the iterator rethrows; an unobserved result must not crash the process
    const iterate = async function* (this: Mac): AsyncGenerator<string, void, undefined> {
      let settled = false;
      try {
        const r = yield* this.#run(question, opts);
        settled = true;
        resolve(r);
      } catch (e) {
        settled = true;
        reject(e);
        throw e;
      } finally {
        // The consumer stopped early (break): generation stopped with it, and there is no result.
        if (!settled)
          reject(new MacLmError("MACLM_ABORTED", "Mac.stream: the stream was closed before the answer ended"));
      }
    }.bind(this);
    let started = false;
    return {
      result,
      [Symbol.asyncIterator]: () => {
        if (started) throw new MacLmError("MACLM_BAD_ARGUMENT", "Mac.stream: a stream can be iterated once");
        started = true;
        return iterate();
      },
    };
  }

  /**
   * The modulation φ* for a batch of questions over the current bank (undefined if it is empty), for callers that
   * generate themselves (the benchmark's batched answering). Under noGrad; the caller's scope owns the result.
   */
  modulation(questions: readonly string[], opts: { hierarchical?: number } = {}): Modulation | undefined {
    this.live("modulation");
    if (this.bank.count === 0) return undefined;
    return noGrad(() => {
      const q0 = this.model.encodeQuestions(questions); // (B, T, d)
      const M = opts.hierarchical;
      return M ? this.model.modulate(q0, this.groups(M), { groupSize: M }) : this.model.modulate(q0, this.full());
    });
  }

  /**
   * Extractive memories only (MacModel.selects): the window each question's aggregator chooses from the bank, for
   * callers that put it in a prompt of their own. With `documentScores: true` each choice also carries every
   * stored document's score (documentScores(), from the same scoring pass): BM25 + MAC needs both. Empty bank: an
   * empty array. Hierarchical (groups of M streamed from disk) chooses exactly what full aggregation does.
   */
  chooseWindows(
    questions: readonly string[],
    opts: { hierarchical?: number; documentScores?: boolean } = {},
  ): ChosenWindow[] {
    return this.scoreWindows("chooseWindows", questions, opts).map((row) => {
      let best = 0;
      for (let e = 1; e < row.length; e++) if (row[e]! > row[best]!) best = e;
      const chosen: ChosenWindow = { ...this.windowOf(best), score: row[best]! };
      if (opts.documentScores) chosen.documents = this.bestPerDocument(row);
      return chosen;
    });
  }

  /**
   * Extractive memories only: for each question, every stored document's score — its best window's — so a caller
   * can weigh the memory's evidence for a document against another ranker's (BM25 + MAC fuses it with BM25's).
   * The document of chooseWindows' window has the highest. Empty bank: an empty array.
   */
  documentScores(questions: readonly string[], opts: { hierarchical?: number } = {}): Map<string, number>[] {
    return this.scoreWindows("documentScores", questions, opts).map((row) => this.bestPerDocument(row));
  }

  /** Each document's best score in a row of entry scores (bank order). */
  private bestPerDocument(row: Float32Array): Map<string, number> {
    const ids = this.entryDocIds();
    const best = new Map<string, number>();
    row.forEach((s, e) => {
      const id = ids[e]!;
      if (!best.has(id) || s > best.get(id)!) best.set(id, s);
    });
    return best;
  }

  /** The aggregator's score of every bank entry for each question (rows in bank order; none for an empty bank). */
  private scoreWindows(op: string, questions: readonly string[], opts: { hierarchical?: number }): Float32Array[] {
    this.live(op);
    if (!this.model.selects)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `${op}: this checkpoint's memory mixes entries, it does not choose windows`,
      );
    if (this.bank.count === 0 || questions.length === 0) return [];
    const M = opts.hierarchical;
    return noGrad(() =>
      scope(() => this.model.entryScores(this.model.encodeQuestions(questions), M ? this.groups(M) : this.full())),
    );
  }

  /** Frees the model (if owned) and closes the bank. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.invalidate();
    this.bank.close();
    if (this.#ownsModel) {
      this.model.dispose();
      this.model.base.dispose();
    }
    if (this.#tempDir) rmSync(this.#tempDir, { recursive: true, force: true });
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- internals --------------------------------------------------------------------------------------------

  private live(op: string): void {
    if (this.#closed) throw new MacLmError("MACLM_DISPOSED", `Mac.${op}: this Mac is closed`);
  }

  private invalidate(): void {
    this.#full?.dispose();
    this.#full = null;
    this.#entryDocIds = null;
  }

  private full(): Tensor {
    this.#full ??= untrack(noGrad(() => this.bank.loadAll()));
    return this.#full;
  }

  private groups(M: number): Iterable<Tensor> {
    return { [Symbol.iterator]: () => this.bank.groups(M) };
  }

  private entryDocIds(): string[] {
    this.#entryDocIds ??= this.bank.entryDocIds();
    return this.#entryDocIds;
  }

  /** The document window that bank entry `e` holds (a document's entries are stored together, in window order). */
  private windowOf(e: number): Omit<ChosenWindow, "score"> {
    const ids = this.entryDocIds();
    const id = ids[e]!;
    const first = ids.indexOf(id);
    const a = this.model.amortizer;
    const text = documentWindows(this.bank.documentText(id) ?? "", a.tokenizer, a.maxLength)[e - first];
    if (text === undefined)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `memory bank ${this.bank.path}: entry ${e} of "${id}" has no window of its text`,
      );
    return { id, window: e - first, text };
  }

  async *#run(question: string, opts: AskOptions): AsyncGenerator<string, AskResult, undefined> {
    this.live("ask");
    const t0 = performance.now();
    if (typeof question !== "string" || question.trim().length === 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", "ask: the question must be a non-empty string");
    const M = groupSizeOf(opts.hierarchical);
    const maxSources = opts.maxSources ?? 5;
    if (!Number.isInteger(maxSources) || maxSources < 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `ask: maxSources must be an integer ≥ 0, got ${maxSources}`);
    const decoding = decodingOf(opts);
    checkSignal(opts.signal, "ask");
    const useMemory = (opts.memory ?? true) && this.bank.count > 0;
    const timings: AskTimings = { encodeMs: 0, aggregateMs: 0, generateMs: 0, totalMs: 0 };
    let sources: Source[] = [];
    const memory = useMemory
      ? { documents: this.bank.documentCount, entries: this.bank.count }
      : { documents: 0, entries: 0 };

    // φ*: encode, aggregate (recording attention for provenance when sources are wanted), modulate. Owned here
    // (untracked) until generation is done, across the awaits between tokens.
    let modulation: Modulation | undefined;
    if (useMemory)
      modulation = noGrad(() =>
        scope(() => {
          const te = performance.now();
          const q0 = this.model.encodeQuestions([question]); // (1, T, d)
          const ta = performance.now();
          timings.encodeMs = ta - te;
          let z: Tensor;
          let shares: Float64Array | null = null;
          if (M === undefined) {
            if (maxSources > 0) {
              const r = aggregateWithShares(this.model.aggregator, q0, this.full());
              z = r.z;
              shares = r.shares[0]!;
            } else z = aggregateFull(this.model.aggregator, q0, this.full());
          } else {
            z = aggregateHierarchical(this.model.aggregator, q0, this.groups(M), M);
            if (maxSources > 0) shares = hierarchicalShares(this.model.aggregator, q0, this.groups(M), M);
          }
          const mod = this.model.modulation.forward(z);
          timings.aggregateMs = performance.now() - ta;
          if (shares) sources = this.sourcesOf(shares, question, maxSources);
          return mod;
        }),
      );
    // What the modulation holds of the model's own weights (if any) is not ours to free.
    const weights = new Set<Tensor>([...this.model.parameters(), ...this.model.base.parameters()]);
    const owned = modulation ? tensorsOf(modulation).filter((t) => !weights.has(t)) : [];
    for (const t of owned) untrack(t);

    const tg = performance.now();
    try {
      const tok = this.model.baseTokenizer;
      const prompt = tok.encode(this.model.prompt(question), { addSpecialTokens: false });
      const genOpts: GenerateOptions = { eosTokenId: tok.eosId, ...decoding, modulation };
      let text = "";
      if ((decoding.numBeams ?? 1) === 1) {
        const ids: number[] = [];
        let emitted = "";
        const tokens = greedyTokens(this.model.base, prompt, genOpts);
        try {
          for (const id of tokens) {
            ids.push(id);
            const now = tok.decode(ids, { skipSpecialTokens: true }).trimStart();
            // A token may end inside a multi-byte character: hold it back until the character is complete.
            if (!now.endsWith("\uFFFD") && now.length > emitted.length && now.startsWith(emitted)) {
              const piece = now.slice(emitted.length);
              emitted = now;
              yield piece;
            }
            await nextTurn();
            checkSignal(opts.signal, "ask");
            this.live("ask");
          }
        } finally {
          tokens.return();
        }
        text = tok.decode(ids, { skipSpecialTokens: true });
        const rest = text.trimStart().slice(emitted.length);
        if (rest.trim().length > 0 && text.trimStart().startsWith(emitted)) yield rest;
      } else {
        const out = noGrad(() => generate(this.model.base, [prompt], genOpts));
        text = tok.decode(out.sequences[0]!, { skipSpecialTokens: true });
        if (text.trim().length > 0) yield text.trim();
      }
      timings.generateMs = performance.now() - tg;
      timings.totalMs = performance.now() - t0;
      return { answer: text.trim(), sources, timings, memory };
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  /** Entry shares → documents (summed over their entries), strongest first, at most `max`. */
  private sourcesOf(shares: Float64Array, question: string, max: number): Source[] {
    const ids = this.entryDocIds();
    if (ids.length !== shares.length)
      throw new MacLmError(
        "MACLM_BAD_FILE",
        `memory bank ${this.bank.path}: ${ids.length} entries listed, ${shares.length} aggregated`,
      );
    const byDoc = new Map<string, number>();
    ids.forEach((id, i) => byDoc.set(id, (byDoc.get(id) ?? 0) + shares[i]!));
    // An extractive memory's LM read one window: its document comes first, with that window as its snippet.
    const read = this.model.selects
      ? this.windowOf(shares.reduce((best, v, i) => (v > shares[best]! ? i : best), 0))
      : null;
    const rank = (id: string): number => (id === read?.id ? 0 : 1);
    return [...byDoc.entries()]
      .sort((a, b) => rank(a[0]) - rank(b[0]) || b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, max)
      .map(([id, weight]) => {
        const info = this.bank.document(id);
        return {
          id,
          title: info?.title ?? null,
          weight,
          snippet:
            read?.id === id
              ? read.text.replace(/\s+/g, " ").trim()
              : snippetFor(this.bank.documentText(id) ?? "", question),
        };
      });
  }
}

function checkDocument(d: MacDocument, i: number): MacDocument {
  const where = `adapt: document ${i}`;
  if (d === null || typeof d !== "object") throw new MacLmError("MACLM_BAD_ARGUMENT", `${where} is not an object`);
  if (typeof d.id !== "string" || d.id.length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where}: id must be a non-empty string`);
  if (typeof d.text !== "string" || d.text.trim().length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where} ("${d.id}"): text must be a non-empty string`);
  if (d.title !== undefined && typeof d.title !== "string")
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where} ("${d.id}"): title must be a string`);
  if (d.meta !== undefined && (d.meta === null || typeof d.meta !== "object" || Array.isArray(d.meta)))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `${where} ("${d.id}"): meta must be a JSON object`);
  return d;
}

function checkSignal(signal: AbortSignal | undefined, op: string): void {
  if (signal?.aborted) throw new MacLmError("MACLM_ABORTED", `${op}: aborted`, { cause: signal.reason });
}

function groupSizeOf(h: number | boolean | undefined): number | undefined {
  if (h === undefined || h === false) return undefined;
  if (h === true) return DEFAULT_GROUP_SIZE;
  if (!Number.isInteger(h) || h < 2)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `ask: hierarchical group size must be an integer ≥ 2, got ${h}`);
  return h;
}

function decodingOf(opts: AskOptions): GenerateOptions {
  const d = opts.decoding ?? "greedy";
  const base: GenerateOptions =
    d === "greedy" ? { maxNewTokens: DEFAULT_MAX_NEW_TOKENS } : d === "mac" ? { ...MAC_DECODING } : { ...d };
  if (typeof d === "string" && d !== "greedy" && d !== "mac")
    throw new MacLmError("MACLM_BAD_ARGUMENT", `ask: decoding must be "greedy", "mac" or options, got "${d}"`);
  if (opts.maxNewTokens !== undefined) {
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `ask: maxNewTokens must be an integer ≥ 1, got ${opts.maxNewTokens}`);
    base.maxNewTokens = opts.maxNewTokens;
  }
  return base;
}

/** Every tensor in a modulation (prefix keys/values, LoRA deltas). */
function tensorsOf(value: unknown, out: Tensor[] = []): Tensor[] {
  if (value === null || typeof value !== "object") return out;
  if ((value as { isTensor?: boolean }).isTensor === true) out.push(value as Tensor);
  else if (Array.isArray(value)) for (const v of value) tensorsOf(v, out);
  else for (const v of Object.values(value)) tensorsOf(v, out);
  return out;
}
