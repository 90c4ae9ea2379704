/**
 * Checking and repairing a memory bank (`mac-lm bank check`, `mac-lm bank repair`). The bank keeps every document's
 * text, so a damaged entry is recomputed: the document is amortized again (same windows) and stored in place of the
 * damaged one. When SQLite itself finds the file damaged, the bank is rebuilt into a new file from every document
 * whose text still reads back intact (all re-amortized: nothing of a damaged file is trusted), and the damaged file
 * is kept beside it. Documents whose text is lost are listed; they cannot be recomputed.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import { MacLmError } from "../errors.js";
import { type BankProblem, MemoryBank } from "./memory/bank.js";
import type { MacModel } from "./model.js";
import { amortizeDocuments } from "./windows.js";

export interface RepairReport {
  /** What check() found before the repair. */
  problems: BankProblem[];
  /** Documents recomputed from their stored text. */
  repaired: string[];
  /** Documents that could not be recomputed (no intact text), removed only with dropUnrepairable. */
  unrepairable: string[];
  dropped: string[];
  /** Set when the file was rebuilt: where the damaged file was kept. */
  rebuiltFrom?: string;
}

export interface RepairOptions {
  /** Fingerprint of the checkpoint and models `mac` was loaded from (a rebuilt bank records it). */
  fingerprint: string;
  /** Whether the bank's recorded fingerprint is that of `mac` (entries of other models must not be mixed in). */
  sameModels: (stored: string | null) => boolean;
  dropUnrepairable?: boolean;
  batchSize?: number;
  log?: (line: string) => void;
}

/** check() on the bank at `file`, or the open error as the single problem when it cannot be opened at all. */
export function checkBankFile(file: string): BankProblem[] {
  let bank: MemoryBank;
  try {
    bank = MemoryBank.open(file, { readonly: true, quickCheck: false });
  } catch (e) {
    if (e instanceof MacLmError && e.code !== "MACLM_BANK_DAMAGED") throw e;
    return [{ docId: null, window: null, problem: (e as Error).message }];
  }
  try {
    return bank.check();
  } catch (e) {
    return [{ docId: null, window: null, problem: `reading it failed: ${(e as Error).message}` }];
  } finally {
    bank.close();
  }
}

/** Repairs the bank at `file` with `mac` (loaded from the checkpoint the bank was made with). */
export function repairBank(file: string, mac: MacModel, o: RepairOptions): RepairReport {
  const log = o.log ?? (() => {});
  const problems = checkBankFile(file);
  const report: RepairReport = { problems, repaired: [], unrepairable: [], dropped: [] };
  if (problems.length === 0) return report;
  const structural = problems.some((p) => p.docId === null && !/belongs to no document/.test(p.problem));
  if (structural) return rebuild(file, mac, o, report);

  const bank = MemoryBank.open(file, { quickCheck: false });
  try {
    refuseOtherModels(file, bank.config.modelFingerprint, o);
    if (problems.some((p) => p.docId === null)) log(`removed ${bank.dropOrphans()} entries of no document`);
    for (const id of new Set(problems.flatMap((p) => (p.docId === null ? [] : [p.docId])))) {
      const info = bank.document(id);
      let text: string | undefined;
      try {
        text = bank.documentText(id);
      } catch {
        text = undefined;
      }
      if (info === undefined || text === undefined || text.length === 0) {
        if (o.dropUnrepairable && info !== undefined) {
          bank.removeDocument(id);
          report.dropped.push(id);
        } else report.unrepairable.push(id);
        continue;
      }
      const [doc] = amortizeDocuments(mac, [text], o.batchSize);
      try {
        bank.putDocument({ id, text, title: info.title, meta: info.meta, entries: doc!.entries });
      } finally {
        doc!.entries.dispose();
      }
      report.repaired.push(id);
      log(`recomputed document "${id}" (${doc!.windows.length} entr${doc!.windows.length === 1 ? "y" : "ies"})`);
    }
  } finally {
    bank.close();
  }
  return report;
}

function refuseOtherModels(file: string, stored: string | null, o: RepairOptions): void {
  if (!o.sameModels(stored))
    throw new MacLmError(
      "MACLM_CONFIG_MISMATCH",
      `memory bank ${file} was made with another checkpoint or other base models (fingerprint ${stored ?? "(none)"}, this checkpoint ${o.fingerprint}); repair it with the checkpoint it was made with`,
    );
}

function rebuild(file: string, mac: MacModel, o: RepairOptions, report: RepairReport): RepairReport {
  const log = o.log ?? (() => {});
  const { config, documents, lost } = MemoryBank.salvage(file);
  refuseOtherModels(file, config.modelFingerprint, o);
  log(`the file is damaged: rebuilding it from the ${documents.length} documents whose text reads back intact`);
  const fresh = `${file}.rebuilding`;
  for (const f of [fresh, `${fresh}-wal`, `${fresh}-shm`]) rmSync(f, { force: true });
  const out = MemoryBank.open(fresh, {
    T: config.T,
    d: config.d,
    dtype: config.dtype,
    modelFingerprint: o.fingerprint,
  });
  try {
    const batch = 16;
    for (let i = 0; i < documents.length; i += batch) {
      const part = documents.slice(i, i + batch);
      const amortized = amortizeDocuments(
        mac,
        part.map((d) => d.text),
        o.batchSize,
      );
      try {
        out.putDocuments(
          part.map((d, k) => ({
            id: d.id,
            text: d.text,
            title: d.title,
            meta: d.meta,
            entries: amortized[k]!.entries,
          })),
        );
      } finally {
        for (const a of amortized) a.entries.dispose();
      }
      report.repaired.push(...part.map((d) => d.id));
    }
  } finally {
    out.close();
  }
  const kept = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  renameSync(file, kept);
  for (const ext of ["-wal", "-shm"]) if (existsSync(file + ext)) renameSync(file + ext, kept + ext);
  renameSync(fresh, file);
  report.rebuiltFrom = kept;
  // Their entries were in the damaged file only (kept beside the bank).
  report.dropped.push(...lost);
  return report;
}
