/**
 * `mac-lm adapt`: online adaptation. Each document goes through the amortization network once (no gradients) and its
 * memory entry is appended to the bank (a durable SQLite file: an acknowledged document survives a crash).
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../../errors.js";
import { loadSquad } from "../../data/squad.js";
import { checkpointFingerprint, loadMac } from "../../mac/io.js";
import { MemoryBank } from "../../mac/memory/bank.js";
import { scope } from "../../tensor/index.js";
import type { CliIO } from "../main.js";

export interface AdaptCommandOptions {
  checkpoint: string;
  bank: string;
  file?: string;
  squad?: string;
  batchSize: number;
  dtype: "float32" | "float16";
  cache?: string;
}

export const bankFile = (dir: string): string => join(dir, "bank.sqlite");
export const docId = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 24);

/** Documents from positional texts, a text file (blank-line separated) or a SQuAD file (unique contexts). */
export function readDocuments(texts: readonly string[], o: { file?: string; squad?: string }): string[] {
  const docs = [...texts];
  if (o.file)
    docs.push(
      ...readFileSync(o.file, "utf8")
        .split(/\n\s*\n/)
        .map((s) => s.trim())
        .filter(Boolean),
    );
  if (o.squad) docs.push(...new Set(loadSquad(o.squad).flatMap((a) => a.examples.map((e) => e.document))));
  if (docs.length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", "adapt: no documents (give texts, --file or --squad)");
  return docs;
}

export async function run(texts: string[], o: AdaptCommandOptions, io: CliIO): Promise<void> {
  const docs = readDocuments(texts, o);
  const mac = await loadMac(o.checkpoint, { cacheDir: o.cache });
  mkdirSync(o.bank, { recursive: true });
  const bank = MemoryBank.open(bankFile(o.bank), {
    T: mac.numSlots,
    d: mac.base.hiddenSize,
    dtype: o.dtype,
    modelFingerprint: checkpointFingerprint(o.checkpoint),
  });
  try {
    const fresh = docs.filter((d) => !bank.has(docId(d)));
    const t0 = performance.now();
    for (let i = 0; i < fresh.length; i += o.batchSize) {
      const batch = fresh.slice(i, i + o.batchSize);
      scope(() => {
        const [entries] = mac.amortizeBatched(batch, batch.length); // (n, T, d), no gradients
        bank.appendBatch(
          batch.map(docId),
          entries!,
          batch.map((text) => ({ chars: text.length, preview: text.slice(0, 80) })),
          { onDuplicate: "skip" },
        );
      });
      const done = Math.min(fresh.length, i + o.batchSize);
      const rate = done / ((performance.now() - t0) / 1000);
      io.stderr.write(
        `\radapt: ${done}/${fresh.length} documents, ${rate.toFixed(1)} docs/s, ETA ${((fresh.length - done) / rate).toFixed(0)} s   `,
      );
    }
    if (fresh.length > 0) io.stderr.write("\n");
    io.stdout.write(
      `bank ${bankFile(o.bank)}: ${bank.count} entries (${docs.length - fresh.length} already present)\n`,
    );
  } finally {
    bank.close();
    mac.dispose();
    mac.base.dispose();
  }
}
