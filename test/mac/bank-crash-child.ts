/**
 * Child process for bank-crash.test.ts: appends entries to the bank at argv[2] until killed, continuing after the
 * entries already stored. Entry k has id `doc-k`, latent crashLatent(k) and metadata { k }. Appends alternate
 * between single entries and batches of up to 6 (one transaction each). Protocol on stdout, one line each:
 *   ready <count>          bank opened, holding <count> entries
 *   begin <k> <n>          about to append entries k … k+n-1 in one call
 *   ack <k> <n>            that append() returned: the entries are acknowledged
 */
import { MemoryBank } from "../../src/mac/memory/bank.js";
import { CRASH_D, CRASH_T, crashLatent } from "./bank-crash-shared.js";

const bankPath = process.argv[2]!;
const bank = MemoryBank.open(bankPath, { T: CRASH_T, d: CRASH_D, dtype: "float32", modelFingerprint: "crash-test" });
let k = bank.count;
process.stdout.write(`ready ${k}\n`);
for (let call = 0; ; call++) {
  const n = call % 2 === 0 ? 1 : 1 + (call % 6);
  process.stdout.write(`begin ${k} ${n}\n`);
  bank.append(
    Array.from({ length: n }, (_, i) => ({ id: `doc-${k + i}`, latent: crashLatent(k + i), metadata: { k: k + i } })),
  );
  process.stdout.write(`ack ${k} ${n}\n`); // stdout to a pipe is synchronous on Linux: printed means acknowledged
  k += n;
}
