/**
 * `npx tsx dev/bench/profile-block.ts [--ms]`: where the GPT-2 block's forward+backward time goes, per kernel
 * (wraps every registered CPU kernel with a timer). For development, not a benchmark of record.
 */
import { grad, noGrad, scope } from "../../src/tensor/index.js";
import { randn } from "../../src/tensor/random.js";
import { profileKernels } from "./common.js";
import { GPT2Block } from "./gpt2-block.js";

const stats = profileKernels();

const [B, T, C, NH] = [4, 256, 768, 12];
const blk = new GPT2Block(C, NH, 7);
const x = randn([B, T, C], { seed: 3 }).requireGrad();
const g = randn([B, T, C], { seed: 4 });
const params = [x, ...blk.parameters()];
const reps = 5;
for (const mode of ["fwd", "fwdbwd"] as const) {
  for (let i = 0; i < 2; i++)
    scope(() =>
      mode === "fwd" ? void noGrad(() => blk.forward(x)) : void grad(blk.forward(x), params, { gradOutput: g }),
    );
  stats.clear();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++)
    scope(() =>
      mode === "fwd" ? void noGrad(() => blk.forward(x)) : void grad(blk.forward(x), params, { gradOutput: g }),
    );
  const total = Number(process.hrtime.bigint() - t0) / 1e6 / reps;
  const rows = [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const inKernels = rows.reduce((s, [, v]) => s + v.ms, 0) / reps;
  console.log(`\n${mode}: ${total.toFixed(1)} ms per step, ${inKernels.toFixed(1)} ms in kernels`);
  for (const [name, v] of rows)
    console.log(`  ${name.padEnd(24)} ${(v.ms / reps).toFixed(2).padStart(8)} ms  x${v.n / reps}`);
}
