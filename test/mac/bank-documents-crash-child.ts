/**
 * Child process for bank-documents-crash.test.ts: writes documents (putDocuments, 1–3 per call, some with several
 * windows) and removes some, until killed. Ids are `r<run>-<k>` so that runs never collide. Each write is reported
 * on stdout before it starts and after it returns (acknowledged):
 *   begin put <id,id,…> | ack put <id,id,…>      a putDocuments call
 *   begin del <id>      | ack del <id>           a removeDocument call
 */
import { MemoryBank } from "../../src/mac/memory/bank.js";
import { Tensor } from "../../src/tensor/tensor.js";
import { CRASH_D, CRASH_T, docEntries, docText } from "./bank-crash-shared.js";

const [bankPath, run] = [process.argv[2]!, process.argv[3]!];
const bank = MemoryBank.open(bankPath, { T: CRASH_T, d: CRASH_D, dtype: "float32", modelFingerprint: "crash-test" });
process.stdout.write(`ready ${bank.documentCount}\n`);
for (let k = 0; ;) {
  const n = 1 + (k % 3);
  const ids = Array.from({ length: n }, (_, i) => `r${run}-${k + i}`);
  process.stdout.write(`begin put ${ids.join(",")}\n`);
  bank.putDocuments(
    ids.map((id) => {
      const e = docEntries(id);
      return {
        id,
        text: docText(id),
        title: id,
        entries: Tensor.from(e, [e.length / (CRASH_T * CRASH_D), CRASH_T, CRASH_D]),
      };
    }),
  );
  process.stdout.write(`ack put ${ids.join(",")}\n`); // stdout to a pipe is synchronous on Linux
  k += n;
  if (k % 2 === 0) {
    const victim = `r${run}-${k - 2}`;
    process.stdout.write(`begin del ${victim}\n`);
    bank.removeDocument(victim);
    process.stdout.write(`ack del ${victim}\n`);
  }
}
