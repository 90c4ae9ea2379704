/**
 * The server's one writer: document additions and removals go through this queue, in arrival order, one at a time,
 * while asks run concurrently (they read the bank between the writer's batches). Consecutive additions waiting in
 * the queue are amortized together, as one Mac.adapt call (up to maxBatchDocs documents): under load, many small
 * requests cost about what one large one does. A request's promise resolves only once its documents are durable
 * (Mac.adapt returns after the bank's transaction is committed), which is when the server acknowledges it.
 */
import type { AdaptResult, Mac, MacDocument } from "../api/mac.js";

interface AddJob {
  kind: "add";
  docs: MacDocument[];
  resolve: (r: AdaptResult) => void;
  reject: (e: unknown) => void;
}
interface RemoveJob {
  kind: "remove";
  id: string;
  resolve: (removed: boolean) => void;
  reject: (e: unknown) => void;
}
type Job = AddJob | RemoveJob;

export interface WriterStats {
  queued: number;
  batches: number;
  documentsAdded: number;
  documentsRemoved: number;
  lastBatchDocs: number;
  /** Most documents amortized in one batch so far. */
  maxBatchDocs: number;
}

export class WriterQueue {
  private readonly jobs: Job[] = [];
  private running: Promise<void> | null = null;
  readonly stats: WriterStats = {
    queued: 0,
    batches: 0,
    documentsAdded: 0,
    documentsRemoved: 0,
    lastBatchDocs: 0,
    maxBatchDocs: 0,
  };

  constructor(
    private readonly mac: Mac,
    private readonly opts: { maxBatchDocs: number; adaptBatchSize: number; lingerMs?: number },
  ) {}

  add(docs: MacDocument[]): Promise<AdaptResult> {
    return new Promise((resolve, reject) => this.push({ kind: "add", docs, resolve, reject }));
  }

  remove(id: string): Promise<boolean> {
    return new Promise((resolve, reject) => this.push({ kind: "remove", id, resolve, reject }));
  }

  /** Jobs waiting or running (documents for additions). */
  get depth(): number {
    return this.jobs.reduce((n, j) => n + (j.kind === "add" ? j.docs.length : 1), 0);
  }

  /** Resolves when every job queued so far is done. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private push(job: Job): void {
    this.jobs.push(job);
    this.stats.queued = this.depth;
    this.running ??= this.loop().finally(() => (this.running = null));
  }

  private async loop(): Promise<void> {
    while (this.jobs.length > 0) {
      const first = this.jobs[0]!;
      if (first.kind === "remove") {
        this.jobs.shift();
        try {
          const removed = await this.mac.forget(first.id);
          if (removed) this.stats.documentsRemoved++;
          first.resolve(removed);
        } catch (e) {
          first.reject(e);
        }
      } else {
        // Waiting a moment lets additions arriving together share one batch (with a slow amortizer they queue up
        // behind the running batch anyway).
        if (this.opts.lingerMs) await new Promise((r) => setTimeout(r, this.opts.lingerMs));
        await this.runAdds(this.takeAdds());
      }
      this.stats.queued = this.depth;
    }
  }

  /** The consecutive additions at the head of the queue, up to maxBatchDocs documents and without repeated ids. */
  private takeAdds(): AddJob[] {
    const batch: AddJob[] = [];
    const ids = new Set<string>();
    let n = 0;
    while (this.jobs.length > 0) {
      const j = this.jobs[0]!;
      if (j.kind !== "add") break;
      if (batch.length > 0 && (n + j.docs.length > this.opts.maxBatchDocs || j.docs.some((d) => ids.has(d.id)))) break;
      this.jobs.shift();
      batch.push(j);
      n += j.docs.length;
      for (const d of j.docs) ids.add(d.id);
    }
    return batch;
  }

  private async runAdds(batch: AddJob[]): Promise<void> {
    const docs = batch.flatMap((j) => j.docs);
    this.stats.batches++;
    this.stats.lastBatchDocs = docs.length;
    this.stats.maxBatchDocs = Math.max(this.stats.maxBatchDocs, docs.length);
    try {
      const r = await this.mac.adapt(docs, { batchSize: this.opts.adaptBatchSize });
      this.stats.documentsAdded += docs.length;
      for (const j of batch) j.resolve(split(r, j.docs));
    } catch (e) {
      if (batch.length === 1) return batch[0]!.reject(e);
      // One request's failure must not fail the others batched with it: retry each alone.
      for (const j of batch)
        try {
          const r = await this.mac.adapt(j.docs, { batchSize: this.opts.adaptBatchSize });
          this.stats.documentsAdded += j.docs.length;
          j.resolve(r);
        } catch (err) {
          j.reject(err);
        }
    }
  }
}

/** The part of a batched result that concerns one request's documents. */
function split(r: AdaptResult, docs: readonly MacDocument[]): AdaptResult {
  const mine = new Set(docs.map((d) => d.id));
  return {
    added: r.added.filter((id) => mine.has(id)),
    replaced: r.replaced.filter((id) => mine.has(id)),
    skipped: r.skipped.filter((id) => mine.has(id)),
    windows: r.windows.filter((w) => mine.has(w.id)),
    timings: r.timings,
  };
}
