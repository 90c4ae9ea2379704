/**
 * Hierarchical (divide-and-conquer) aggregation, the paper's memory-bounded alternative to aggregating the whole
 * bank at once (reference amortized_encdec.py get_hierarchical_context / hierarchical_aggregate, §3.3):
 *
 *   while N > M:  split the bank into consecutive groups of M entries (the last one may be smaller),
 *                 aggregate each group with the question → one entry (T, d) per question per group;
 *                 those outputs, in order, are the new bank (now one bank per question: (Bq, N', T, d))
 *   final:        aggregate the remaining ≤ M entries.
 *
 * The release's bug is fixed: its chunk loop ran over the padded question length instead of the bank length
 * (dropping most of the bank) and concatenated the outputs along the question batch (correct only for Bq = 1).
 * Here every entry is used and each question keeps its own bank from the second level on.
 *
 * Streaming. The bank may be a tensor (N, T, d) or an (async) iterable of chunks (n_i, T, d) of any sizes, e.g.
 * read from disk; chunks are consumed as they come and never all held. The levels are computed on the fly with
 * one buffer of at most M entries per level, and a level's full buffer is aggregated only once another entry
 * arrives after it (so a level that ends with exactly M entries is the final one, as in the loop above). The
 * groups, their order and every aggregator call are therefore exactly those of the level-by-level loop, and
 * the working memory is O(M·T·d·Bq) per level, O(M·T·d·Bq·log_M N) in all.
 *
 * Under noGrad() intermediate tensors are freed as soon as they are consumed, which is what bounds the memory.
 * With gradients recorded everything the graph needs is kept (gradients flow into q0, the memory chunks and the
 * aggregator's parameters). Chunks from an iterable belong to the caller: they are copied into the level-0
 * buffer (never kept by reference past the next chunk), so a source may free or reuse a chunk once the next
 * one is requested.
 *
 * Batching. The first level, which holds all N entries, is computed a batch of groups at a time: up to
 * `batchGroups` consecutive full groups go through the aggregator in one call (each group is one element of the
 * batch, the questions' tokens folded into the token axis, which leaves every token's result unchanged), so a
 * large bank costs about what full aggregation costs instead of N/M small calls (measured: 4-7× faster at 4k
 * entries). The groups and the levels are those of the loop above; the working memory stays bounded, by
 * batchGroups·M entries at level 0.
 *
 * With N ≤ M (known up front for a tensor bank) this is exactly aggregator.forward(q0, bank).
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import {
  type Tensor,
  concat,
  expand,
  isGradEnabled,
  reshape,
  scope,
  slice,
  stack,
  untrack,
} from "../../tensor/index.js";
import type { Aggregator } from "./aggregator.js";
import type { SelectAggregator } from "./select.js";

/** An aggregation network: MAC's cross-attention blocks, or the extractive memory's selection. */
export type MemoryAggregator = Aggregator | SelectAggregator;

export type MemorySource = Tensor | Iterable<Tensor>;
export type AsyncMemorySource = MemorySource | AsyncIterable<Tensor>;

const isTensor = (x: unknown): x is Tensor => (x as { isTensor?: boolean } | null)?.isTensor === true;

/** The level buffers of one hierarchical aggregation (see the module comment). */
class Hierarchy {
  /** Level 0: pieces (n_i, T, d) of the shared bank, at most batchGroups·M entries in all, owned (copies). */
  private pieces: Tensor[] = [];
  private count0 = 0;
  /** Levels ≥ 1: entries (Bq, T, d), at most M per level. */
  private levels: Tensor[][] = [];
  /** Whether a level has already passed a group up (then it is not the top level). */
  private emitted: boolean[] = [false];
  private seen = 0;
  /** Slots per entry (Tm), from the first chunk. */
  private slots: number | null = null;
  private readonly trainable: boolean;

  /** Level-0 entries aggregated per batch: batchGroups full groups. */
  private readonly cap0: number;

  constructor(
    private readonly agg: MemoryAggregator,
    private readonly q0: Tensor,
    private readonly M: number,
    batchGroups: number,
  ) {
    this.trainable = q0.requiresGrad || agg.parameters().some((p) => p.requiresGrad);
    this.cap0 = M * batchGroups;
  }

  /** Whether aggregating over `inputs` would be recorded by autograd (then nothing it reads may be freed). */
  private recording(inputs: readonly Tensor[]): boolean {
    return isGradEnabled() && (this.trainable || inputs.some((t) => t.requiresGrad));
  }

