/**
 * Child of uninit.test.ts: runs a spread of ops and the decoder models forward and backward (outputs and gradients,
 * training mode with dropout, a KV cache and a left-padded mask) and prints one JSON line: the sum and the sum of
 * squares of every result. Run with MACLM_POISON_UNINIT=1, every uninitialised output starts as NaN, so a kernel
 * that leaves part of its output unwritten changes (NaN) the printed numbers.
 */
import { setDropoutState } from "../../src/nn/layers.js";
import { loadCausalLM } from "../../src/models/load.js";
import {
  Tensor,
  attention,
  concat,
  crossEntropy,
  dropout,
  expand,
  gelu,
  grad,
  layerNorm,
  linear,
  logSoftmax,
  matmul,
  mean,
  mul,
  permute,
  rmsNorm,
  rope,
  scope,
  silu,
  slice,
  softmax,
  sum,
  swiglu,
  transpose,
} from "../../src/tensor/index.js";
import { randint, randn } from "../../src/tensor/random.js";

const results: Record<string, [number, number, boolean]> = {};
function note(name: string, t: Tensor): void {
  let s = 0;
  let s2 = 0;
  for (const x of t.data) {
    s += x;
    s2 += x * x;
  }
  results[name] = [s, s2, Number.isFinite(s2)];
}

scope(() => {
  // The poison is on: a fresh uninitialised tensor reads NaN.
  results.poisoned = [0, 0, Number.isNaN(Tensor.uninit([3]).data[0]!)];
  const x = randn([3, 5, 16], { seed: 1 }).requireGrad();
  const w = randn([24, 16], { seed: 2 }).requireGrad();
  const b = randn([24], { seed: 3 }).requireGrad();
  const g = randn([16], { seed: 4 }).requireGrad();
  const ops: [string, () => Tensor][] = [
    ["linear", () => linear(x, w, b)],
    ["matmul", () => matmul(x, transpose(x, 1, 2))],
    ["layerNorm", () => layerNorm(x, g, null, 1e-5)],
    ["rmsNorm", () => rmsNorm(x, g, 1e-6)],
    ["gelu", () => gelu(x, "tanh")],
    ["silu", () => silu(x)],
    ["swiglu", () => swiglu(x, mul(x, x))],
    ["softmax", () => softmax(x)],
    ["logSoftmax", () => logSoftmax(x)],
    ["permute", () => permute(x, [2, 0, 1])],
    ["slice+concat", () => concat([slice(x, 1, 1, 4), slice(x, 1, 0, 2)], 1)],
    ["expand", () => expand(slice(x, 0, 0, 1), [4, 5, 16])],
    ["sum/mean axis", () => mul(sum(x, { axis: 1, keepDim: true }), mean(x, { axis: 2, keepDim: true }))],
    ["dropout", () => dropout(x, 0.3, { seed: 9 })],
    ["rope", () => rope(permute(x.reshapeView([3, 5, 2, 8]), [0, 1, 2, 3]), { positionOffset: 2 })],
    [
      "attention+dropout",
      () => {
        const q = x.reshapeView([3, 5, 2, 8]);
        return attention(q, q, q, { causal: true, dropout: { p: 0.2, seed: 4 } });
      },
    ],
    ["crossEntropy", () => crossEntropy(linear(x, w, b), randint([3, 5], 24, { seed: 5 }))],
  ];
  for (const [name, f] of ops) {
    const y = f();
    note(name, y);
    const [dx] = grad(sum(mul(y, randn(y.shape, { seed: 7 }))), [x]);
    note(`${name}.grad`, dx!);
  }
  for (const name of ["gpt2-tiny", "llama-tiny"]) {
    const m = loadCausalLM(`test/fixtures/models/${name}`);
    m.train();
    setDropoutState(100);
    const ids = randint([2, 6], m.vocabSize, { seed: 8 });
    const mask = Tensor.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [2, 6]);
    const logits = m.forward({ ids, attentionMask: mask });
    note(`${name}.logits`, logits);
    const params = m.trainableParameters().map(([, t]) => t);
    const gs = grad(crossEntropy(logits, randint([2, 6], m.vocabSize, { seed: 9 })), params);
    gs.forEach((t, i) => note(`${name}.grad${i}`, t));
    m.eval();
    const cache = m.newCache(2);
    note(`${name}.prefill`, m.forward({ ids: slice(ids, 1, 0, 4), attentionMask: slice(mask, 1, 0, 4), cache }));
    note(`${name}.step`, m.forward({ ids: slice(ids, 1, 4, 5), attentionMask: slice(mask, 1, 0, 5), cache }));
    m.dispose();
  }
});
process.stdout.write(JSON.stringify(results) + "\n");
