/** `mac-lm ask`: answers questions with the frozen base LM modulated by the memory bank (or without it). */
import { existsSync } from "node:fs";
import { MacLmError } from "../../errors.js";
import { MAC_DECODING } from "../../generate/index.js";
import { checkNonBlank } from "../../data/text.js";
import { loadMac, macFingerprint } from "../../mac/io.js";
import type { MemoryBank } from "../../mac/memory/bank.js";
import type { CliIO } from "../main.js";
import { bankFile, checkExistingBank } from "./adapt.js";

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
  questions.forEach((q, i) => checkNonBlank(q, `ask: question ${i + 1}`));
  const useMemory = o.memory || o.compare;
  // The bank is checked before any model loads: present, made with this checkpoint and its models, not empty.
  let bank: MemoryBank | null = null;
  if (useMemory) {
    if (!o.bank || !existsSync(bankFile(o.bank)))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `ask: no memory bank at ${o.bank ?? "(none given)"}; run \`mac-lm adapt\` first or pass --no-memory`,
      );
    const fingerprint = await macFingerprint(o.checkpoint, { cacheDir: o.cache });
    bank = checkExistingBank(bankFile(o.bank), o.checkpoint, fingerprint, undefined, io);
    if (bank.count === 0) {
      bank.close();
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `ask: memory bank ${bankFile(o.bank)} holds no documents yet; add some with \`mac-lm adapt -c ${o.checkpoint} -b ${o.bank} ...\` or pass --no-memory`,
      );
    }
  }
  let mac: Awaited<ReturnType<typeof loadMac>>;
  try {
    mac = await loadMac(o.checkpoint, { cacheDir: o.cache });
  } catch (e) {
    bank?.close();
    throw e;
  }
  try {
    const decoding = { ...(o.mac ? MAC_DECODING : {}), maxNewTokens: o.maxNewTokens, groupSize: o.hierarchical };
    // Hierarchical aggregation streams the bank in groups (a fresh pass per question); full loads it once.
    const b = bank;
    const memory = b ? (o.hierarchical ? { [Symbol.iterator]: () => b.groups(o.hierarchical!) } : b.loadAll()) : null;
    const withMemory = bank ? mac.answer(questions, memory as never, decoding) : null;
    const without = !bank || o.compare ? mac.answer(questions, null, decoding) : null;
    const docs = bank?.documentCount ?? 0;
    const memoryOf = `${docs} documents${bank !== null && bank.count !== docs ? `, ${bank.count} entries` : ""}`;
    questions.forEach((q, i) => {
      io.stdout.write(`Q: ${q}\n`);
      if (withMemory) io.stdout.write(`A (memory of ${memoryOf}): ${withMemory[i]}\n`);
      if (without) io.stdout.write(`A (no memory): ${without[i]}\n`);
    });
  } finally {
    bank?.close();
    mac.dispose();
    mac.base.dispose();
  }
}
