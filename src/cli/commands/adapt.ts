/**
 * `mac-lm adapt`: online adaptation through the library (Mac.adapt): each document goes through the amortization
 * network once (no gradients) and its memory entry is stored in the bank (a durable SQLite file: an acknowledged
 * document survives a crash).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Mac } from "../../api/mac.js";
import { MacLmError } from "../../errors.js";
import { loadSquad } from "../../data/squad.js";
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
  const mac = await Mac.load(o.checkpoint, { bank: o.bank, dtype: o.dtype, cacheDir: o.cache });
  try {
    const t0 = performance.now();
    // Ids are content hashes: a document already in the bank is skipped, not amortized again.
    const r = await mac.adapt(
      docs.map((text) => ({ id: docId(text), text, meta: { chars: text.length, preview: text.slice(0, 80) } })),
      {
        batchSize: o.batchSize,
        onExisting: "skip",
        onProgress: (done, total) => {
          const rate = done / ((performance.now() - t0) / 1000);
          io.stderr.write(
            `\radapt: ${done}/${total} documents, ${rate.toFixed(1)} docs/s, ETA ${((total - done) / rate).toFixed(0)} s   `,
          );
        },
      },
    );
    if (r.added.length > 0) io.stderr.write("\n");
    io.stdout.write(`bank ${bankFile(o.bank)}: ${mac.stats().entries} entries (${r.skipped.length} already present)\n`);
  } finally {
    await mac.close();
  }
}
