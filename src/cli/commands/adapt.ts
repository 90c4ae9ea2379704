/**
 * `mac-lm adapt`: online adaptation through the library (Mac.adapt): each document goes through the amortization
 * network once per window of what it reads (no gradients) and its memory entries are stored in the bank with its
 * text (a durable SQLite file: an acknowledged document survives a crash). What can be checked without a model is
 * checked first: the documents are text, the bank folder is ours, an existing bank is of these models and writable.
 */
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync } from "node:fs";
import { join } from "node:path";
import { MacLmError } from "../../errors.js";
import { loadSquad } from "../../data/squad.js";
import { type TextEncoding, checkNonBlank, readTextFile } from "../../data/text.js";
import { claimFolder } from "../../io/out-folder.js";
import { Mac } from "../../api/mac.js";
import { checkBankFingerprint, macFingerprint } from "../../mac/io.js";
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
  const mac = await Mac.load(o.checkpoint, { bank: o.bank, dtype: o.dtype ?? "float16", cacheDir: o.cache });
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
    for (const w of r.windows)
      io.stderr.write(
        `adapt: document ${w.id} (${w.chars} characters) is longer than the amortizer reads (${mac.model.amortizer.maxLength} tokens): stored as ${w.windows} overlapping windows\n`,
      );
    const s = mac.stats();
    const split = r.windows.length;
    const windows = r.windows.reduce((n, w) => n + w.windows, 0);
    io.stdout.write(
      `bank ${file}: ${s.documents} documents, ${s.entries} entries (${r.skipped.length} already present${split > 0 ? `; ${split} long document${split > 1 ? "s" : ""} stored as ${windows} windows` : ""})\n`,
    );
  } finally {
    await mac.close();
  }
}
