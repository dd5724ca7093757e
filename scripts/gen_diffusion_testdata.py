"""Writes diffusion/testdata/schedules.json: reference betas and alphas_cumprod
computed as diffusers 0.16.1 computes them (torch float32 linspace, Python-float
betas_for_alpha_bar, torch.cumprod), and torch.randint draws for
Schedule.SampleTimesteps. Run with Debian's /usr/bin/python3 (PyTorch 1.13)."""
import json
import math

import torch


def betas_for_alpha_bar(n, max_beta=0.999):
    def alpha_bar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)],
                        dtype=torch.float32)


out = {}
for name, n, b0, b1 in [("linear", 1000, 0.0001, 0.02), ("linear", 37, 0.001, 0.03),
                        ("scaled_linear", 1000, 0.00085, 0.012), ("squaredcos_cap_v2", 1000, 0, 0)]:
    if name == "linear":
        betas = torch.linspace(b0, b1, n, dtype=torch.float32)
    elif name == "scaled_linear":
        betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, n, dtype=torch.float32) ** 2
    else:
        betas = betas_for_alpha_bar(n)
    acp = torch.cumprod(1.0 - betas, dim=0)
    out[f"{name}_{n}"] = {"schedule": name, "n": n, "beta_start": b0, "beta_end": b1,
                          "betas": betas.tolist(), "alphas_cumprod": acp.tolist()}
out["randint"] = []
for seed, hi, k in [(42, 1000, 8), (7, 37, 5), (0, 1000, 64)]:
    g = torch.Generator().manual_seed(seed)
    out["randint"].append({"seed": seed, "high": hi, "values": torch.randint(0, hi, (k,), generator=g).tolist()})
with open("diffusion/testdata/schedules.json", "w") as f:
    json.dump(out, f)
