"""Writes the tiny BERT and T5 parity fixtures read by test/parity/{bert,t5}.test.ts (committed; re-run only to
regenerate; the output is the same on every run).

    python3 reference/dump_encoders.py      # from the repository root; needs torch, transformers, safetensors

Each folder under test/fixtures/models/ holds config.json and model.safetensors (as transformers' save_pretrained
writes them) and expected.safetensors (inputs and expected outputs, float32 / int32):

  bert-tiny/                BertModel (2 layers, hidden 32, 4 heads, intermediate 64, vocab 100, with pooler)
      ids, token_type_ids, mask (2, 10), row 1 right-padded;  last_hidden (2, 10, 32), pooler (2, 32),
      sentence (2, 32) = L2-normalised mean over unmasked tokens (sentence-transformers' all-MiniLM-L6-v2 recipe);
      grad_R (2, 10, 32) and the gradients of sum(last_hidden * grad_R) with respect to
      grad.embeddings.word_embeddings.weight and grad.encoder.layer.0.attention.self.query.weight;
      a P-tuning v2 prefix of P = 3 (metadata "P") given to HF as a pre-filled DynamicCache (token positions start
      at P): prefix.{l}.k / .v (2, 3, 4, 8) in our (B, P, NH, HS) layout, prefix_mask (2, 13), last_hidden_prefix
      (2, 10, 32), and the gradients grad.prefix.{l}.k / .v of sum(last_hidden_prefix * grad_R).
  t5-tiny/relu/             T5ForConditionalGeneration v1.0 style: ReLU FF, tied lm_head with the d_model^-0.5 rescale
  t5-tiny/gated-gelu/       v1.1 style: gated-gelu FF (gelu_new), and an untied lm_head written the way transformers
                            4.x checkpoints of v1.1 have it (config tie_word_embeddings: false, lm_head.weight stored,
                            no rescale); its logits are computed here as decoder_hidden @ lm_head.weight^T.
      (both: d_model 32, d_kv 8, 4 heads, d_ff 64, 2 + 2 layers, 8 buckets, max_distance 20, vocab 64)
      enc_ids, enc_mask (2, 24), row 1 right-padded with 5 pads;  encoder (2, 24, 32)
      dec_ids (2, 7);  decoder (2, 7, 32) with the encoder mask;  logits (2, 7, 64)
      query_embeds (2, 6, 32);  decoder_embeds (2, 6, 32): MAC's amortizer use, decoder run on inputs_embeds with
      NO encoder mask;  grad_R (2, 6, 32) and gradients of sum(decoder_embeds * grad_R) with respect to
      grad.query_embeds, grad.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight and
      grad.decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight.
  t5-tiny/buckets.safetensors   transformers' relative position buckets for relative positions -300..300, for
                            (num_buckets, max_distance) = (8, 20) and (32, 128), bidirectional and not.

Weights are HF's initialisation plus seeded noise on every parameter (LayerNorm weights and biases included), so
each parameter matters. Models run in eval mode (no dropout) with eager attention.
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, DynamicCache, T5Config, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "models")


def perturb(model, gen, scale=0.1):
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def save_expected(folder, tensors, **meta):
    # At most one metadata entry: safetensors writes the metadata map in random order, and the files should come
    # out byte for byte the same on every run.
    assert len(meta) <= 1
    out = {k: (v.detach().to(torch.float32) if v.is_floating_point() else v.to(torch.int32)).contiguous() for k, v in tensors.items()}
    save_file(out, os.path.join(folder, "expected.safetensors"), metadata={k: str(v) for k, v in meta.items()} or None)


def bert():
    folder = os.path.join(ROOT, "bert-tiny")
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        type_vocab_size=2,
        hidden_act="gelu",
        attn_implementation="eager",
    )
    model = BertModel(cfg, add_pooling_layer=True).eval()
    gen = torch.Generator().manual_seed(1)
    perturb(model, gen)
    model.save_pretrained(folder)

    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1, 100, (2, 10), generator=g)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    ids[1, 6:] = 0
    token_type = torch.zeros(2, 10, dtype=torch.long)
    token_type[0, 5:] = 1
    token_type[1, 3:6] = 1
    out = model(input_ids=ids, attention_mask=mask, token_type_ids=token_type)
    hidden = out.last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    sentence = torch.nn.functional.normalize(pooled, p=2, dim=1)

    R = torch.randn(hidden.shape, generator=g)
    word = model.embeddings.word_embeddings.weight
    query = model.encoder.layer[0].attention.self.query.weight
    gw, gq = torch.autograd.grad((hidden * R).sum(), [word, query])

    # P-tuning v2 prefix through HF's cache: keys/values (B, NH, P, HS) before the tokens' own, positions from P.
    P, NH, HS = 3, 4, 8
    pk = [(torch.randn(2, NH, P, HS, generator=g)).requires_grad_(True) for _ in range(2)]
    pv = [(torch.randn(2, NH, P, HS, generator=g)).requires_grad_(True) for _ in range(2)]
    cache = DynamicCache(config=model.config)
    for l in range(2):
        cache.update(pk[l], pv[l], l)
    prefix_mask = torch.cat([torch.ones(2, P, dtype=torch.long), mask], 1)
    hidden_p = model(input_ids=ids, attention_mask=prefix_mask, token_type_ids=token_type, cache=cache).last_hidden_state
    gp = torch.autograd.grad((hidden_p * R).sum(), pk + pv)
    prefix = {}
    for l in range(2):
        prefix[f"prefix.{l}.k"] = pk[l].transpose(1, 2)
        prefix[f"prefix.{l}.v"] = pv[l].transpose(1, 2)
        prefix[f"grad.prefix.{l}.k"] = gp[l].transpose(1, 2)
        prefix[f"grad.prefix.{l}.v"] = gp[2 + l].transpose(1, 2)

    save_expected(
        folder,
        {
            "ids": ids,
            "token_type_ids": token_type,
            "mask": mask,
            "last_hidden": hidden,
            "pooler": out.pooler_output,
            "sentence": sentence,
            "grad_R": R,
            "grad.embeddings.word_embeddings.weight": gw,
            "grad.encoder.layer.0.attention.self.query.weight": gq,
            "prefix_mask": prefix_mask,
            "last_hidden_prefix": hidden_p,
            **prefix,
        },
        P=P,
    )


def t5(name, ff, untied_head):
    folder = os.path.join(ROOT, "t5-tiny", name)
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(10)
    cfg = T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        num_heads=4,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj=ff,
        dropout_rate=0.1,
        attn_implementation="eager",
    )
    model = T5ForConditionalGeneration(cfg).eval()
    gen = torch.Generator().manual_seed(11)
    perturb(model, gen)
    model.save_pretrained(folder)

    g = torch.Generator().manual_seed(12)
    enc_ids = torch.randint(2, 64, (2, 24), generator=g)
    enc_ids[:, -1] = 1  # </s>
    enc_mask = torch.ones(2, 24, dtype=torch.long)
    enc_ids[1, 19:] = 0
    enc_ids[1, 18] = 1
    enc_mask[1, 19:] = 0
    dec_ids = torch.randint(2, 64, (2, 7), generator=g)
    dec_ids[:, 0] = 0  # decoder_start_token_id
    query = (torch.randn(2, 6, 32, generator=g) * 0.5).requires_grad_(True)

    encoder = model.encoder(input_ids=enc_ids, attention_mask=enc_mask).last_hidden_state
    decoder = model.decoder(input_ids=dec_ids, encoder_hidden_states=encoder, encoder_attention_mask=enc_mask).last_hidden_state
    # MAC's amortizer (t5_wrapper.py): the encoder with the mask, the decoder on learned queries, no encoder mask.
    decoder_embeds = model.decoder(inputs_embeds=query, encoder_hidden_states=encoder).last_hidden_state
    if untied_head:
        lm_head = torch.randn(64, 32, generator=gen)
        logits = decoder @ lm_head.T
    else:
        full = model(input_ids=enc_ids, attention_mask=enc_mask, decoder_input_ids=dec_ids)
        logits = full.logits
        assert torch.allclose(logits, (decoder * 32**-0.5) @ model.shared.weight.T, atol=1e-5)

    R = torch.randn(decoder_embeds.shape, generator=g)
    enc_bias = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    dec_bias = model.decoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    gq, ge, gd = torch.autograd.grad((decoder_embeds * R).sum(), [query, enc_bias, dec_bias])

    if untied_head:
        # A v1.1 checkpoint as transformers 4.x saved it: lm_head stored, tie_word_embeddings false, no rescale.
        path = os.path.join(folder, "model.safetensors")
        from safetensors.torch import load_file

        weights = load_file(path)
        weights["lm_head.weight"] = lm_head.contiguous()
        save_file(weights, path, metadata={"format": "pt"})
        cfg_path = os.path.join(folder, "config.json")
        with open(cfg_path) as f:
            c = json.load(f)
        c["tie_word_embeddings"] = False
        c.pop("scale_decoder_outputs", None)
        with open(cfg_path, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")

    save_expected(
        folder,
        {
            "enc_ids": enc_ids,
            "enc_mask": enc_mask,
            "dec_ids": dec_ids,
            "query_embeds": query,
            "encoder": encoder,
            "decoder": decoder,
            "logits": logits,
            "decoder_embeds": decoder_embeds,
            "grad_R": R,
            "grad.query_embeds": gq,
            "grad.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": ge,
            "grad.decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": gd,
        },
    )


def buckets():
    rel = torch.arange(-300, 301, dtype=torch.long)
    out = {"relative_position": rel}
    for nb, md in [(8, 20), (32, 128)]:
        for bidi in [True, False]:
            b = T5Attention._relative_position_bucket(rel, bidirectional=bidi, num_buckets=nb, max_distance=md)
            out[f"buckets.{nb}.{md}.{'bidirectional' if bidi else 'causal'}"] = b
    save_expected(os.path.join(ROOT, "t5-tiny"), out)
    os.replace(os.path.join(ROOT, "t5-tiny", "expected.safetensors"), os.path.join(ROOT, "t5-tiny", "buckets.safetensors"))


def main():
    torch.use_deterministic_algorithms(True)
    bert()
    t5("relu", "relu", untied_head=False)
    t5("gated-gelu", "gated-gelu", untied_head=True)
    buckets()


if __name__ == "__main__":
    main()
