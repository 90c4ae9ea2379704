/**
 * `mac-lm demo`: MAC end to end on the real models in a few minutes. Pulls the base LM and the encoder if the cache
 * lacks them, loads the shipped checkpoint (trained on other SQuAD articles), adapts to a few held-out documents
 * (one forward pass each, no gradients, into a memory bank), then answers the questions about them with the memory
 * and without it (the same frozen LM), and scores both.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Mac } from "../../api/mac.js";
import { loadSquad } from "../../data/squad.js";
import { scoreAll } from "../../data/qa-metrics.js";
import { resolveModel } from "../../hub/pull.js";
import { configModels, readConfig } from "../../mac/config.js";
import type { CliIO } from "../main.js";
import { SHIPPED_CHECKPOINT } from "./eval.js";

export const DEMO_DATA = fileURLToPath(new URL("../../../examples/squad-demo.json", import.meta.url));

export interface DemoCommandOptions {
  checkpoint?: string;
  data?: string;
  questions?: number;
  cache?: string;
}

/** Pulls a registry model the cache lacks (progress on stderr); paths and cached models are left alone. */
async function ensureModel(name: string, cache: string | undefined, io: CliIO): Promise<void> {
  try {
    await resolveModel(name, { cacheDir: cache });
  } catch {
    const { run } = await import("./pull.js");
    await run({ name, cache }, { stdout: io.stderr, stderr: io.stderr });
  }
}

export async function run(o: DemoCommandOptions, io: CliIO): Promise<void> {
  const checkpoint = o.checkpoint ?? SHIPPED_CHECKPOINT;
  const data = o.data ?? DEMO_DATA;
  const config = readConfig(join(checkpoint, "config.json"));
  for (const model of configModels(config)) await ensureModel(model, o.cache, io);

  const t0 = performance.now();
  const mac = await Mac.load(checkpoint, { cacheDir: o.cache }); // a temporary bank, deleted by close()
  const examples = loadSquad(data).flatMap((x) => x.examples);
  const docs = [...new Map(examples.map((e) => [e.docId, e.document])).entries()];
  const qs = examples.slice(0, o.questions ?? examples.length);
  io.stdout.write(
    `MAC demo: base LM ${config.base}${config.baseAdapter ? ` + ${config.baseAdapter}` : ""} (frozen), checkpoint ${checkpoint}\n` +
      `adapting to ${docs.length} documents from ${data} (loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
  );
  try {
    const t1 = performance.now();
    // One forward pass per document, no gradients.
    await mac.adapt(
      docs.map(([id, text]) => ({ id, text, meta: { chars: text.length } })),
      { batchSize: 1 },
    );
    const { T, d } = mac.bank.config;
    io.stdout.write(
      `memory bank: ${mac.stats().entries} entries of ${T}×${d} (${((performance.now() - t1) / docs.length) | 0} ms per document)\n\n`,
    );
    const questions = qs.map((e) => e.question);
    const withMemory: string[] = [];
    const without: string[] = [];
    const opts = { maxNewTokens: 16, maxSources: 1 };
    for (const [i, q] of questions.entries()) {
      const r = await mac.ask(q, opts);
      withMemory.push(r.answer);
      without.push((await mac.ask(q, { ...opts, maxSources: 0, memory: false })).answer);
      // Where the answer came from: the document the memory weighed most, and its sentence closest to the question.
      const src = r.sources[0];
      const from = src ? `   read from:   ${src.id} (${(100 * src.weight).toFixed(0)} %): "${src.snippet}"\n` : "";
      io.stdout.write(
        `Q${i + 1}: ${q}\n   gold:        ${qs[i]!.answers[0]}\n   MAC memory:  ${withMemory[i]}\n${from}   no memory:   ${without[i]}\n`,
      );
    }
    const refs = qs.map((e) => e.answers);
    const s1 = scoreAll(withMemory, refs);
    const s0 = scoreAll(without, refs);
    io.stdout.write(
      `\n${questions.length} questions (greedy decoding)        EM     F1\n` +
        `  with the memory of ${String(mac.stats().documents).padEnd(3)} documents  ${s1.em.toFixed(1).padStart(5)}  ${s1.f1.toFixed(1).padStart(5)}\n` +
        `  without memory (same LM)         ${s0.em.toFixed(1).padStart(5)}  ${s0.f1.toFixed(1).padStart(5)}\n` +
        `total ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
    );
  } finally {
    await mac.close();
  }
}
