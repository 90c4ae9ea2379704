/** `mac-lm ask`: answers questions with the frozen base LM modulated by the memory bank (or without it). */
import { existsSync } from "node:fs";
import { MacLmError } from "../../errors.js";
import { MAC_DECODING } from "../../generate/index.js";
import { checkpointFingerprint, loadMac } from "../../mac/io.js";
import { MemoryBank } from "../../mac/memory/bank.js";
import type { CliIO } from "../main.js";
import { bankFile } from "./adapt.js";

export interface AskCommandOptions {
  checkpoint: string;
  bank?: string;
  memory: boolean;
  compare?: boolean;
  hierarchical?: number;
  mac?: boolean;
  maxNewTokens: number;
  cache?: string;
}

export async function run(questions: string[], o: AskCommandOptions, io: CliIO): Promise<void> {
  if (questions.length === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", "ask: no question given");
  const mac = await loadMac(o.checkpoint, { cacheDir: o.cache });
  let bank: MemoryBank | null = null;
  try {
    const useMemory = o.memory || o.compare;
    if (useMemory) {
      if (!o.bank || !existsSync(bankFile(o.bank)))
        throw new MacLmError(
          "MACLM_BAD_ARGUMENT",
          `ask: no memory bank at ${o.bank ?? "(none given)"}; run \`mac-lm adapt\` first or pass --no-memory`,
        );
      bank = MemoryBank.open(bankFile(o.bank), {
        readonly: true,
        modelFingerprint: checkpointFingerprint(o.checkpoint),
      });
    }
    const decoding = { ...(o.mac ? MAC_DECODING : {}), maxNewTokens: o.maxNewTokens, groupSize: o.hierarchical };
    // Hierarchical aggregation streams the bank in groups (a fresh pass per question); full loads it once.
    const b = bank;
    const memory = b ? (o.hierarchical ? { [Symbol.iterator]: () => b.groups(o.hierarchical!) } : b.loadAll()) : null;
    const withMemory = bank ? mac.answer(questions, memory as never, decoding) : null;
    const without = !bank || o.compare ? mac.answer(questions, null, decoding) : null;
    questions.forEach((q, i) => {
      io.stdout.write(`Q: ${q}\n`);
      if (withMemory) io.stdout.write(`A (memory of ${bank!.count} documents): ${withMemory[i]}\n`);
      if (without) io.stdout.write(`A (no memory): ${without[i]}\n`);
    });
  } finally {
    bank?.close();
    mac.dispose();
    mac.base.dispose();
  }
}
