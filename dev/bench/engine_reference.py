"""Reference figures for `npm run bench:engine`, measured in the same run as mac-lm's own.

Runs as a small server so the benchmark can interleave its own measurements with these (the machine is shared and
noisy; alternating rounds keeps the comparison fair). One JSON command per stdin line, one JSON reply per line:
  {"cmd": "hello"}                          -> {"numpy": version | null, "torch": version | null, "errors": {...}}
  {"cmd": "sgemm", "n": N, "reps": R}       -> {"gflops": median GFLOP/s of numpy's a @ b (float32, n x n)}
  {"cmd": "block", "reps": R, "shape": {B,T,C,NH}} -> {"fwd_ms": .., "fwdbwd_ms": .., "threads": ..}

numpy runs with the machine's environment as it is. The torch block is GPT-2 small's transformer block
(d=768, 12 heads, MLP 3072, GELU-tanh, layernorm, causal attention), float32 on the CPU; fwd+bwd computes the
gradients of the input and of every weight. Timings are medians.
"""

import json
import sys
import time


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def bench_numpy(n, reps):
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return {"gflops": 2 * n**3 / median(times) / 1e9}


def bench_torch(B, T, C, NH, reps):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    H = 4 * C

    def p(*shape):
        return (torch.randn(*shape) * 0.02).requires_grad_(True)

    w = {
        "ln1_w": torch.ones(C, requires_grad=True), "ln1_b": torch.zeros(C, requires_grad=True),
        "qkv_w": p(3 * C, C), "qkv_b": p(3 * C), "proj_w": p(C, C), "proj_b": p(C),
        "ln2_w": torch.ones(C, requires_grad=True), "ln2_b": torch.zeros(C, requires_grad=True),
        "fc_w": p(H, C), "fc_b": p(H), "fc2_w": p(C, H), "fc2_b": p(C),
    }
    x = torch.randn(B, T, C, requires_grad=True)

    def block(x):
        h = F.layer_norm(x, (C,), w["ln1_w"], w["ln1_b"])
        qkv = F.linear(h, w["qkv_w"], w["qkv_b"])
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        a = a.transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(a, w["proj_w"], w["proj_b"])
        h = F.layer_norm(x, (C,), w["ln2_w"], w["ln2_b"])
        h = F.linear(F.gelu(F.linear(h, w["fc_w"], w["fc_b"]), approximate="tanh"), w["fc2_w"], w["fc2_b"])
        return x + h

    params = [x] + list(w.values())
    gout = torch.randn(B, T, C)

    def fwd():
        with torch.no_grad():
            block(x)

    def fwdbwd():
        y = block(x)
        torch.autograd.grad(y, params, gout)

    res = {"version": torch.__version__, "threads": torch.get_num_threads()}
    for name, fn in (("fwd_ms", fwd), ("fwdbwd_ms", fwdbwd)):
        fn()
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        res[name] = median(times) * 1e3
    return res


def hello():
    out = {"numpy": None, "torch": None, "errors": {}}
    for name in ("numpy", "torch"):
        try:
            out[name] = __import__(name).__version__
        except Exception as e:  # reported, not fatal: the JS side says what is missing
            out["errors"][name] = f"{type(e).__name__}: {e}"
    return out


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            if req["cmd"] == "hello":
                res = hello()
            elif req["cmd"] == "sgemm":
                res = bench_numpy(req["n"], req["reps"])
            elif req["cmd"] == "block":
                sh = req["shape"]
                res = bench_torch(sh["B"], sh["T"], sh["C"], sh["NH"], req["reps"])
            else:
                res = {"error": f"unknown command {req['cmd']}"}
        except Exception as e:
            res = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
