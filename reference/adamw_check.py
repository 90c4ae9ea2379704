"""One-off check of mac-lm's AdamW against torch.optim.AdamW (float64, CPU).

Prints the parameters, exp_avg (m) and exp_avg_sq (v) after a few steps, for the configurations in
src/tensor/optim.test.ts, which holds these numbers as its expected values (the tests do not run Python).
Inputs are exactly representable (small rationals), so the JS side builds the same ones bit for bit.

    python3 reference/adamw_check.py
"""

import torch

torch.set_default_dtype(torch.float64)

N = 7


def p0():
    return [0.5 - 0.375 * i for i in range(N)]


def grad(t):
    # step t counts from 1; values in [-1.25, 1.25] in steps of 0.25, some zero.
    return [(((i * 7 + t * 3) % 11) - 5) / 4 for i in range(N)]


CONFIGS = {
    "adamw": dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, steps=6),
    "adam": dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.0, steps=5),
}

for name, c in CONFIGS.items():
    p = torch.nn.Parameter(torch.tensor(p0()))
    opt = torch.optim.AdamW([p], lr=c["lr"], betas=c["betas"], eps=c["eps"], weight_decay=c["weight_decay"], foreach=False)
    for t in range(1, c["steps"] + 1):
        p.grad = torch.tensor(grad(t))
        opt.step()
    st = opt.state[p]
    print(name)
    print("  p:", [float(x) for x in p.detach()])
    print("  m:", [float(x) for x in st["exp_avg"]])
    print("  v:", [float(x) for x in st["exp_avg_sq"]])
    print("  step:", float(st["step"]))
