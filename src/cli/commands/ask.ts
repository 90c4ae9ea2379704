/**
 * `mac-lm ask`: answers questions through the library (Mac.ask), with the memory bank, without it, or both. The
 * questions and the bank (present, of this checkpoint and its models, not empty) are checked before any model loads.
 */
import { existsSync } from "node:fs";
import { MacLmError } from "../../errors.js";
import { checkNonBlank } from "../../data/text.js";
import { Mac } from "../../api/mac.js";
import { macFingerprint } from "../../mac/io.js";
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
  sources?: boolean;
  cache?: string;
}

export async function run(questions: string[], o: AskCommandOptions, io: CliIO): Promise<void> {
  if (questions.length === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", "ask: no question given");
  questions.forEach((q, i) => checkNonBlank(q, `ask: question ${i + 1}`));
  const useMemory = o.memory || o.compare === true;
  if (useMemory) {
    if (!o.bank || !existsSync(bankFile(o.bank)))
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `ask: no memory bank at ${o.bank ?? "(none given)"}; run \`mac-lm adapt\` first or pass --no-memory`,
      );
    const fingerprint = await macFingerprint(o.checkpoint, { cacheDir: o.cache });
    const bank = checkExistingBank(bankFile(o.bank), o.checkpoint, fingerprint, undefined, io);
    const empty = bank.count === 0;
    bank.close();
    if (empty)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `ask: memory bank ${bankFile(o.bank)} holds no documents yet; add some with \`mac-lm adapt -c ${o.checkpoint} -b ${o.bank} ...\` or pass --no-memory`,
      );
  }
  // Without memory no bank is needed: a temporary empty one stands in.
  const mac = await Mac.load(o.checkpoint, {
    ...(useMemory ? { bank: o.bank, readonly: true } : {}),
    cacheDir: o.cache,
  });
  try {
    const opts = {
      decoding: o.mac ? ("mac" as const) : ("greedy" as const),
      maxNewTokens: o.maxNewTokens,
      hierarchical: o.hierarchical,
      maxSources: o.sources ? 5 : 0,
    };
    const s = mac.stats();
    const memoryOf = `${s.documents} documents${s.entries !== s.documents ? `, ${s.entries} entries` : ""}`;
    for (const q of questions) {
      io.stdout.write(`Q: ${q}\n`);
      if (useMemory) {
        const a = await mac.ask(q, opts);
        io.stdout.write(`A (memory of ${memoryOf}): ${a.answer}\n`);
        for (const src of a.sources)
          io.stdout.write(
            `   ${(100 * src.weight).toFixed(1).padStart(5)} %  ${src.title ?? src.id}: ${src.snippet}\n`,
          );
      }
      if (!useMemory || o.compare)
        io.stdout.write(`A (no memory): ${(await mac.ask(q, { ...opts, memory: false })).answer}\n`);
    }
  } finally {
    await mac.close();
  }
}
