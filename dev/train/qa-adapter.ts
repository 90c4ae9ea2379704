/**
 * `npx tsx dev/train/qa-adapter.ts --out runs/qa-adapter [--steps 160] [--accum 8] [--lr 1e-3] [--rank 16]`:
 * QA-tunes the base LM with a LoRA adapter (models/adapter.ts) on SQuAD-train, as the reference QA-pretrains the
 * LM its fine-tuning baselines start from (mac-reference 6.1). Every method then shares the adapted LM, so no
 * method gains from a reading skill the others were denied. Rows are SmolLM2's chat prompt (eval's qaPrompt, the
 * template validation chooses): with the question's paragraph as context, or bare (closed-book) with probability
 * --bare; the loss is the answer tokens' NLL (the first reference answer, then EOS). One Adam step per --accum rows.
 * Checkpointed every --save-every steps into --out (adapter.safetensors, optimizer, state.json) and resumed from it;
 * metrics.jsonl holds the training curve. Never reads the dev articles (the eval's validation and test streams).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { examplesOf, loadSquad } from "../../src/data/squad.js";
import { qaPrompt } from "../../src/eval/methods/answer.js";
import { openSafetensors, saveSafetensors } from "../../src/io/safetensors.js";
import { loadBase } from "../../src/mac/build.js";
import { qaRows } from "../../src/mac/qa-batch.js";
import { adapterModulation, adapterParameters, createLoraAdapter, saveLoraAdapter } from "../../src/models/adapter.js";
import type { LoraTarget } from "../../src/models/types.js";
import {
  AdamW,
  Tensor,
  accumulateGrads,
  crossEntropy,
  grad,
  optimizerStep,
  releaseFreedMemory,
  scope,
} from "../../src/tensor/index.js";
import { Rng } from "../../src/tensor/random.js";

const { values: v } = parseArgs({
  options: {
    out: { type: "string", default: "runs/qa-adapter" },
    train: { type: "string", default: "data/squad/train-v1.1.json" },
    base: { type: "string", default: "smollm2-135m-instruct" },
    steps: { type: "string", default: "160" },
    accum: { type: "string", default: "8" },
    lr: { type: "string", default: "1e-3" },
    rank: { type: "string", default: "16" },
    alpha: { type: "string", default: "32" },
    targets: { type: "string", default: "q,k,v,o" },
    bare: { type: "string", default: "0.25" },
    "max-tokens": { type: "string", default: "400" },
    "save-every": { type: "string", default: "10" },
    seed: { type: "string", default: "0" },
  },
});
const steps = Number(v.steps);
const accum = Number(v.accum);
const out = v.out!;
mkdirSync(out, { recursive: true });

const { model, tokenizer } = await loadBase(v.base!);
model.eval(); // no dropout: the adapter learns the LM as every method will run it
const spec = { rank: Number(v.rank), alpha: Number(v.alpha), targets: v.targets!.split(",") as LoraTarget[] };
const adapter = createLoraAdapter(model, spec, Number(v.seed));
const params = adapterParameters(adapter);
const opt = new AdamW(params, { lr: Number(v.lr), weightDecay: 0 });

// Resume: the adapter's tensors and Adam's state from the last checkpoint.
let step = 0;
const ckpt = join(out, "checkpoint");
if (existsSync(join(ckpt, "state.json"))) {
  const state = JSON.parse(readFileSync(join(ckpt, "state.json"), "utf8")) as { step: number; optimizer: object };
  const r = openSafetensors(join(ckpt, "adapter.safetensors"));
  for (const p of params) p.data.set(r.load(p.name!).data);
  r.close();
  const o = openSafetensors(join(ckpt, "optimizer.safetensors"));
  const m = params.map((_, i) => o.load(`m.${i}`));
  const vv = params.map((_, i) => o.load(`v.${i}`));
  o.close();
  opt.loadStateDict({ ...(state.optimizer as ReturnType<AdamW["stateDict"]>), m, v: vv });
  step = state.step;
  console.error(`resumed at step ${step}`);
}

// The rows, in a seeded order that a resumed run replays: (prompt, answer), prompt with or without its paragraph.
const examples = examplesOf(loadSquad(v.train!));
const rng = new Rng(Number(v.seed) + 1);
const order = examples.map((_, i) => i);
for (let i = order.length - 1; i > 0; i--) {
  const j = rng.int(i + 1);
  [order[i], order[j]] = [order[j]!, order[i]!];
}
const ctx = { qaTemplate: "Question: {question}\nAnswer:", promptTemplate: "chat" as const };
const maxTokens = Number(v["max-tokens"]);
// Rows already trained on (rows skipped as too long make this approximate after a resume).
let cursor = step * accum;
function nextRow(): { ids: number[]; targets: number[] } {
  for (;;) {
    const k = order[cursor % order.length]!;
    const bare = ((k * 2654435761) % 1000) / 1000 < Number(v.bare); // fixed per example, not per draw
    cursor++;
    const e = examples[k]!;
    const prompt = qaPrompt(ctx, e.question, bare ? [] : [e.document]);
    const [row] = qaRows(tokenizer, [prompt], [e.answers[0]!], { maxLength: 100000 });
    const ids = [...row!.q, ...row!.a];
    if (ids.length > maxTokens) continue;
    const targets = ids.map((_, t) => (t >= row!.q.length - 1 && t < ids.length - 1 ? ids[t + 1]! : -100));
    return { ids, targets };
  }
}

const metrics = join(out, "metrics.jsonl");
let lossEma = NaN;
const started = { at: performance.now(), step };
while (step < steps) {
  const ts = performance.now();
  let lossSum = 0;
  let tokens = 0;
  let gradNorm = 0;
  scope(() => {
    let acc: Tensor[] | null = null;
    for (let i = 0; i < accum; i++) {
      const { ids, targets } = nextRow();
      const grads = scope(() => {
        const T = ids.length;
        const logits = model.forward({
          ids: Tensor.from(Int32Array.from(ids), [1, T], "int32"),
          modulation: adapterModulation(adapter),
        });
        const loss = crossEntropy(logits, Tensor.from(Int32Array.from(targets), [1, T], "int32")); // mean over answer
        lossSum += loss.item();
        tokens += targets.filter((t) => t >= 0).length;
        return grad(loss, params);
      });
      acc = accumulateGrads(acc, grads);
    }
    gradNorm = optimizerStep(opt, acc!, { microBatches: accum, clip: 1 });
  });
  releaseFreedMemory();
  step++;
  const loss = lossSum / accum;
  lossEma = Number.isNaN(lossEma) ? loss : 0.9 * lossEma + 0.1 * loss;
  const rec = {
    step,
    loss,
    loss_ema: lossEma,
    grad_norm: gradNorm,
    answer_tokens: tokens,
    s: (performance.now() - ts) / 1000,
  };
  appendFileSync(metrics, JSON.stringify(rec) + "\n");
  const perStep = (performance.now() - started.at) / 1000 / (step - started.step);
  console.error(
    `step ${step}/${steps} loss ${loss.toFixed(3)} ema ${lossEma.toFixed(3)} |g| ${gradNorm.toFixed(2)} ` +
      `${rec.s.toFixed(1)} s, ETA ${(((steps - step) * perStep) / 60).toFixed(0)} min`,
  );
  if (step % Number(v["save-every"]) === 0 || step === steps) {
    const tmp = `${ckpt}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    saveLoraAdapter(join(tmp, "adapter.safetensors"), adapter, { base: v.base!, step: String(step) });
    const sd = opt.stateDict();
    const t = new Map<string, Tensor>();
    sd.m.forEach((x, i) => t.set(`m.${i}`, x));
    sd.v.forEach((x, i) => t.set(`v.${i}`, x));
    saveSafetensors(join(tmp, "optimizer.safetensors"), t);
    const { m: _m, v: _v, ...rest } = sd;
    writeFileSync(join(tmp, "state.json"), JSON.stringify({ step, optimizer: rest, args: v }));
    rmSync(ckpt, { recursive: true, force: true });
    renameSync(tmp, ckpt);
  }
}
saveLoraAdapter(join(out, "adapter.safetensors"), adapter, {
  base: v.base!,
  steps: String(step),
  data: "SQuAD v1.1 train",
});
console.error(`done: ${join(out, "adapter.safetensors")}`);
