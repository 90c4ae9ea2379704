#!/usr/bin/env python3
"""
Writes the decoder-only parity fixtures read by test/parity/{gpt2,llama}.test.ts (committed; re-run to regenerate):

    python3 reference/dump_decoders.py        # from the repository root; torch 2.13 CPU + transformers 5.x + gguf

For each of two tiny, randomly initialised (seeded) Hugging Face models,

  test/fixtures/models/gpt2-tiny/    GPT2LMHeadModel: 2 layers, n_embd 32, 4 heads, vocab 96, n_positions 32
  test/fixtures/models/llama-tiny/   LlamaForCausalLM: 2 layers, hidden 32, 4 heads, 2 kv heads, intermediate 64,
                                     rope_theta 10000, tied embeddings, vocab 96

the folder holds what save_pretrained writes (config.json + model.safetensors, as transformers 5.x writes them)
and expected.safetensors with (all float32 unless noted):

  ids               int32 (B, T) = (2, 7)   random token ids
  attention_mask    (B, T)                  row 0 all ones, row 1 right-padded (last 2 positions 0)
  labels            int32 (B, T)            = ids, with -100 on the first 2 tokens and on padding
  logits            (B, T, V)               model(ids, attention_mask) — no prefix
  prefix.{l}.k/.v   (B, P, NKV, HS)         a random prefix, P = 2, in OUR layout (the attention kernel's BTHD);
                                            Hugging Face's cache layout is (B, NKV, P, HS): ours = hf.transpose(1, 2)
  logits_prefix     (B, T, V)               the prefix passed as a DynamicCache (past_key_values, now `cache`),
                                            attention mask = cat(ones(B, P), attention_mask), no position_ids:
                                            HF starts positions at the cache length P (MAC, mac-reference.md 1.8)
  loss_prefix       (1,)                    model(..., labels=labels).loss with the prefix (HF shifts labels:
                                            mean over t of CE(logits[:, t], labels[:, t+1]) where labels != -100)
  grad.prefix.{l}.k/.v (B, P, NKV, HS)      d loss_prefix / d prefix, the model frozen (our layout)

llama-tiny/model.gguf holds the same Llama weights as llama.cpp's converter writes them (F32; tensor names
token_embd / blk.N.attn_q ... / output_norm, q/k rows permuted for ggml's RoPE, llama.* metadata, no output.weight
since the embeddings are tied), so the GGUF loader is checked against the same expected logits.

The script checks what the fixtures rely on: positions start at P (same logits as explicit position_ids P..P+T-1),
the prefix changes the logits, and HF's label shift equals the explicit one.

With --smollm2 PATH (SmolLM2-135M-Instruct.Q4_1.gguf, see scripts/fetch-models.sh; transformers needs `accelerate`
to load GGUF), also writes test/fixtures/models/smollm2-reference.json: logits summaries of the real model as
transformers loads it from that file (dequantised, q/k un-permuted), for 8 fixed token ids, without and with a
prefix of P = 2 whose values follow a formula both sides compute (see smollm2_prefix), for the test that loads the
same file with loadCausalLM (skipped when the file is absent).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "models")
B, T, P, V = 2, 7, 2, 96
PAD = 2  # padded positions at the end of row 1


def perturb(model: torch.nn.Module, gen: torch.Generator, std: float) -> None:
    """Adds noise to every parameter, so layer-norm weights/biases and zero-initialised biases are exercised."""
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * std)


def cache_kwarg(model: torch.nn.Module) -> str:
    """transformers 5.x renamed past_key_values to cache (the old name is deprecated)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def inputs(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.ones(B, T)
    mask[1, T - PAD :] = 0
    labels = ids.clone()
    labels[:, :2] = -100
    labels[mask == 0] = -100
    return ids, mask, labels


def dump(name: str, model: torch.nn.Module, nkv: int, hs: int, num_layers: int, gen: torch.Generator) -> dict:
    out_dir = os.path.join(ROOT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.save_pretrained(out_dir)

    ids, mask, labels = inputs(gen)
    kw = cache_kwarg(model)
    # Hugging Face layout (B, NKV, P, HS); std 1 like the keys the tiny model computes itself.
    prefix = [
        (torch.randn(B, nkv, P, hs, generator=gen).requires_grad_(), torch.randn(B, nkv, P, hs, generator=gen).requires_grad_())
        for _ in range(num_layers)
    ]
    mask_ext = torch.cat([torch.ones(B, P), mask], dim=1)

    def with_prefix(**extra):
        cache = DynamicCache(ddp_cache_data=[(k, v) for k, v in prefix])
        return model(input_ids=ids, attention_mask=mask_ext, **{kw: cache}, **extra)

    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        logits_prefix = with_prefix().logits
        explicit_pos = with_prefix(position_ids=torch.arange(P, P + T).unsqueeze(0).expand(B, T)).logits
    assert torch.equal(logits_prefix, explicit_pos), "positions after a prefix do not start at P"
    assert (logits_prefix - logits).abs().max() > 1e-2, "the prefix has no visible effect"

    out = with_prefix(labels=labels)
    loss = out.loss
    shifted = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(loss, shifted), "HF's label shift differs from the explicit one"
    loss.backward()

    ours = lambda t: t.detach().transpose(1, 2).contiguous()  # (B, NKV, P, HS) -> (B, P, NKV, HS)
    tensors = {
        "ids": ids.to(torch.int32),
        "attention_mask": mask,
        "labels": labels.to(torch.int32),
        "logits": logits,
        "logits_prefix": logits_prefix,
        "loss_prefix": loss.detach().reshape(1),
    }
    for l, (k, v) in enumerate(prefix):
        tensors[f"prefix.{l}.k"] = ours(k)
        tensors[f"prefix.{l}.v"] = ours(v)
        tensors[f"grad.prefix.{l}.k"] = ours(k.grad)
        tensors[f"grad.prefix.{l}.v"] = ours(v.grad)
    meta = {"layout": "prefix and grad.prefix tensors are (B, P, NKV, HS); HF's cache layout is (B, NKV, P, HS)",
            "P": str(P)}
    save_file({k: t.contiguous() for k, t in tensors.items()}, os.path.join(out_dir, "expected.safetensors"), metadata=meta)
    print(f"{name}: loss_prefix {loss.item():.6f}, |logits| max {logits.abs().max().item():.3f}, "
          f"prefix effect {(logits_prefix - logits).abs().max().item():.3f}")
    return {"dir": out_dir}


def gpt2(gen: torch.Generator) -> None:
    config = GPT2Config(
        vocab_size=V, n_positions=32, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2,
        bos_token_id=0, eos_token_id=1,
    )
    config._attn_implementation = "eager"
    model = GPT2LMHeadModel(config)
    perturb(model, gen, 0.05)
    dump("gpt2-tiny", model, nkv=4, hs=8, num_layers=2, gen=gen)


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py `permute`: interleave the two rotary halves of each head's rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model: LlamaForCausalLM, path: str) -> None:
    import gguf

    c = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("llama-tiny")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(float(c.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_bos_token_id(c.bos_token_id)
    w.add_eos_token_id(c.eos_token_id)
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
    }
    per_layer = {
        "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
    }
    for l in range(c.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{l}.{hf}.weight"] = f"blk.{l}.{gg}.weight"
    for hf, gg in names.items():
        t = sd[hf]
        if ".self_attn.q_proj." in hf:
            t = permute_qk(t, c.num_attention_heads)
        elif ".self_attn.k_proj." in hf:
            t = permute_qk(t, c.num_key_value_heads)
        w.add_tensor(gg, np.ascontiguousarray(t, dtype=np.float32))
    assert "lm_head.weight" not in sd or torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama(gen: torch.Generator) -> None:
    config = LlamaConfig(
        vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
        tie_word_embeddings=True, initializer_range=0.2, bos_token_id=0, eos_token_id=1,
    )
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config)
    perturb(model, gen, 0.05)
    dump("llama-tiny", model, nkv=2, hs=8, num_layers=2, gen=gen)
    write_gguf(model, os.path.join(ROOT, "llama-tiny", "model.gguf"))


SMOL_IDS = [1, 504, 3458, 314, 253, 1345, 30, 216]
SMOL_COLUMNS = [0, 1, 2, 17, 100, 999, 4096, 12345, 30000, 49151]


def smollm2_prefix(num_layers: int, nkv: int, hs: int, P: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Prefix (B=1) in OUR layout (1, P, NKV, HS): k[i] = 0.5·sin(0.37·i + 1.3·l), v[i] = 0.5·cos(0.21·i + 0.7·l),
    i the flat index."""
    n = P * nkv * hs
    i = torch.arange(n, dtype=torch.float64)
    return [
        ((0.5 * torch.sin(0.37 * i + 1.3 * l)).float().reshape(1, P, nkv, hs),
         (0.5 * torch.cos(0.21 * i + 0.7 * l)).float().reshape(1, P, nkv, hs))
        for l in range(num_layers)
    ]


def smollm2_reference(path: str) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32)
    model.eval()
    c = model.config
    ids = torch.tensor([SMOL_IDS])
    T = ids.shape[1]
    prefix = smollm2_prefix(c.num_hidden_layers, c.num_key_value_heads, c.hidden_size // c.num_attention_heads)
    cache = DynamicCache(ddp_cache_data=[(k.transpose(1, 2), v.transpose(1, 2)) for k, v in prefix])
    with torch.no_grad():
        plain = model(input_ids=ids).logits[0].double()
        with_prefix = model(input_ids=ids, attention_mask=torch.ones(1, 2 + T), **{cache_kwarg(model): cache}).logits[0].double()

    def summary(logits: torch.Tensor) -> dict:
        return {
            "columns": [[float(logits[t, j]) for j in SMOL_COLUMNS] for t in range(T)],
            "logsumexp": [float(torch.logsumexp(logits[t], 0)) for t in range(T)],
            "argmax": [int(logits[t].argmax()) for t in range(T)],
            "mean": [float(logits[t].mean()) for t in range(T)],
        }

    doc = {
        "file": os.path.basename(path),
        "transformers": __import__("transformers").__version__,
        "ids": SMOL_IDS,
        "columns": SMOL_COLUMNS,
        "prefix": "smollm2_prefix() in reference/dump_decoders.py, P = 2",
        "logits": summary(plain),
        "logits_prefix": summary(with_prefix),
    }
    out = os.path.join(ROOT, "smollm2-reference.json")
    with open(out, "w") as f:
        json.dump(doc, f)
        f.write("\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", help="path of SmolLM2-135M-Instruct.Q4_1.gguf; writes smollm2-reference.json")
    args = ap.parse_args()
    if args.smollm2:
        smollm2_reference(os.path.expanduser(args.smollm2))
    torch.set_num_threads(1)  # reductions in a fixed order: the same bytes on every run
    torch.manual_seed(0)
    gpt2(torch.Generator().manual_seed(1))
    llama(torch.Generator().manual_seed(2))
    for name in ("gpt2-tiny", "llama-tiny"):
        d = os.path.join(ROOT, name)
        sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
        print(name, json.dumps(sizes))


if __name__ == "__main__":
    main()
