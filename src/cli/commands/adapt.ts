/**
 * `mac-lm adapt`: online adaptation. Each document goes through the amortization network once (no gradients) and its
 * memory entry is appended to the bank (a durable SQLite file: an acknowledged document survives a crash).
 */
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../../errors.js";
import { loadSquad } from "../../data/squad.js";
import { type TextEncoding, checkNonBlank, readTextFile } from "../../data/text.js";
import { claimFolder } from "../../io/out-folder.js";
import { checkBankFingerprint, loadMac, macFingerprint } from "../../mac/io.js";
import { amortizeDocuments } from "../../mac/windows.js";
import { MemoryBank } from "../../mac/memory/bank.js";
import type { CliIO } from "../main.js";

export interface AdaptCommandOptions {
  checkpoint: string;
  bank: string;
  file?: string;
  squad?: string;
  encoding?: TextEncoding;
  batchSize: number;
  /** Storage precision of a new bank (default float16); an existing bank keeps its own. */
  dtype?: "float32" | "float16";
  cache?: string;
}

export const bankFile = (dir: string): string => join(dir, "bank.sqlite");
export const docId = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 24);

/**
 * Documents from positional texts, a text file (blank-line separated) or a SQuAD file (unique contexts). A file must
 * be text (see src/data/text.ts); no document may be blank.
 */
export function readDocuments(
  texts: readonly string[],
  o: { file?: string; squad?: string; encoding?: TextEncoding },
): string[] {
  const docs = texts.map((t, i) => checkNonBlank(t, `adapt: document ${i + 1} (given inline)`));
  if (o.file) {
    const text = readTextFile(o.file, o.encoding ?? "utf8", "--file");
    const parts = text
      .split(/\n\s*\n/)
      .map((s) => s.trim())
      .filter(Boolean);
    if (parts.length === 0)
      throw new MacLmError("MACLM_BAD_ARGUMENT", `adapt: ${o.file} holds no document (it is empty or only whitespace)`);
    docs.push(...parts);
  }
  if (o.squad) docs.push(...new Set(loadSquad(o.squad).flatMap((a) => a.examples.map((e) => e.document))));
  if (docs.length === 0)
    throw new MacLmError("MACLM_BAD_ARGUMENT", "adapt: no documents (give texts, --file or --squad)");
  return docs;
}

/**
 * Checks an existing bank against the checkpoint before any model loads: made with this checkpoint and these base
 * models (a bank from before base-model fingerprints is accepted with a note), and of the requested dtype.
 */
export function checkExistingBank(
  file: string,
  checkpoint: string,
  fingerprint: string,
  dtype: string | undefined,
  io: CliIO,
): MemoryBank {
  const bank = MemoryBank.open(file, { readonly: true });
  try {
    if (checkBankFingerprint(bank, checkpoint, fingerprint) === "legacy")
      io.stderr.write(
        `mac-lm: note: memory bank ${file} predates fingerprints of the base models; its entries are assumed to come from the models in use now\n`,
      );
    if (dtype !== undefined && dtype !== bank.config.dtype)
      throw new MacLmError(
        "MACLM_CONFIG_MISMATCH",
        `memory bank ${file} stores ${bank.config.dtype} entries, so --dtype ${dtype} cannot be added to it; omit --dtype, or adapt into a new --bank folder`,
      );
    return bank;
  } catch (e) {
    bank.close();
    throw e;
  }
}

export async function run(texts: string[], o: AdaptCommandOptions, io: CliIO): Promise<void> {
  // What can be checked without loading a model is checked first: the documents, the bank folder, and that an
  // existing bank was made with this checkpoint and these base models.
  const docs = readDocuments(texts, o);
  const fingerprint = await macFingerprint(o.checkpoint, { cacheDir: o.cache });
  claimFolder(o.bank, {
    kind: "memory bank",
    settings: {},
    legacyFile: "bank.sqlite",
    startOver: "give another --bank folder",
  });
  const file = bankFile(o.bank);
  const existed = existsSync(file);
  if (existed) {
    checkExistingBank(file, o.checkpoint, fingerprint, o.dtype, io).close();
    // Writable? (SQLite writes the file and its -wal/-shm beside it.) Said now, not after the model has loaded.
    for (const p of [file, o.bank]) accessSync(p, constants.W_OK);
  }
  const mac = await loadMac(o.checkpoint, { cacheDir: o.cache });
  let bank: MemoryBank;
  try {
    bank = existed
      ? MemoryBank.open(file, { T: mac.numSlots, d: mac.base.hiddenSize, quickCheck: false }) // checked above
      : MemoryBank.open(file, {
          T: mac.numSlots,
          d: mac.base.hiddenSize,
          dtype: o.dtype ?? "float16",
          modelFingerprint: fingerprint,
        });
  } catch (e) {
    mac.dispose();
    mac.base.dispose();
    throw e;
  }
  try {
    const fresh = [...new Set(docs)].filter((d) => !bank.has(docId(d)));
    const t0 = performance.now();
    let split = 0;
    let windows = 0;
    // Documents go in groups; each is stored whole (all its windows, with its text) in one transaction.
    const group = Math.max(1, o.batchSize);
    for (let i = 0; i < fresh.length; i += group) {
      const batch = fresh.slice(i, i + group);
      const amortized = amortizeDocuments(mac, batch, o.batchSize);
      try {
        bank.putDocuments(
          batch.map((text, k) => ({
            id: docId(text),
            text,
            meta: { chars: text.length, preview: text.slice(0, 80) },
            entries: amortized[k]!.entries,
          })),
        );
      } finally {
        for (const a of amortized) a.entries.dispose();
      }
      for (const [k, a] of amortized.entries())
        if (a.windows.length > 1) {
          split++;
          windows += a.windows.length;
          io.stderr.write(
            `${i > 0 ? "\n" : ""}adapt: document ${docId(batch[k]!)} (${batch[k]!.length} characters) is longer than the amortizer reads (${mac.amortizer.maxLength} tokens): stored as ${a.windows.length} overlapping windows\n`,
          );
        }
      const done = Math.min(fresh.length, i + group);
      const rate = done / ((performance.now() - t0) / 1000);
      io.stderr.write(
        `\radapt: ${done}/${fresh.length} documents, ${rate.toFixed(1)} docs/s, ETA ${((fresh.length - done) / rate).toFixed(0)} s   `,
      );
    }
    if (fresh.length > 0) io.stderr.write("\n");
    io.stdout.write(
      `bank ${file}: ${bank.documentCount} documents, ${bank.count} entries (${docs.length - fresh.length} already present${split > 0 ? `; ${split} long document${split > 1 ? "s" : ""} stored as ${windows} windows` : ""})\n`,
    );
  } finally {
    bank.close();
    mac.dispose();
    mac.base.dispose();
  }
}
