/** `mac-lm ask`: answers questions through the library (Mac.ask), with the memory bank, without it, or both. */
import { Mac } from "../../api/mac.js";
import { MacLmError } from "../../errors.js";
import type { CliIO } from "../main.js";

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
  const useMemory = o.memory || o.compare === true;
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
    for (const q of questions) {
      io.stdout.write(`Q: ${q}\n`);
      if (useMemory) {
        const a = await mac.ask(q, opts);
        io.stdout.write(`A (memory of ${mac.stats().documents} documents): ${a.answer}\n`);
        for (const s of a.sources)
          io.stdout.write(`   ${(100 * s.weight).toFixed(1).padStart(5)} %  ${s.title ?? s.id}: ${s.snippet}\n`);
      }
      if (!useMemory || o.compare)
        io.stdout.write(`A (no memory): ${(await mac.ask(q, { ...opts, memory: false })).answer}\n`);
    }
  } finally {
    await mac.close();
  }
}
