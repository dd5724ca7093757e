#!/usr/bin/python3
"""Writes tensor/rng/testdata/{cases.json,data.bin}: outputs of PyTorch's CPU
generator for the Go package tensor/rng to match bit for bit.

Run with Debian's python (PyTorch 1.13): /usr/bin/python3 scripts/gen_rng_testdata.py

Each case seeds one torch.Generator and runs a sequence of ops on it; every op's
output is stored either in full (little-endian float32 or uint64 in data.bin at
[offset, offset+nbytes)) or, for large outputs, as the SHA-256 of those bytes.
"""
import hashlib
import json
import os
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tensor", "rng", "testdata")
FULL_LIMIT = 4096  # elements; larger outputs are stored as SHA-256 unless forced


def run_op(g, op):
    k = op["kind"]
    if k == "randn":
        t = torch.randn(op["shape"], generator=g, dtype=torch.float32)
    elif k == "rand":
        t = torch.rand(op["shape"], generator=g, dtype=torch.float32)
    elif k == "uniform":
        t = torch.empty(op["n"], dtype=torch.float32).uniform_(op["from"], op["to"], generator=g)
    elif k == "normal":
        t = torch.empty(op["n"], dtype=torch.float32).normal_(op["mean"], op["std"], generator=g)
    elif k == "random64":
        # full 64-bit range: torch returns random64() reinterpreted as int64
        t = torch.empty(op["n"], dtype=torch.int64).random_(-2**63, None, generator=g)
    else:
        raise ValueError(k)
    return t.contiguous().numpy().tobytes()


def main():
    torch.set_num_threads(1)
    seeds = [0, 1, 42, 500, 501, 2**32 + 5, 2**63 - 1]
    sizes = [1, 2, 3, 15, 16, 17, 31, 33, 1000]
    cases = []
    for s in seeds:
        # a fresh generator per size
        for n in sizes:
            cases.append({"name": f"randn_n{n}_seed{s}", "seed": s, "ops": [{"kind": "randn", "shape": [n]}]})
        cases.append({"name": f"randn_1x4x64x64_seed{s}", "seed": s,
                      "ops": [{"kind": "randn", "shape": [1, 4, 64, 64], "full": s == 42}]})
    for s in [0, 500]:
        cases.append({"name": f"randn_1x4x128x128_seed{s}", "seed": s, "ops": [{"kind": "randn", "shape": [1, 4, 128, 128]}]})
        cases.append({"name": f"randn_16385_seed{s}", "seed": s, "ops": [{"kind": "randn", "shape": [16385]}]})
    # shapes whose numel is not a multiple of 16
    for shape in [[3, 5, 7], [2, 3, 11], [1, 4, 9, 9], [1, 4, 33, 31], [7, 3]]:
        cases.append({"name": "randn_" + "x".join(map(str, shape)) + "_seed3", "seed": 3,
                      "ops": [{"kind": "randn", "shape": shape}]})
    # consecutive calls on one generator, mixing paths (small n uses a cached sample)
    cases.append({"name": "mixed_seed7", "seed": 7, "ops": [
        {"kind": "randn", "shape": [3]}, {"kind": "randn", "shape": [1000]}, {"kind": "randn", "shape": [1]},
        {"kind": "randn", "shape": [17]}, {"kind": "randn", "shape": [5]}, {"kind": "rand", "shape": [10]},
        {"kind": "randn", "shape": [2]}, {"kind": "randn", "shape": [16]}, {"kind": "randn", "shape": [1]},
        {"kind": "random64", "n": 3}, {"kind": "randn", "shape": [1]}, {"kind": "randn", "shape": [4, 4, 3]},
        {"kind": "randn", "shape": [15]}, {"kind": "randn", "shape": [1, 4, 8, 8]}]})
    cases.append({"name": "mixed_seed123", "seed": 123, "ops": [
        {"kind": "randn", "shape": [1, 4, 32, 32]}, {"kind": "randn", "shape": [7]}, {"kind": "randn", "shape": [1, 4, 32, 32]},
        {"kind": "randn", "shape": [1]}, {"kind": "randn", "shape": [1]}, {"kind": "randn", "shape": [33]}]})
    # uniform
    for s in [0, 42]:
        cases.append({"name": f"rand_seed{s}", "seed": s, "ops": [
            {"kind": "rand", "shape": [1]}, {"kind": "rand", "shape": [17]}, {"kind": "rand", "shape": [1000]}]})
        cases.append({"name": f"uniform_seed{s}", "seed": s, "ops": [
            {"kind": "uniform", "n": 500, "from": -3.7, "to": 11.3},
            {"kind": "uniform", "n": 500, "from": 0.1, "to": 0.30000001},
            {"kind": "uniform", "n": 100, "from": -1.0, "to": 1.0},
            {"kind": "uniform", "n": 100, "from": 1e6, "to": 1e6 + 3.0}]})
    # normal_ with mean and std (fused multiply-add in torch's kernel)
    for s in [0, 9]:
        cases.append({"name": f"normal_seed{s}", "seed": s, "ops": [
            {"kind": "normal", "n": 5, "mean": 0.3, "std": 2.5},
            {"kind": "normal", "n": 1000, "mean": 0.3, "std": 2.5},
            {"kind": "normal", "n": 37, "mean": -1.7, "std": 0.01},
            {"kind": "normal", "n": 3, "mean": 100.0, "std": 1e-3}]})
    # raw draws, across several twists of the 624-word state
    for s in [0, 5, 2**32 + 5, 2**64 - 1]:
        cases.append({"name": f"random64_seed{s}", "seed": s, "ops": [{"kind": "random64", "n": 700}]})

    data = bytearray()
    for c in cases:
        g = torch.Generator().manual_seed(c["seed"])
        for op in c["ops"]:
            b = run_op(g, op)
            n = len(b) // (8 if op["kind"] == "random64" else 4)
            full = op.pop("full", n <= FULL_LIMIT)
            if full:
                op["offset"] = len(data)
                op["nbytes"] = len(b)
                data += b
            else:
                op["sha256"] = hashlib.sha256(b).hexdigest()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "data.bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {len(data)} bytes of data", file=sys.stderr)


if __name__ == "__main__":
    main()
