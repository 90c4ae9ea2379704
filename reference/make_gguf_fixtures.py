#!/usr/bin/env python3
"""
Writes the GGUF test fixtures under test/fixtures/gguf/ with the python `gguf` package (GGUFWriter), and the
values our reader must produce, computed by gguf-py itself (gguf.quants.dequantize):

  <TYPE>.gguf + <TYPE>.expected.bin   one file per ggml type that src/io/dequant.ts supports. Each holds
                                      tensor "random" [2, 256] (random block bytes with sane f16 scales, so every
                                      bit pattern of the quantised fields occurs) and, where gguf-py can quantise
                                      that type, "quantized" [2, 256] (random floats quantised by gguf-py).
                                      The .bin is the float32 (little-endian) dequantised values of the file's
                                      tensors, concatenated in file order.
  metadata.gguf + metadata.json       every metadata value type, arrays of each, nested arrays, a custom
                                      alignment (64), F32 tensors of 1-4 dims and one tensor of a type we do not
                                      support (IQ4_NL).
  manifest.json                       what each file holds (tensor names, types, shapes, offsets into .bin).

With --smollm2 PATH (the SmolLM2-135M-Instruct Q4_1 GGUF), also writes smollm2_reference.json: values of a few
tensors as transformers loads them from that file (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...),
which dequantises and undoes llama.cpp's q/k row permutation), for the test that checks our reader and
unpermuteLlamaQK against it.

The --smollm2 part needs `pip install accelerate` (transformers requires it to load GGUF models).
Run from the repository root:  python reference/make_gguf_fixtures.py [--smollm2 ~/.cache/mac-lm/SmolLM2-135M-Instruct.Q4_1.gguf]
Deterministic (fixed seed), so re-running reproduces the committed files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "gguf"

# Byte offsets of the f16 scale fields inside one block, per type (ggml-common.h layouts).
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
PLAIN = [T.F32, T.F16, T.BF16, T.F64]
QUANTIZABLE = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16}
ROWS, COLS = 2, 256


def random_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nblocks = COLS // block
    raw = rng.integers(0, 256, size=(ROWS, nblocks, size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = (rng.uniform(0.001, 2.0, size=(ROWS, nblocks)) * rng.choice([-1, 1], size=(ROWS, nblocks))).astype(np.float16)
        raw[:, :, off : off + 2] = scale.view(np.uint8).reshape(ROWS, nblocks, 2)
    return raw.reshape(ROWS, nblocks * size)


def write_type_fixture(qtype: T, rng: np.random.Generator) -> dict:
    name = qtype.name
    w = gguf.GGUFWriter(str(OUT / f"{name}.gguf"), arch="test")
    tensors: list[tuple[str, np.ndarray]] = []  # (name, expected float32 [ROWS, COLS])
    if qtype in PLAIN:
        if qtype == T.F32:
            x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
            w.add_tensor("random", x)
            tensors.append(("random", x))
        elif qtype == T.F64:
            x = rng.standard_normal((ROWS, COLS))
            w.add_tensor("random", x)
            tensors.append(("random", x.astype(np.float32)))
        elif qtype == T.F16:
            bits = rng.integers(0, 65536, size=(ROWS, COLS), dtype=np.uint16)  # every pattern: subnormals, inf, nan
            x = bits.view(np.float16)
            w.add_tensor("random", x)
            tensors.append(("random", x.astype(np.float32)))
        elif qtype == T.BF16:
            bits = rng.integers(0, 65536, size=(ROWS, COLS), dtype=np.uint16)
            raw = bits.view(np.uint8).reshape(ROWS, COLS * 2)
            w.add_tensor("random", raw, raw_dtype=T.BF16)
            tensors.append(("random", dequantize(raw, T.BF16).astype(np.float32)))
    else:
        raw = random_blocks(rng, qtype)
        w.add_tensor("random", raw, raw_dtype=qtype)
        tensors.append(("random", dequantize(raw, qtype).astype(np.float32)))
    if qtype in QUANTIZABLE:
        x = (rng.standard_normal((ROWS, COLS)) * 0.5).astype(np.float32)
        q = quantize(x, qtype)
        w.add_tensor("quantized", q, raw_dtype=qtype)
        tensors.append(("quantized", dequantize(q, qtype).astype(np.float32)))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    expected = np.concatenate([t.reshape(-1) for _, t in tensors]).astype("<f4")
    expected.tofile(OUT / f"{name}.expected.bin")
    # Cross-check with gguf-py's own reader: same names, types, shapes and raw bytes round-trip.
    r = gguf.GGUFReader(str(OUT / f"{name}.gguf"))
    entries, offset = [], 0
    for (tname, vals), rt in zip(tensors, r.tensors):
        assert rt.name == tname and rt.tensor_type == qtype, (rt.name, rt.tensor_type)
        data = np.asarray(rt.data)
        back = (data if qtype == T.F64 else dequantize(data, qtype)).astype(np.float32).reshape(vals.shape)
        assert np.array_equal(back.view(np.uint32), vals.view(np.uint32)), f"{name}/{tname} round trip"
        entries.append({"name": tname, "type": name, "shape": [ROWS, COLS], "expectedOffset": offset})
        offset += vals.size
    return {"file": f"{name}.gguf", "expected": f"{name}.expected.bin", "tensors": entries}


def write_metadata_fixture(rng: np.random.Generator) -> dict:
    path = OUT / "metadata.gguf"
    w = gguf.GGUFWriter(str(path), arch="test")
    w.add_custom_alignment(64)
    V = gguf.GGUFValueType
    scalars = [
        ("t.u8", 200, V.UINT8),
        ("t.i8", -100, V.INT8),
        ("t.u16", 60000, V.UINT16),
        ("t.i16", -30000, V.INT16),
        ("t.u32", 4000000000, V.UINT32),
        ("t.i32", -2000000000, V.INT32),
        ("t.f32", 0.1, V.FLOAT32),
        ("t.bool_true", True, V.BOOL),
        ("t.bool_false", False, V.BOOL),
        ("t.string", "héllo wörld ✓ 日本", V.STRING),
        ("t.u64_small", 12345678901, V.UINT64),
        ("t.u64_big", 2**63 + 5, V.UINT64),
        ("t.i64_neg", -(2**40), V.INT64),
        ("t.i64_big", -(2**62), V.INT64),
        ("t.f64", 3.141592653589793, V.FLOAT64),
    ]
    for key, val, vt in scalars:
        w.add_key_value(key, val, vt)
    arrays = [
        ("t.arr_u8", [0, 1, 255], V.UINT8),
        ("t.arr_i8", [-128, 0, 127], V.INT8),
        ("t.arr_u16", [0, 65535], V.UINT16),
        ("t.arr_i16", [-32768, 32767], V.INT16),
        ("t.arr_u32", [0, 4294967295], V.UINT32),
        ("t.arr_i32", [-5, 3, 7], V.INT32),
        ("t.arr_f32", [0.5, -1.25, 3.0], V.FLOAT32),
        ("t.arr_u64", [1, 2**64 - 1], V.UINT64),
        ("t.arr_i64", [-(2**63), 2**63 - 1], V.INT64),
        ("t.arr_f64", [1e-300, -2.5], V.FLOAT64),
        ("t.arr_bool", [True, False, True], V.BOOL),
        ("t.arr_str", ["a", "", "Ġhello", "日本語"], V.STRING),
    ]
    for key, val, sub in arrays:
        w.add_key_value(key, val, V.ARRAY, sub_type=sub)
    w.add_key_value("t.arr_nested", [[1, 2, 3], [4, 5]], V.ARRAY)  # array<array<int32>> (gguf-py's int default)
    w.add_key_value("t.arr_nested_str", [["x", "y"], ["z"]], V.ARRAY)
    shapes = {"t1": [5], "t2": [3, 4], "t3": [2, 3, 4], "t4": [2, 1, 3, 2]}
    expected_vals = {}
    for name, shape in shapes.items():
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 0.5 - 1.0
        w.add_tensor(name, x)
        expected_vals[name] = x.reshape(-1).tolist()
    iq = rng.integers(0, 256, size=(1, 18), dtype=np.uint8)
    w.add_tensor("unsupported", iq, raw_dtype=T.IQ4_NL)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    def enc(v):
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return v if abs(v) <= 2**53 - 1 else {"bigint": str(v)}
        if isinstance(v, float):
            return v
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v

    f32 = lambda v: float(np.float32(v))
    meta = {k: (f32(v) if vt == V.FLOAT32 else enc(v)) for k, v, vt in scalars}
    meta.update({k: ([f32(x) for x in v] if sub == V.FLOAT32 else enc(v)) for k, v, sub in arrays})
    meta["t.arr_nested"] = [[1, 2, 3], [4, 5]]
    meta["t.arr_nested_str"] = [["x", "y"], ["z"]]
    types = {k: vt.name.lower() for k, _, vt in scalars}
    types.update({k: f"array<{sub.name.lower()}>" for k, _, sub in arrays})
    types["t.arr_nested"] = "array<array<int32>>"
    types["t.arr_nested_str"] = "array<array<string>>"

    r = gguf.GGUFReader(str(path))
    tensors = [
        {
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": [int(d) for d in reversed(t.shape.tolist())],
            "offset": int(t.data_offset),
            "byteLength": int(t.n_bytes),
        }
        for t in r.tensors
    ]
    doc = {
        "version": 3,
        "alignment": 64,
        "metadata": meta,
        "metadataTypes": types,
        "tensors": tensors,
        "values": expected_vals,
    }
    (OUT / "metadata.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return {"file": "metadata.gguf", "expected": "metadata.json"}


def smollm2_reference(path: Path) -> None:
    """Values from transformers' own GGUF loading of the real SmolLM2 file."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32)
    sd = model.state_dict()
    r = gguf.GGUFReader(str(path))
    types = {t.name: t.tensor_type.name for t in r.tensors}
    # (our GGUF name, transformers name, how many heads to unpermute with or 0)
    cfg = model.config
    picks = [
        ("token_embd.weight", "model.embed_tokens.weight", 0),
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", cfg.num_attention_heads),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", cfg.num_key_value_heads),
        ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", 0),
        ("blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", 0),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", 0),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", 0),
        ("blk.29.attn_q.weight", "model.layers.29.self_attn.q_proj.weight", cfg.num_attention_heads),
        ("blk.29.attn_k.weight", "model.layers.29.self_attn.k_proj.weight", cfg.num_key_value_heads),
        ("output_norm.weight", "model.norm.weight", 0),
    ]
    rng = np.random.default_rng(7)
    out = []
    for gname, hname, heads in picks:
        t = sd[hname].detach().to(torch.float64).numpy()
        flat = t.reshape(-1)
        # A few whole rows (first, last, random) and random single elements, plus whole-tensor checksums.
        rows = t.shape[0] if t.ndim == 2 else 1
        row_ids = sorted({0, rows - 1, *rng.integers(0, rows, size=3).tolist()})
        idx = sorted(rng.integers(0, flat.size, size=64).tolist())
        g9 = lambda a: [float(f"{float(v):.9g}") for v in np.asarray(a, dtype=np.float32).reshape(-1)]
        out.append(
            {
                "gguf": gname,
                "hf": hname,
                "type": types[gname],
                "unpermuteHeads": int(heads),
                "shape": list(t.shape),
                "sum": float(flat.sum()),
                "sumAbs": float(np.abs(flat).sum()),
                "sumSq": float((flat * flat).sum()),
                # weighted by position, so a wrong row order shows (sums alone are order-blind)
                "sumWeighted": float((flat * (np.arange(flat.size) % 1013)).sum()),
                # a few rows (first, last, random): their first 24 values and their sums
                "rows": {
                    str(r): {"head": g9((t[r] if t.ndim == 2 else t)[:24]), "sum": float((t[r] if t.ndim == 2 else t).sum())}
                    for r in row_ids
                },
                "indices": idx,
                "values": g9(flat[idx]),
            }
        )
    doc = {
        "file": path.name,
        "sha256": __import__("hashlib").sha256(path.read_bytes()).hexdigest(),
        "config": {
            "num_hidden_layers": cfg.num_hidden_layers,
            "hidden_size": cfg.hidden_size,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "vocab_size": cfg.vocab_size,
            "intermediate_size": cfg.intermediate_size,
            "rms_norm_eps": cfg.rms_norm_eps,
            "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        },
        "transformers": __import__("transformers").__version__,
        "tensors": out,
    }
    (OUT / "smollm2_reference.json").write_text(json.dumps(doc) + "\n")
    print(f"wrote {OUT / 'smollm2_reference.json'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", type=Path, help="path of SmolLM2-135M-Instruct.Q4_1.gguf; writes smollm2_reference.json")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.skip_synthetic:
        rng = np.random.default_rng(20240601)
        manifest = {"types": [write_type_fixture(q, rng) for q in [*PLAIN, *F16_FIELDS]]}
        manifest["metadata"] = write_metadata_fixture(rng)
        manifest["gguf_py"] = getattr(gguf, "__version__", None) or __import__("importlib.metadata").metadata.version("gguf")
        (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        print(f"wrote fixtures to {OUT}")
    if args.smollm2:
        smollm2_reference(args.smollm2.expanduser())


if __name__ == "__main__":
    sys.exit(main())
