/**
 * `npx tsx dev/bench/bank.ts [--n 100000] [--T 12] [--d 576] [--dtype float16] [--batch 16] [--group 32] [--json FILE]`
 *
 * Memory-bank throughput at a realistic entry size (defaults: GPT-2-small MAC, T = 12 tokens of d = 576,
 * float16, 100k entries ≈ 1.4 GB on disk). Prints one JSON object:
 *   append   entries/s appending in batches of `batch` (one durable transaction each, as MAC's amortization
 *            batches of 16 would), and for single-entry appends (one fsync each) over the first 500 entries;
 *   open     ms to open the full bank (meta + count; no payload is read), and ms to list all ids;
 *   stream   entries/s and MB/s (float32 output) through groups(group), with the peak RSS growth while streaming;
 *   get      ms for get() of 32 random ids.
 * The bank is written to a temporary directory and deleted afterwards.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { type BankDType, type BankEntryInput, MemoryBank } from "../../src/mac/memory/bank.js";
import { liveNativeMemory } from "../../src/tensor/tensor.js";

const { values: args } = parseArgs({
  options: {
    n: { type: "string", default: "100000" },
    T: { type: "string", default: "12" },
    d: { type: "string", default: "576" },
    dtype: { type: "string", default: "float16" },
    batch: { type: "string", default: "16" },
    group: { type: "string", default: "32" },
    json: { type: "string" },
  },
});
const N = Number(args.n);
const T = Number(args.T);
const d = Number(args.d);
const dtype = args.dtype as BankDType;
const batch = Number(args.batch);
const M = Number(args.group);
const round = (x: number, k = 1): number => Math.round(x * 10 ** k) / 10 ** k;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "maclm-bench-bank-"));
const file = path.join(dir, "bank.sqlite");
try {
  // Latent of entry k: a fixed random-looking base, shifted per entry (contents do not affect SQLite's speed).
  const base = new Float32Array(T * d);
  for (let j = 0; j < base.length; j++) base[j] = Math.sin(j * 12.9898) * 3;
  const latentOf = (k: number): Float32Array => {
    const x = base.slice();
    x[0] = k % 1000;
    return x;
  };

  const bank = MemoryBank.open(file, { T, d, dtype, modelFingerprint: "bench" });
  const singles = Math.min(500, N);
  let t0 = performance.now();
  for (let k = 0; k < singles; k++) bank.append({ id: `doc-${k}`, latent: latentOf(k) });
  const singleRate = singles / ((performance.now() - t0) / 1000);

  t0 = performance.now();
  for (let s = singles; s < N; s += batch) {
    const entries: BankEntryInput[] = [];
    for (let k = s; k < Math.min(s + batch, N); k++)
      entries.push({ id: `doc-${k}`, latent: latentOf(k), metadata: { k } });
    bank.append(entries);
  }
  const batchRate = (N - singles) / ((performance.now() - t0) / 1000);
  bank.close();
  const fileBytes = fs.statSync(file).size + (fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0);

  t0 = performance.now();
  const r = MemoryBank.open(file, { T, d, dtype });
  const count = r.count;
  const openMs = performance.now() - t0;
  t0 = performance.now();
  const ids = r.ids();
  const idsMs = performance.now() - t0;
  if (count !== N || ids.length !== N)
    throw new Error(`bank holds ${count} entries (${ids.length} ids), expected ${N}`);

  const rss0 = process.memoryUsage().rss;
  let rssPeak = rss0;
  let nativePeak = 0;
  let streamed = 0;
  t0 = performance.now();
  for (const g of r.groups(M)) {
    streamed += g.dim(0);
    nativePeak = Math.max(nativePeak, liveNativeMemory().bytes);
    if (streamed % (M * 64) === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    g.dispose();
  }
  const streamS = (performance.now() - t0) / 1000;
  if (streamed !== N) throw new Error(`streamed ${streamed} entries, expected ${N}`);

  const pick = Array.from({ length: 32 }, (_, i) => `doc-${(i * 7919) % N}`);
  t0 = performance.now();
  r.get(pick).dispose();
  const getMs = performance.now() - t0;
  r.close();

  const result = {
    config: { N, T, d, dtype, batch, group: M },
    fileMB: round(fileBytes / 2 ** 20),
    append: { batchedEntriesPerS: Math.round(batchRate), singleEntriesPerS: Math.round(singleRate) },
    open: { ms: round(openMs, 2), listIdsMs: round(idsMs) },
    stream: {
      entriesPerS: Math.round(N / streamS),
      float32MBPerS: round((N * T * d * 4) / 2 ** 20 / streamS),
      seconds: round(streamS, 2),
      rssGrowthMB: round((rssPeak - rss0) / 2 ** 20),
      peakNativeTensorMB: round(nativePeak / 2 ** 20, 2),
    },
    get: { ids: pick.length, ms: round(getMs, 2) },
    machine: { cpus: os.cpus().length, node: process.version },
  };
  const json = JSON.stringify(result, null, 2);
  if (args.json !== undefined) fs.writeFileSync(args.json, json + "\n");
  process.stdout.write(json + "\n");
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
