/**
 * `npx tsx dev/bench/profile-models.ts [--model GGUF] [--reps N]`: where SmolLM2-135M's time goes in the two
 * workloads of bench:models (forward of 1 × 256 tokens; greedy generation of 64 tokens from a 17-token prompt),
 * per kernel (wraps every registered CPU kernel with a timer, as profile-block.ts does). The rest of the time
 * ("outside kernels") is TypeScript: op dispatch, autograd bookkeeping, allocation, scopes, greedy argmax.
 * For development, not a benchmark of record.
 */
import { parseArgs } from "node:util";
import { greedySearch } from "../../src/generate/index.js";
import { loadCausalLM } from "../../src/models/load.js";
import { Tensor, native, noGrad, scope } from "../../src/tensor/index.js";
import { cachedFile } from "../../test/helpers/model-cache.js";
import { profileKernels } from "./common.js";

const { values: args } = parseArgs({
  options: { model: { type: "string" }, reps: { type: "string", default: "2" } },
});
const reps = Number(args.reps);
const model = loadCausalLM(args.model ?? cachedFile("SmolLM2-135M-Instruct.Q4_1.gguf").path, { freeze: true });

const stats = profileKernels();
// Native memory: allocation (zero-filled, from the block cache or a fresh mapping) and release.
const nat = native as unknown as Record<string, (...a: unknown[]) => unknown>;
for (const name of ["alloc", "free"]) {
  const f = nat[name]!.bind(native);
  nat[name] = (...a: unknown[]) => {
    const t0 = process.hrtime.bigint();
    const r = f(...a);
    const s = stats.get(`(native.${name})`) ?? { n: 0, ms: 0 };
    s.n++;
    s.ms += Number(process.hrtime.bigint() - t0) / 1e6;
    stats.set(`(native.${name})`, s);
    return r;
  };
}

let s = 12345;
const ids = Array.from({ length: 256 }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % model.vocabSize));
const prompt = [6403, 1980, 253, 655, 28, 281, 253, 1165, 6560, 411, 260, 3426, 28, 665, 4161, 354, 1573];
const work = {
  forward: () => scope(() => void noGrad(() => model.forward({ ids: Tensor.from(ids, [1, ids.length], "int32") }))),
  generate: () => void greedySearch(model, [prompt], { maxNewTokens: 64, eosTokenId: null }),
};
for (const [mode, fn] of Object.entries(work)) {
  fn();
  stats.clear();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) fn();
  const total = Number(process.hrtime.bigint() - t0) / 1e6 / reps;
  const rows = [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const inKernels = rows.filter(([n]) => !n.startsWith("(")).reduce((acc, [, v]) => acc + v.ms, 0) / reps;
  console.log(
    `\n${mode}: ${total.toFixed(1)} ms per call, ${inKernels.toFixed(1)} ms in kernels, ${(total - inKernels).toFixed(1)} ms outside (native alloc/free included)`,
  );
  for (const [name, v] of rows)
    console.log(`  ${name.padEnd(24)} ${(v.ms / reps).toFixed(2).padStart(9)} ms  x${v.n / reps}`);
}
model.dispose();
