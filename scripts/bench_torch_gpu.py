#!/usr/bin/env python3
"""Time PyTorch on the GPU on the shapes of roentgo's CUDA kernel benchmarks.

Usage: bench_torch_gpu.py [--go-bench bench-kernels_cuda.txt ...] [--iters N]

Runs torch's kernels on the shapes of kernels/cuda/bench_test.go and prints
GFLOP/s (GB/s for group norm) per case with the same FLOP and byte counts:
  Gemm       F.linear(a [M,K], w [N,K])                       2*M*N*K
  Conv3x3    F.conv2d(x [2,320,64,64], w [320,320,3,3], bias, padding=1)
  Attention  F.scaled_dot_product_attention, q/k/v viewed from [B,S,H*D]  4*B*H*Sq*Sk*D
  GroupNorm  F.silu(F.group_norm(x [2,320,64,64], 32, g, b))  2*numel*itemsize bytes
  CUDAUNetStep  an SD1.5-architecture U-Net in plain PyTorch (torch_unet_sd15.py),
             f16, batch 2, 64x64 latents, 77x768 context: ms per forward pass
With --go-bench, it also parses `go test -bench` output of those benchmarks
and prints ours/torch ratios (above 1: ours is faster). f32 GEMM runs with
TF32 off (torch's default for matmul), against our SIMT F32 kernel.
"""
import argparse
import re
import sys

import torch
import torch.nn.functional as F