  /**
   * Aggregates one group (shared (m, T, d) or per-question (Bq, m, T, d)) -> (Bq, T, d). Without autograd the
   * group is freed at once, and intermediate outputs are owned here (untracked) until their own group is done;
   * the final output goes to the caller's scope.
   */
  private aggregate(parts: Tensor[], build: (parts: Tensor[]) => Tensor, final = false): Tensor {
    if (this.recording(parts)) return this.agg.forward(this.q0, build(parts));
    const out = scope(() => this.agg.forward(this.q0, build(parts)));
    for (const p of parts) p.dispose();
    return final ? out : untrack(out);
  }

  /** Frees the buffers after a failure (without autograd; with it, they belong to the graph and the caller's scope). */
  abort(): void {
    if (this.recording([])) return;
    for (const t of [...this.pieces, ...this.levels.flat()]) t.dispose();
    this.pieces = [];
    this.levels = [];
  }

  private pushEntry(level: number, e: Tensor): void {
    while (this.levels.length < level) this.levels.push([]);
    while (this.emitted.length <= level) this.emitted.push(false);
    const buf = this.levels[level - 1]!;
    if (buf.length === this.M) {
      this.levels[level - 1] = [];
      this.emitted[level] = true;
      this.pushEntry(
        level + 1,
        this.aggregate(buf, (p) => stack(p, 1)),
      );
      this.levels[level - 1]!.push(e);
    } else buf.push(e);
  }

  /**
   * Level-0 groups of `bank` (n, T, d), n ≤ batchGroups·M, consecutive and in order -> ceil(n/M) entries
   * (Bq, T, d): the full groups in one batched aggregator call, a last partial group (only at the end of the bank)
   * in its own call.
   */
  private level0Groups(bank: Tensor): Tensor[] {
    const [n, Tm, d] = bank.shape as [number, number, number];
    const [Bq, T] = [this.q0.dim(0), this.q0.dim(1)];
    const M = this.M;
    const full = Math.floor(n / M);
    const out: Tensor[] = [];
    if (full > 0) {
      const groups = reshape(full * M === n ? bank : slice(bank, 0, 0, full * M), [full, M, Tm, d]);
      // Every question's tokens attend to each group alike: fold the questions into the token axis, one batch
      // element per group.
      const q = expand(reshape(this.q0, [1, Bq * T, d]), [full, Bq * T, d]);
      const z = reshape(this.agg.forward(q, groups), [full, Bq, T, d]);
      for (let g = 0; g < full; g++) out.push(reshape(slice(z, 0, g, g + 1), [Bq, T, d]));
    }
    if (full * M < n) out.push(this.agg.forward(this.q0, slice(bank, 0, full * M, n)));
    return out;
  }

  /** Aggregates the level-0 buffer and passes its entries up to level 1. */
  private emitLevel0(): void {
    const pieces = this.pieces;
    this.pieces = [];
    this.count0 = 0;
    this.emitted[0] = true;
    const build = (): Tensor[] => this.level0Groups(pieces.length === 1 ? pieces[0]! : concat(pieces, 0));
    let entries: Tensor[];
    if (this.recording(pieces)) entries = build();
    else {
      entries = scope(build);
      for (const p of pieces) p.dispose();
      entries = entries.map((e) => untrack(e));
    }
    for (const e of entries) this.pushEntry(1, e);
  }

  /** Consumes a chunk (n, T, d) of the bank, copying what it keeps. */
  push(chunk: Tensor): void {
    if (chunk.ndim !== 3 || chunk.dim(2) !== this.q0.dim(2))
      throw new ShapeError(
        "aggregateHierarchical",
        `memory chunk ${fmtShape(chunk.shape)} must be (n, T, ${this.q0.dim(2)}) for queries ${fmtShape(this.q0.shape)}`,
      );
    if (chunk.dim(0) === 0) return;
    this.slots ??= chunk.dim(1);
    if (chunk.dim(1) !== this.slots)
      throw new ShapeError(
        "aggregateHierarchical",
        `memory chunk ${fmtShape(chunk.shape)} has ${chunk.dim(1)} slots per entry, earlier chunks ${this.slots}`,
      );
    const n = chunk.dim(0);
    let off = 0;
    while (off < n) {
      if (this.count0 === this.cap0) this.emitLevel0();
      const take = Math.min(this.cap0 - this.count0, n - off);
      const piece = slice(chunk, 0, off, off + take); // a copy: the chunk stays the caller's
      this.pieces.push(this.recording([chunk]) ? piece : untrack(piece));
      this.count0 += take;
      off += take;
    }
    this.seen += n;
  }

