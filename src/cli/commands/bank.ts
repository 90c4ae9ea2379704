/**
 * `mac-lm bank check` and `mac-lm bank repair`: a bank's integrity (SQLite's integrity_check and every entry's
 * checksum and values), and recomputing damaged entries from the documents' stored text (src/mac/bank-repair.ts).
 */
import { existsSync } from "node:fs";
import { MacLmError } from "../../errors.js";
import { checkBankFile, repairBank } from "../../mac/bank-repair.js";
import { checkpointFingerprint, loadMac, macFingerprint } from "../../mac/io.js";
import { MemoryBank } from "../../mac/memory/bank.js";
import type { CliIO } from "../main.js";
import { bankFile } from "./adapt.js";

export interface BankCheckOptions {
  bank: string;
  upgrade?: boolean;
}

export interface BankRepairOptions {
  bank: string;
  checkpoint: string;
  dropUnrepairable?: boolean;
  cache?: string;
}

function existingBank(dir: string): string {
  const file = bankFile(dir);
  if (!existsSync(file))
    throw new MacLmError("MACLM_BAD_ARGUMENT", `no memory bank at ${dir} (no ${file}); check the --bank folder`);
  return file;
}

const where = (p: { docId: string | null; window: number | null }): string =>
  p.docId === null ? "bank" : `document "${p.docId}"${p.window !== null ? ` window ${p.window}` : ""}`;

export async function runCheck(o: BankCheckOptions, io: CliIO): Promise<void> {
  const file = existingBank(o.bank);
  if (o.upgrade) MemoryBank.open(file, { quickCheck: false }).close(); // migrates an older schema in place
  const t0 = performance.now();
  const problems = checkBankFile(file);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (problems.length === 0) {
    const bank = MemoryBank.open(file, { readonly: true, quickCheck: false });
    io.stdout.write(
      `bank ${file}: ok (${bank.documentCount} documents, ${bank.count} entries; integrity_check and every checksum passed in ${secs} s)\n`,
    );
    bank.close();
    return;
  }
  for (const p of problems) io.stdout.write(`${where(p)}: ${p.problem}\n`);
  throw new MacLmError(
    "MACLM_BANK_DAMAGED",
    `memory bank ${file} is damaged (${problems.length} problem${problems.length > 1 ? "s" : ""}, listed above); \`mac-lm bank repair -c CHECKPOINT -b ${o.bank}\` recomputes damaged entries from the stored text`,
  );
}

export async function runRepair(o: BankRepairOptions, io: CliIO): Promise<void> {
  const file = existingBank(o.bank);
  const fingerprint = await macFingerprint(o.checkpoint, { cacheDir: o.cache });
  const legacy = checkpointFingerprint(o.checkpoint);
  const problems = checkBankFile(file);
  if (problems.length === 0) {
    io.stdout.write(`bank ${file}: ok, nothing to repair\n`);
    return;
  }
  const mac = await loadMac(o.checkpoint, { cacheDir: o.cache });
  try {
    const r = repairBank(file, mac, {
      fingerprint,
      sameModels: (stored) => stored === fingerprint || stored === legacy,
      dropUnrepairable: o.dropUnrepairable,
      log: (l) => io.stderr.write(`bank repair: ${l}\n`),
    });
    io.stdout.write(
      `bank ${file}: ${r.problems.length} problem(s) found; ${r.repaired.length} document(s) recomputed from their text` +
        (r.dropped.length > 0 ? `; ${r.dropped.length} removed (text lost): ${r.dropped.join(", ")}` : "") +
        (r.rebuiltFrom !== undefined ? `; the damaged file is kept as ${r.rebuiltFrom}` : "") +
        "\n",
    );
    if (r.unrepairable.length > 0)
      throw new MacLmError(
        "MACLM_BANK_DAMAGED",
        `memory bank ${file}: ${r.unrepairable.length} document(s) have no intact stored text and cannot be recomputed (${r.unrepairable.slice(0, 5).join(", ")}); adapt them again, or rerun with --drop-unrepairable to remove them`,
      );
    const after = checkBankFile(file);
    if (after.length > 0)
      throw new MacLmError(
        "MACLM_BANK_DAMAGED",
        `memory bank ${file} still has problems after the repair: ${after.map((p) => `${where(p)}: ${p.problem}`).join("; ")}`,
      );
  } finally {
    mac.dispose();
    mac.base.dispose();
  }
}