DEV = "cuda"
DT = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def sdpa(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
        return F.scaled_dot_product_attention(q, k, v)
    s = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return torch.matmul(torch.softmax(s, dim=-1), v)


def timeit(fn, iters):
    if DEV != "cuda":  # smoke test of the script itself
        import time
        fn()
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    # Size the loop to roughly 0.3 s.
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    one = max(start.elapsed_time(end) / 1e3, 1e-6)
    n = max(10, min(iters, int(0.3 / one)))
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / n


def cases():
    """Yields (name, unit, amount, fn-factory) matching the Go benchmark names."""
    for m, k, n in [(4096, 320, 320), (4096, 320, 1280), (1024, 640, 640), (256, 1280, 5120)]:
        for dt in ["bf16", "f16", "f32"]:
            go = "simt-f32" if dt == "f32" else dt

            def mk(m=m, k=k, n=n, dt=dt):
                a = torch.randn(m, k, device=DEV, dtype=DT[dt]) * 0.5
                w = torch.randn(n, k, device=DEV, dtype=DT[dt]) * 0.5
                return lambda: F.linear(a, w)

            yield "Gemm/M%dxK%dxN%d/%s" % (m, k, n, go), "GFLOP/s", 2.0 * m * n * k, mk
    for dt in ["bf16", "f16"]:

        def mk(dt=dt):
            x = torch.randn(2, 320, 64, 64, device=DEV, dtype=DT[dt])
            w = torch.randn(320, 320, 3, 3, device=DEV, dtype=DT[dt]) * 0.05
            b = torch.randn(320, device=DEV, dtype=DT[dt])
            return lambda: F.conv2d(x, w, b, padding=1)

        yield "Conv3x3/N2-320to320-64x64/" + dt, "GFLOP/s", 2.0 * 2 * 320 * 64 * 64 * 320 * 9, mk
    for sk in [4096, 77]:
        for dt in ["bf16", "f16"]:
            kind = "self" if sk == 4096 else "cross"

            def mk(sk=sk, dt=dt):
                B, H, S, D = 2, 8, 4096, 40
                q = torch.randn(B, S, H * D, device=DEV, dtype=DT[dt])
                k = torch.randn(B, sk, H * D, device=DEV, dtype=DT[dt])
                v = torch.randn(B, sk, H * D, device=DEV, dtype=DT[dt])
                qv = q.view(B, S, H, D).transpose(1, 2)
                kv = k.view(B, sk, H, D).transpose(1, 2)
                vv = v.view(B, sk, H, D).transpose(1, 2)
                return lambda: sdpa(qv, kv, vv)

            yield ("Attention/%s-B2H8-4096x%d-D40/%s" % (kind, sk, dt), "GFLOP/s",
                   4.0 * 2 * 8 * 4096 * sk * 40, mk)
    for dt in ["bf16", "f16", "f32"]:
        item = 4 if dt == "f32" else 2

        def mk(dt=dt):
            x = torch.randn(2, 320, 64, 64, device=DEV, dtype=DT[dt])
            g = torch.randn(320, device=DEV, dtype=DT[dt])
            b = torch.randn(320, device=DEV, dtype=DT[dt])
            return lambda: F.silu(F.group_norm(x, 32, g, b, 1e-5))

        yield "GroupNorm/2x320x64x64-silu/" + dt, "GB/s", 2.0 * 2 * 320 * 64 * 64 * item, mk

    def mk_unet():
        import os
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_unet_sd15 import UNetSD15

        # Initialise on the device (torch >= 2.0): 860 M parameters initialise
        # slowly on one CPU thread.
        if hasattr(torch, "device") and hasattr(torch.device(DEV), "__enter__"):
            with torch.device(DEV):
                m = UNetSD15().to(torch.float16).eval()
        else:
            m = UNetSD15().to(DEV, torch.float16).eval()
        x = torch.randn(2, 4, 64, 64, device=DEV, dtype=torch.float16)
        t = torch.tensor(500.0, device=DEV)
        c = torch.randn(2, 77, 768, device=DEV, dtype=torch.float16)

        def step():
            with torch.no_grad():
                m(x, t, c)

        return step

    yield "CUDAUNetStep", "ms/step", None, mk_unet


BENCH_RE = re.compile(r"^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+[\d.]+ ns/op(.*)$")


def parse_go(paths):
    ours = {}
    for p in paths:
        try:
            lines = open(p).read().splitlines()
        except OSError as e:
            print("cannot read %s: %s" % (p, e), file=sys.stderr)
            continue
        for line in lines:
            m = BENCH_RE.match(line.strip())
            if not m:
                continue
            metrics = re.findall(r"([\d.]+) (\S+)", m.group(2))
            for val, unit in metrics:
                if unit in ("GFLOP/s", "GB/s", "ms/step"):
                    ours[m.group(1)] = (float(val), unit)
    return ours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--go-bench", nargs="*", default=[])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--device", default="cuda", help="cpu: smoke-test this script without a GPU")
    args = ap.parse_args()
    global DEV
    DEV = args.device
    if DEV == "cuda" and not torch.cuda.is_available():
        print("torch: CUDA not available", file=sys.stderr)
        return 1
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev_name = torch.cuda.get_device_name() if DEV == "cuda" else DEV
    print("torch %s, CUDA %s, %s" % (torch.__version__, torch.version.cuda, dev_name))
    theirs = {}
    for name, unit, amount, mk in cases():
        if args.filter not in name:
            continue
        try:
            fn = mk()
            sec = timeit(fn, args.iters)
            theirs[name] = (sec * 1e3 if amount is None else amount / sec / 1e9, unit)
            print("torch %-48s %10.1f %s  (%.1f us)" % (name, theirs[name][0], unit, sec * 1e6))
        except Exception as e:  # report and go on
            print("torch %-48s failed: %s" % (name, e))
        if DEV == "cuda":
            torch.cuda.empty_cache()
    ours = parse_go(args.go_bench)
    if ours:
        print()
        print("ours/torch (above 1: roentgo faster)")
        print("%-48s %12s %12s %8s %s" % ("case", "ours", "torch", "ratio", "unit"))
        for name, (t, unit) in theirs.items():
            if name in ours:
                o = ours[name][0]
                r = (t / o if o else float("nan")) if unit == "ms/step" else (o / t if t else float("nan"))
                print("%-48s %12.1f %12.1f %8.2f %s" % (name, o, t, r, unit))
            else:
                print("%-48s %12s %12.1f %8s %s" % (name, "-", t, "-", unit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