  /** Flushes the partial groups bottom-up and runs the final aggregation -> (Bq, T, d). */
  finish(): Tensor {
    if (this.seen === 0) throw new ShapeError("aggregateHierarchical", "the memory bank is empty");
    if (!this.emitted[0]! && this.count0 <= this.M) {
      // N ≤ M: one aggregation over the whole bank.
      const pieces = this.pieces;
      this.pieces = [];
      return this.aggregate(pieces, (p) => (p.length === 1 ? p[0]! : concat(p, 0)), true);
    }
    this.emitLevel0();
    for (let level = 1; ; level++) {
      const buf = this.levels[level - 1]!;
      if (!this.emitted[level]) {
        this.levels = [];
        return this.aggregate(buf, (p) => stack(p, 1), true); // the top level: ≤ M entries
      }
      this.levels[level - 1] = [];
      this.pushEntry(
        level + 1,
        this.aggregate(buf, (p) => stack(p, 1)),
      );
    }
  }
}

export interface HierarchicalOptions {
  /** Level-0 groups aggregated per aggregator call (default: as many as make 256 entries, at least 1). */
  batchGroups?: number;
}

const batchGroupsOf = (groupSize: number, opts: HierarchicalOptions): number => {
  const b = opts.batchGroups ?? Math.max(1, Math.floor(256 / groupSize));
  if (!Number.isInteger(b) || b < 1)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `aggregateHierarchical: batchGroups must be an integer ≥ 1, got ${b}`);
  return b;
};

function checkArgs(agg: MemoryAggregator, q0: Tensor, groupSize: number): void {
  // M = 1 would never shrink the bank (each group of one entry becomes one entry).
  if (!Number.isInteger(groupSize) || groupSize < 2)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `aggregateHierarchical: group size M must be an integer ≥ 2, got ${groupSize}`,
    );
  if (q0.ndim !== 3 || q0.dim(2) !== agg.dim)
    throw new ShapeError("aggregateHierarchical", `queries ${fmtShape(q0.shape)} must be (Bq, T, ${agg.dim})`);
}

/**
 * Hierarchical aggregation of a bank (N, T, d) or a stream of chunks (n_i, T, d) with group size M:
 * q0 (Bq, T, d) -> (Bq, T, d). See the module comment.
 */
export function aggregateHierarchical(
  agg: MemoryAggregator,
  q0: Tensor,
  bank: MemorySource,
  groupSize: number,
  opts: HierarchicalOptions = {},
): Tensor {
  checkArgs(agg, q0, groupSize);
  const batchGroups = batchGroupsOf(groupSize, opts);
  if (isTensor(bank) && bank.ndim === 3 && bank.dim(0) <= groupSize && bank.dim(0) > 0) return agg.forward(q0, bank);
  const h = new Hierarchy(agg, q0, groupSize, batchGroups);
  try {
    if (isTensor(bank)) h.push(bank);
    else for (const chunk of bank) h.push(chunk);
    return h.finish();
  } catch (e) {
    h.abort();
    throw e;
  }
}

/** aggregateHierarchical() for a source that yields chunks asynchronously (e.g. read from disk). */
export async function aggregateHierarchicalAsync(
  agg: MemoryAggregator,
  q0: Tensor,
  bank: AsyncMemorySource,
  groupSize: number,
  opts: HierarchicalOptions = {},
): Promise<Tensor> {
  if (isTensor(bank) || Symbol.iterator in (bank as object))
    return aggregateHierarchical(agg, q0, bank as MemorySource, groupSize, opts);
  checkArgs(agg, q0, groupSize);
  const h = new Hierarchy(agg, q0, groupSize, batchGroupsOf(groupSize, opts));
  try {
    for await (const chunk of bank as AsyncIterable<Tensor>) h.push(chunk);
    return h.finish();
  } catch (e) {
    h.abort();
    throw e;
  }
}

/** Aggregation over the whole bank at once (the reference's evaluation mode): q0 (Bq, T, d) -> (Bq, T, d). */
export function aggregateFull(agg: MemoryAggregator, q0: Tensor, bank: Tensor): Tensor {
  return agg.forward(q0, bank);
}
