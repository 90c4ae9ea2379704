/**
 * `npm run bench:models -- [--json FILE] [--rounds N] [--reps N] [--model GGUF]`
 *
 * Measures, in one run, a real model on mac-lm against transformers/PyTorch on this machine: SmolLM2-135M-Instruct
 * from its Q4_1 GGUF (ours: loadCausalLM, dequantised to float32; theirs: LlamaForCausalLM.from_pretrained(dir,
 * gguf_file=...), float32):
 *   forward  — batch 1 × 256 token ids, logits of every position, no gradients: tokens/s;
 *   generate — greedy search from a fixed ~16-token prompt, 64 new tokens with the KV cache and no end-of-sequence
 *              token (the length is fixed): new tokens/s, the prompt's forward (prefill) included.
 * Both greedy continuations are compared once (they should be the same tokens). The machine is shared and noisy,
 * so ours and the reference alternate in rounds (a Python server holds the loaded reference model, see
 * models_reference.py); each figure is the median over rounds of per-round medians. ratio = ours / PyTorch
 * throughput (≥ 1: ours is at least as fast). PyTorch runs with OMP_WAIT_POLICY=PASSIVE unless it is set (see
 * TORCH_OMP_WAIT_POLICY).
 */
import { existsSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { greedySearch } from "../../src/generate/index.js";
import { openGguf } from "../../src/io/gguf.js";
import { loadCausalLM } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/types.js";
import { Tensor, native, noGrad, scope } from "../../src/tensor/index.js";
import { tokenizerFromGguf } from "../../src/tokenizers/index.js";
import { cachedFile } from "../../test/helpers/model-cache.js";
import { PythonReference, median, round3 } from "./common.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "string" },
    rounds: { type: "string", default: "3" },
    reps: { type: "string", default: "2" },
    model: { type: "string" },
  },
});
const rounds = Number(args.rounds);
const reps = Number(args.reps);
const modelPath = args.model ?? cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf").path;
const FORWARD_TOKENS = 256;
const NEW_TOKENS = 64;
/**
 * PyTorch's OpenMP threads spin-wait between parallel regions by default; on a shared machine whose cores are
 * busy this collapses its throughput (4-5x slower matmuls measured here under load), which would flatter ours.
 * The reference runs with passive waiting unless OMP_WAIT_POLICY is set.
 */
const TORCH_OMP_WAIT_POLICY = process.env.OMP_WAIT_POLICY ?? "PASSIVE";
const PROMPT = "Once upon a time, in a small village by the sea, there lived an old";

function timeMs<R>(fn: () => R, n: number): { ms: number; last: R } {
  const ts: number[] = [];
  let last: R | undefined;
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    last = fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: median(ts), last: last! };
}

