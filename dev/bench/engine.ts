/**
 * `npm run bench:engine -- [--json FILE] [--rounds N] [--quick]`
 *
 * Measures, in one run, mac-lm's engine against references on this machine:
 *   sgemm  — GFLOP/s for square n ∈ {256, 512, 1024, 2048}, ours vs numpy (the machine's environment as it is);
 *   block  — one GPT-2-small transformer block (d=768, 12 heads, MLP 3072, GELU-tanh, layernorm, causal
 *            attention), batch 4 × sequence 256: forward, and forward+backward (gradients of the input and all
 *            weights), ours vs PyTorch on the CPU.
 * The machine is shared and noisy, so ours and the reference alternate in rounds (a Python server measures the
 * reference, see engine_reference.py); each figure is the median over rounds of per-round medians.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Tensor, grad, native, noGrad, scope } from "../../src/tensor/index.js";
import { randn } from "../../src/tensor/random.js";
import { PythonReference, median, round3 } from "./common.js";
import { GPT2Block } from "./gpt2-block.js";

const { values: args } = parseArgs({
  options: {
    json: { type: "string" },
    rounds: { type: "string", default: "5" },
    reps: { type: "string", default: "3" },
    quick: { type: "boolean", default: false },
  },
});
const rounds = Number(args.rounds);
const reps = Number(args.reps);
const sizes = args.quick ? [256, 512] : [256, 512, 1024, 2048];
const shape = { B: 4, T: 256, C: 768, NH: 12 };

function timeMs(fn: () => void, n: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ts);
}

function oursSgemm(n: number): number {
  return scope(() => {
    const a = randn([n, n], { seed: 1 });
    const b = randn([n, n], { seed: 2 });
    const c = Tensor.empty([n, n]);
    const ms = timeMs(() => native.gemm(c.f32, a.f32, b.f32, false, false, n, n, n, 1, 0, false), reps);
    return (2 * n ** 3) / (ms / 1e3) / 1e9;
  });
}

function oursBlock(blk: GPT2Block): { fwd: number; fwdbwd: number } {
  return scope(() => {
    const x = randn([shape.B, shape.T, shape.C], { seed: 3 }).requireGrad();
    const gOut = randn([shape.B, shape.T, shape.C], { seed: 4 });
    const params = [x, ...blk.parameters()];
    const fwd = timeMs(() => scope(() => void noGrad(() => blk.forward(x))), reps);
    const fwdbwd = timeMs(() => scope(() => void grad(blk.forward(x), params, { gradOutput: gOut })), reps);
    return { fwd, fwdbwd };
  });
}

async function main(): Promise<void> {
  console.error(
    `mac-lm engine benchmark: ${native.numThreads()} threads, GEMM ${native.gemmBackend()}, ${rounds} rounds`,
  );
  const ref = new PythonReference("engine_reference.py");
  ref.start();
  const hello = await ref.ask({ cmd: "hello" });
  const errors = (hello.errors ?? {}) as Record<string, string>;
  const hasNumpy = typeof hello.numpy === "string";
  const hasTorch = typeof hello.torch === "string";

  const blk = new GPT2Block(shape.C, shape.NH, 7);
  const ours = { sgemm: new Map<number, number[]>(), fwd: [] as number[], fwdbwd: [] as number[] };
  const theirs = { sgemm: new Map<number, number[]>(), fwd: [] as number[], fwdbwd: [] as number[] };
  let peakRss = 0;
  for (let r = 0; r < rounds; r++) {
    for (const n of sizes) {
      (ours.sgemm.get(n) ?? ours.sgemm.set(n, []).get(n)!).push(oursSgemm(n));
      if (hasNumpy) {
        const res = await ref.ask({ cmd: "sgemm", n, reps });
        if (typeof res.gflops === "number") (theirs.sgemm.get(n) ?? theirs.sgemm.set(n, []).get(n)!).push(res.gflops);
      }
    }
    const b = oursBlock(blk);
    ours.fwd.push(b.fwd);
    ours.fwdbwd.push(b.fwdbwd);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    if (hasTorch) {
      const res = await ref.ask({ cmd: "block", reps, shape });
      if (typeof res.fwd_ms === "number" && typeof res.fwdbwd_ms === "number") {
        theirs.fwd.push(res.fwd_ms);
        theirs.fwdbwd.push(res.fwdbwd_ms);
      } else if (res.error) errors.torch = String(res.error);
    }
    console.error(`round ${r + 1}/${rounds}: block fwd ${b.fwd.toFixed(1)} ms, fwd+bwd ${b.fwdbwd.toFixed(1)} ms`);
  }
  ref.stop();
  blk.dispose();

  const med = (xs: number[] | undefined): number | null => (xs && xs.length > 0 ? round3(median(xs)) : null);
  const ratio = (a: number | null, b: number | null): number | null => (a !== null && b ? round3(a / b) : null);
  const fwd = med(ours.fwd);
  const fwdbwd = med(ours.fwdbwd);
  const torchFwd = med(theirs.fwd);
  const torchFwdbwd = med(theirs.fwdbwd);
  const result = {
    sgemm: sizes.map((n) => {
      const g = med(ours.sgemm.get(n));
      const np = med(theirs.sgemm.get(n));
      return { n, gflops: g, numpy_gflops: np, ratio: ratio(g, np) };
    }),
    block: {
      fwd_ms: fwd,
      fwdbwd_ms: fwdbwd,
      torch_fwd_ms: torchFwd,
      torch_fwdbwd_ms: torchFwdbwd,
      fwd_ratio: ratio(fwd, torchFwd),
      fwdbwd_ratio: ratio(fwdbwd, torchFwdbwd),
      shape,
    },
    rss_mb: round3(peakRss / 2 ** 20),
    env: {
      threads: native.numThreads(),
      gemm: native.gemmBackend(),
      numpy: hello.numpy ?? `missing (${errors.numpy ?? "unknown"})`,
      torch: hello.torch ?? `missing (${errors.torch ?? "unknown"}); install with pip install torch==2.13.0`,
      rounds,
      reps_per_round: reps,
      statistic: "median over rounds of per-round medians; ours and the reference alternate each round",
    },
  };
  const text = JSON.stringify(result, null, 2);
  if (args.json) writeFileSync(args.json, text + "\n");
  console.log(text);
}

await main();
