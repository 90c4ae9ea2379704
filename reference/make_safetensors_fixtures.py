"""Writes the tiny safetensors fixtures read by src/io/safetensors.test.ts (committed; re-run only to regenerate).

    python3 reference/make_safetensors_fixtures.py      # from the repository root; needs torch, numpy, safetensors

Files written into test/fixtures/safetensors/:
  dtypes.safetensors      one tensor per dtype the format has (torch.save_file), with metadata
  layout.safetensors      F32/F64/I32/U8 tensors + metadata (numpy.save_file): our writer must reproduce it byte for byte
  f16.safetensors         float32 values with rounding edge cases converted by torch to float16 ...
  bf16.safetensors        ... and to bfloat16: our writer's round-to-nearest-even must give the same bytes
  sharded/                a two-shard checkpoint with model.safetensors.index.json, as transformers writes it
  expected.json           every tensor's dtype, shape and exact values (as float64; "nan"/"inf"/"-inf"/"-0" as strings),
                          the float32 sources of f16/bf16, and the metadata
"""

import json
import math
import os

import numpy as np
import torch
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "safetensors")


def enc(x):
    """A number for JSON, exact: floats as float64, specials as strings."""
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0 and math.copysign(1, x) < 0:
        return "-0"
    return x


def describe(tensors):
    out = {}
    for name, t in tensors.items():
        vals = t.to(torch.float64).flatten().tolist() if t.is_floating_point() else t.flatten().tolist()
        out[name] = {"shape": list(t.shape), "values": [enc(v) for v in vals]}
    return out


def main():
    os.makedirs(os.path.join(OUT, "sharded"), exist_ok=True)
    expected = {}

    # --- every dtype -------------------------------------------------------------------------------------------
    g = torch.Generator().manual_seed(0)
    t = {
        "f32": torch.randn(2, 3, generator=g),
        "f32.special": torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-40]),
        "f32.3d": torch.arange(6, dtype=torch.float32).reshape(2, 1, 3) - 2.5,
        "f64": torch.tensor([1e-300, -1.0 / 3.0, 1e300, 2.0**-1074], dtype=torch.float64),
        "f16": torch.tensor([2.0**-24, 65504.0, -2.0, 0.1, float("inf"), float("nan"), -0.0], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.140625, 1e38, 1e-38, float("-inf"), 0.1], dtype=torch.bfloat16),
        "f8_e4m3": torch.tensor([448.0, 2.0**-9, -0.5, 0.0, 1.125], dtype=torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([57344.0, 2.0**-16, float("inf"), -1.5, 0.0], dtype=torch.float8_e5m2),
        "i64": torch.tensor([[-(2**31), 2**31 - 1], [0, -7]], dtype=torch.int64),
        "i64.big": torch.tensor([2**31, -(2**40)], dtype=torch.int64),
        "u64": torch.tensor([0, 2**33, 5], dtype=torch.uint64),
        "i32": torch.tensor([-(2**31), 2**31 - 1, 3], dtype=torch.int32),
        "u32": torch.tensor([0, 2**31 - 1, 2**32 - 1], dtype=torch.uint32),
        "i16": torch.tensor([-32768, 32767, -1], dtype=torch.int16),
        "u16": torch.tensor([0, 65535, 300], dtype=torch.uint16),
        "i8": torch.tensor([-128, 127, -3], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    if hasattr(torch, "float8_e8m0fnu"):
        t["f8_e8m0"] = torch.tensor([1.0, 2.0**-127, 2.0**127, 0.25], dtype=torch.float8_e8m0fnu)
    meta = {"format": "pt", "note": "ünïcödé ✓", "empty": ""}
    torch_save(t, os.path.join(OUT, "dtypes.safetensors"), metadata=meta)
    expected["dtypes"] = {"metadata": meta, "tensors": describe(t)}
    for name, x in t.items():
        expected["dtypes"]["tensors"][name]["dtype"] = {
            torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
            torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2", torch.int64: "I64", torch.uint64: "U64",
            torch.int32: "I32", torch.uint32: "U32", torch.int16: "I16", torch.uint16: "U16", torch.int8: "I8",
            torch.uint8: "U8", torch.bool: "BOOL", getattr(torch, "float8_e8m0fnu", None): "F8_E8M0",
        }[x.dtype]

    # --- the writer's layout, byte for byte ----------------------------------------------------------------------
    rng = np.random.default_rng(1)
    lay = {
        "w.f32": rng.standard_normal((3, 2)).astype(np.float32),
        "b.f32": np.array([0.5, -0.25], dtype=np.float32),
        "w.f64": rng.standard_normal(3),
        "ids": np.array([5, -1, 2**31 - 1, 0], dtype=np.int32),
        "mask": np.array([1, 0, 0, 1, 1], dtype=np.uint8),
        "z.scalar": np.array(7.0, dtype=np.float32),
        "a.empty": np.zeros((2, 0), dtype=np.float32),
    }
    lay_meta = {"source": "make_safetensors_fixtures.py", "format": "np"}
    np_save(lay, os.path.join(OUT, "layout.safetensors"), metadata=lay_meta)
    expected["layout"] = {"metadata": lay_meta}

    # --- float32 -> float16 / bfloat16 rounding --------------------------------------------------------------------
    edge = [
        1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 1.0 + 2.0**-11 + 2.0**-20, 65504.0, 65519.99, 65520.0, 1e6,
        2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 3 * 2.0**-25, 5 * 2.0**-26, 2.0**-14, 2.0**-14 - 2.0**-25, 2.0**-14 - 2.0**-24,
        6.1e-5, 1e-10, 0.1, -3.14159, 0.0, -0.0, float("inf"), float("-inf"), float("nan"),
        1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-8 + 2.0**-20, 3.4028234663852886e38, 1e-40, 1.17549435e-38, -1e-45,
    ]
    src = torch.cat([torch.tensor(edge, dtype=torch.float32), torch.randn(33, generator=g) * 10, torch.randn(7, generator=g) * 1e-5])
    src = src.reshape(71)
    torch_save({"x": src.to(torch.float16)}, os.path.join(OUT, "f16.safetensors"))
    torch_save({"x": src.to(torch.bfloat16)}, os.path.join(OUT, "bf16.safetensors"))
    expected["rounding"] = {"source_f32": [enc(v) for v in src.to(torch.float64).tolist()]}

    # --- a sharded checkpoint, as transformers writes one ------------------------------------------------------------
    s1 = {"embed.weight": torch.randn(4, 3, generator=g), "layers.0.w": torch.randn(3, 3, generator=g).to(torch.float16)}
    s2 = {"layers.1.w": torch.randn(3, 3, generator=g).to(torch.bfloat16), "head.bias": torch.randn(4, generator=g)}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    torch_save(s1, os.path.join(OUT, "sharded", names[0]), metadata={"format": "pt"})
    torch_save(s2, os.path.join(OUT, "sharded", names[1]), metadata={"format": "pt"})
    weight_map = {k: names[0] for k in s1} | {k: names[1] for k in s2}
    total = sum(x.numel() * x.element_size() for x in (s1 | s2).values())
    with open(os.path.join(OUT, "sharded", "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    expected["sharded"] = {"tensors": describe(s1 | s2)}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