/** FORWARD_TOKENS fixed pseudo-random ids (a 32-bit LCG), the same for both sides. */
function forwardIds(vocab: number): number[] {
  let s = 12345;
  return Array.from({ length: FORWARD_TOKENS }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

function oursForward(model: CausalLM, ids: number[]): number {
  return timeMs(
    () => scope(() => void noGrad(() => model.forward({ ids: Tensor.from(ids, [1, ids.length], "int32") }))),
    reps,
  ).ms;
}

function oursGenerate(model: CausalLM, prompt: number[], n = reps): { ms: number; tokens: number[] } {
  const { ms, last } = timeMs(() => greedySearch(model, [prompt], { maxNewTokens: NEW_TOKENS, eosTokenId: null }), n);
  return { ms, tokens: last.sequences[0]! };
}

async function main(): Promise<void> {
  if (!existsSync(modelPath)) {
    console.error(`${modelPath} is absent: run scripts/fetch-models.sh (or pass --model FILE)`);
    process.exit(1);
  }
  console.error(
    `mac-lm model benchmark: ${native.numThreads()} threads, GEMM ${native.gemmBackend()}, ${rounds} rounds`,
  );
  const ref = new PythonReference("models_reference.py", { OMP_WAIT_POLICY: TORCH_OMP_WAIT_POLICY });
  ref.start();
  const hello = await ref.ask({ cmd: "hello" });
  const errors = (hello.errors ?? {}) as Record<string, string>;
  if (typeof hello.error === "string") errors.torch = errors.transformers = `python reference failed: ${hello.error}`;
  let hasTorch = typeof hello.torch === "string" && typeof hello.transformers === "string";

  const t0 = process.hrtime.bigint();
  const model = loadCausalLM(modelPath, { freeze: true });
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const prompt = tokenizerFromGguf(openGguf(modelPath)).encode(PROMPT, { addSpecialTokens: true });
  const ids = forwardIds(model.vocabSize);
  console.error(`ours: loaded in ${loadS.toFixed(1)} s; prompt ${prompt.length} tokens`);

  let torchLoadS: number | null = null;
  if (hasTorch) {
    const res = await ref.ask({ cmd: "load", path: modelPath });
    if (typeof res.load_s === "number") torchLoadS = res.load_s;
    else {
      errors.load = String(res.error ?? "unknown");
      hasTorch = false;
    }
    console.error(`torch: ${hasTorch ? `loaded in ${torchLoadS!.toFixed(1)} s` : `load failed: ${errors.load}`}`);
  }

  // Warm-up (untimed) and the one check that both greedy continuations agree.
  oursForward(model, ids);
  const oursTokens = oursGenerate(model, prompt, 1).tokens;
  let torchTokens: number[] | null = null;
  if (hasTorch) {
    await ref.ask({ cmd: "forward", ids, reps: 1 });
    const res = await ref.ask({ cmd: "generate", ids: prompt, new: NEW_TOKENS, reps: 1 });
    if (Array.isArray(res.tokens)) torchTokens = res.tokens as number[];
    else if (res.error) errors.generate = String(res.error);
  }
  let firstDiff: number | null = null;
  if (torchTokens) {
    const n = Math.max(oursTokens.length, torchTokens.length);
    for (let i = 0; i < n && firstDiff === null; i++) if (oursTokens[i] !== torchTokens[i]) firstDiff = i;
  }
  if (firstDiff !== null)
    console.error(
      `greedy tokens differ from position ${firstDiff}:\n  ours  ${oursTokens.join(" ")}\n  torch ${torchTokens!.join(" ")}`,
    );

  const ours = { fwd: [] as number[], gen: [] as number[] };
  const theirs = { fwd: [] as (number | null)[], gen: [] as (number | null)[] };
  const askTorch = async (cmd: "forward" | "generate"): Promise<number | null> => {
    if (!hasTorch) return null;
    const res = await ref.ask(cmd === "forward" ? { cmd, ids, reps } : { cmd, ids: prompt, new: NEW_TOKENS, reps });
    if (typeof res.ms === "number") return res.ms;
    if (res.error) errors[cmd] = String(res.error);
    return null;
  };
  let peakRss = process.memoryUsage().rss;
  for (let r = 0; r < rounds; r++) {
    // Who goes first alternates between rounds, so a load change within a round favours neither side.
    const torchFirst = r % 2 === 1;
    let tf: number | null = torchFirst ? await askTorch("forward") : null;
    const f = oursForward(model, ids);
    if (!torchFirst) tf = await askTorch("forward");
    let tg: number | null = torchFirst ? await askTorch("generate") : null;
    const g = oursGenerate(model, prompt).ms;
    if (!torchFirst) tg = await askTorch("generate");
    ours.fwd.push(f);
    ours.gen.push(g);
    theirs.fwd.push(tf);
    theirs.gen.push(tg);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const fmt = (ms: number | null): string => (ms === null ? "-" : `${ms.toFixed(0)} ms`);
    console.error(
      `round ${r + 1}/${rounds}: forward ours ${fmt(f)} torch ${fmt(tf)}; generate ours ${fmt(g)} torch ${fmt(tg)}`,
    );
  }
  ref.stop();
  model.dispose();

  const valid = (xs: (number | null)[]): number[] => xs.filter((x): x is number => x !== null);
  const perS = (count: number, ms: number | null): number | null => (ms === null ? null : round3(count / (ms / 1e3)));
  const med = (xs: (number | null)[]): number | null => (valid(xs).length > 0 ? median(valid(xs)) : null);
  const best = (xs: (number | null)[]): number | null => (valid(xs).length > 0 ? Math.min(...valid(xs)) : null);
  const ratio = (a: number | null, b: number | null): number | null => (a !== null && b ? round3(a / b) : null);
  /** The figures of one workload: medians (the headline), the least-loaded round of each side, and every round. */
  const figures = (count: number, a: number[], b: (number | null)[]) => {
    const tps = perS(count, med(a));
    const torchTps = perS(count, med(b));
    const bestTps = perS(count, best(a));
    const bestTorchTps = perS(count, best(b));
    return {
      tokens_per_s: tps,
      torch_tokens_per_s: torchTps,
      ratio: ratio(tps, torchTps),
      best_round: { tokens_per_s: bestTps, torch_tokens_per_s: bestTorchTps, ratio: ratio(bestTps, bestTorchTps) },
      rounds_ms: { ours: a.map(round3), torch: b.map((x) => (x === null ? null : round3(x))) },
    };
  };
  const fwd = figures(FORWARD_TOKENS, ours.fwd, theirs.fwd);
  const gen = figures(NEW_TOKENS, ours.gen, theirs.gen);
  const missing = (name: string): string =>
    `missing (${errors[name] ?? "unknown"}); install with pip install torch==2.13.0 transformers gguf`;
  const result = {
    model: "smollm2-135m-instruct",
    forward: { ...fwd, batch: 1, tokens: FORWARD_TOKENS },
    generate: {
      ...gen,
      prompt_tokens: prompt.length,
      new_tokens: NEW_TOKENS,
      same_tokens: torchTokens === null ? null : firstDiff === null,
      ...(firstDiff !== null ? { first_difference_at: firstDiff, tokens: oursTokens, torch_tokens: torchTokens } : {}),
    },
    load_s: { ours: round3(loadS), torch: torchLoadS === null ? null : round3(torchLoadS) },
    rss_mb: round3(peakRss / 2 ** 20),
    env: {
      file: modelPath,
      dtype: "float32 (dequantised from Q4_1)",
      threads: native.numThreads(),
      gemm: native.gemmBackend(),
      torch: hello.torch ?? missing("torch"),
      transformers: hello.transformers ?? missing("transformers"),
      torch_threads: hello.threads ?? null,
      torch_omp_wait_policy: TORCH_OMP_WAIT_POLICY,
      ...(Object.keys(errors).length > 0 ? { errors } : {}),
      rounds,
      reps_per_round: reps,
      statistic:
        "median over rounds of per-round medians (best_round: each side's fastest round); ours and the reference alternate, who goes first alternating by round; generate time includes the prompt's prefill",
    },
  };
  const text = JSON.stringify(result, null, 2);
  if (args.json) writeFileSync(args.json, text + "\n");
  console.log(text);
}

await main();
