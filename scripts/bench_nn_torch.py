#!/usr/bin/python3
"""PyTorch CPU baseline for nn's benchmarks (BenchmarkResnetBlock2D,
BenchmarkTransformer2DModel): the same modules as scripts/golden_nn.py at Stable
Diffusion's first U-Net level (batch 2, 320 channels, 64x64, temb 1280, context
77x768), float32, default initialisation. Prints best and median ms of a few runs.

Run: OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench_nn_torch.py [threads]
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_nn import ResnetBlock2D, Transformer2DModel  # noqa: E402


def bench(name, f, runs=5):
    f()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print("%-28s best %8.1f ms  median %8.1f ms" % (name, ts[0] * 1e3, ts[len(ts) // 2] * 1e3))


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    torch.manual_seed(0)
    with torch.no_grad():
        r = ResnetBlock2D(320, 320, 1280, groups=32).eval()
        x = torch.randn(2, 320, 64, 64)
        temb = torch.randn(2, 1280)
        bench("ResnetBlock2D 320 64x64 B2", lambda: r(x, temb))
        m = Transformer2DModel(320, 8, 40, 768, groups=32, linear=False).eval()
        ctx = torch.randn(2, 77, 768)
        bench("Transformer2DModel 320 B2", lambda: m(x, ctx))


if __name__ == "__main__":
    main()
