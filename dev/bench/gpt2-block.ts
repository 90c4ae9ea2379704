/**
 * GPT-2 small's transformer block for the engine benchmark (the same computation as engine_reference.py's torch
 * block): pre-LN, fused QKV projection, causal attention, GELU-tanh MLP, two residuals.
 */
import { Module } from "../../src/nn/module.js";
import { LayerNorm, Linear } from "../../src/nn/layers.js";
import { type Tensor, add, attention, gelu, reshape, split } from "../../src/tensor/index.js";
import { Rng } from "../../src/tensor/random.js";

export class GPT2Block extends Module {
  ln_1: LayerNorm;
  c_attn: Linear;
  c_proj: Linear;
  ln_2: LayerNorm;
  c_fc: Linear;
  mlp_proj: Linear;

  constructor(
    readonly C: number,
    readonly NH: number,
    seed = 0,
  ) {
    super();
    const rng = new Rng(seed);
    this.ln_1 = new LayerNorm(C);
    this.c_attn = new Linear(C, 3 * C, { rng, std: 0.02 });
    this.c_proj = new Linear(C, C, { rng, std: 0.02 });
    this.ln_2 = new LayerNorm(C);
    this.c_fc = new Linear(C, 4 * C, { rng, std: 0.02 });
    this.mlp_proj = new Linear(4 * C, C, { rng, std: 0.02 });
  }

  // x: (B, T, C)
  forward(x: Tensor): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const HS = C / this.NH;
    const qkv = this.c_attn.forward(this.ln_1.forward(x)); // (B, T, 3C)
    const [q, k, v] = split(qkv, C, 2).map((t) => reshape(t, [B, T, this.NH, HS])) as [Tensor, Tensor, Tensor];
    const a = reshape(attention(q, k, v, { causal: true }), [B, T, C]); // (B, T, C)
    const h = add(x, this.c_proj.forward(a));
    return add(h, this.mlp_proj.forward(gelu(this.c_fc.forward(this.ln_2.forward(h)), "tanh")));
  }
}
