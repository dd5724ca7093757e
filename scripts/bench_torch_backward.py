#!/usr/bin/python3
"""PyTorch CPU baseline for the kernels/cpu backward benchmarks.

Run:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench_torch_backward.py [--threads 2] [--kind conv|attn]
(scripts/bench-cpu-backward.sh runs it beside the Go benchmarks.)
Measures the same cases as BenchmarkConv2dBackward and BenchmarkAttentionBackward
in kernels/cpu/conv_attn_backward_bench_test.go:

- conv: torch.ops.aten.convolution_backward (what autograd calls for conv2d) with
  output_mask for the input gradient ("data") and the weight gradient ("weight")
  alone, beside the forward conv2d; GFLOP/s at 2*N*K*OH*OW*C*R*S for each.
- attention: the backward of attention as diffusers' AttnProcessor computes it
  (baddbmm(q, k^T) * scale, softmax, bmm with v over [B*H, S, D]), through
  autograd (torch.autograd.grad of the output against q, k, v with a given
  output gradient), which keeps the Sq x Sk probabilities of every head; and,
  as "/mm", the same per (batch, head) with 2-D products. GFLOP/s at
  2.5 * 4*B*H*Sq*Sk*D for the backward (FlashAttention's convention, the same
  count the Go benchmark uses), 4*B*H*Sq*Sk*D for the forward.
Prints the mean time and GFLOP/s (and the best-of-runs GFLOP/s).
"""
import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

CONV = [  # name, N, C, H, W, K, R(=S), stride, pad
    ("unet3x3_N2_320to320_64x64", 2, 320, 64, 64, 320, 3, 1, 1),
    ("down3x3s2_N2_320to320_64x64", 2, 320, 64, 64, 320, 3, 2, 1),
    ("shortcut1x1_N2_320to640_32x32", 2, 320, 32, 32, 640, 1, 1, 0),
    ("unet3x3_N2_640to640_32x32", 2, 640, 32, 32, 640, 3, 1, 1),
    ("unet3x3_N2_1280to1280_16x16", 2, 1280, 16, 16, 1280, 3, 1, 1),
    ("unet3x3_N2_1280to1280_8x8", 2, 1280, 8, 8, 1280, 3, 1, 1),
    ("unet3x3_N2_1280to1280_4x4", 2, 1280, 4, 4, 1280, 3, 1, 1),
]

ATTN = [  # name, B, H, Sq, Sk, D
    ("self_B2_H8_S4096_D40", 2, 8, 4096, 4096, 40),
    ("cross_B2_H8_S4096x77_D40", 2, 8, 4096, 77, 40),
    ("self_B2_H8_S1024_D80", 2, 8, 1024, 1024, 80),
    ("self_B2_H8_S256_D160", 2, 8, 256, 256, 160),
    ("self_B2_H5_S4096_D64", 2, 5, 4096, 4096, 64),
    ("vae_B1_H1_S1024_D512", 1, 1, 1024, 1024, 512),
    ("vae_B1_H1_S4096_D512", 1, 1, 4096, 4096, 512),
]


def enough(times, elapsed, min_time):
    """Whether to stop sampling: min_time spent and 3 calls (1 call when a
    single one takes min_time or more: the 4096-token attention backward
    takes half a minute here)."""
    return elapsed >= min_time and (len(times) >= 3 or times[0] >= min_time)


def timeit(fn, min_time):
    """Returns (mean, best) seconds per call over at least min_time (see enough)."""
    fn()  # warm up
    times = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if enough(times, time.perf_counter() - t0, min_time):
            return sum(times) / len(times), min(times)


def report(kind, name, flops, t, best, extra=""):
    print(f"{kind} {name:44s} {t * 1e3:9.2f} ms {flops / t / 1e9:8.1f} GFLOP/s (best {flops / best / 1e9:6.1f}){extra}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per case")
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--kind", default="all", choices=["all", "conv", "attn"], help="which cases to run")
    ap.add_argument("--quiet", action="store_true", help="no header line")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not args.quiet:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, mkldnn {torch.backends.mkldnn.is_available()}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    conv_bwd = torch.ops.aten.convolution_backward
    for name, n, c, h, w, k, r, st, pad in CONV:
        if args.only not in name or args.kind == "attn":
            continue
        x = torch.randn(n, c, h, w)
        wt = torch.randn(k, c, r, r) * (c * r * r) ** -0.5
        b = torch.randn(k)
        with torch.no_grad():
            y = torch.nn.functional.conv2d(x, wt, b, stride=st, padding=pad)
        dy = torch.randn_like(y)
        flops = 2 * n * k * y.shape[2] * y.shape[3] * c * r * r

        def fwd():
            with torch.no_grad():
                return torch.nn.functional.conv2d(x, wt, b, stride=st, padding=pad)

        def bwd(mask):
            return conv_bwd(dy, x, wt, [k], [st, st], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        report("conv", name + "/forward", flops, *timeit(fwd, args.min_time))
        report("conv", name + "/data", flops, *timeit(lambda: bwd([True, False, False]), args.min_time))
        report("conv", name + "/weight", flops, *timeit(lambda: bwd([False, True, False]), args.min_time))

    for name, B, H, Sq, Sk, D in ATTN:
        if args.only not in name or args.kind == "conv":
            continue
        q = torch.randn(B * H, Sq, D, requires_grad=True)
        k = torch.randn(B * H, Sk, D, requires_grad=True)
        v = torch.randn(B * H, Sk, D, requires_grad=True)
        do = torch.randn(B * H, Sq, D)
        scale = D ** -0.5

        def attn(q, k, v):
            s = torch.baddbmm(torch.empty(B * H, Sq, Sk), q, k.transpose(1, 2), beta=0, alpha=scale)
            return torch.bmm(s.softmax(dim=-1), v)

        def attn_mm(q, k, v):
            outs = []
            for i in range(B * H):
                s = torch.mm(q[i], k[i].t()).mul_(scale)
                outs.append(torch.mm(s.softmax(dim=-1), v[i]))
            return torch.stack(outs)

        fwd_flops = 4 * B * H * Sq * Sk * D
        bwd_flops = 2.5 * fwd_flops

        def fwd():
            with torch.no_grad():
                return attn(q, k, v)

        def bwd(f):
            # Forward with the graph, then the gradients: time the backward only.
            o = f(q, k, v)
            t = time.perf_counter()
            torch.autograd.grad(o, (q, k, v), do)
            return time.perf_counter() - t

        def time_bwd(f):
            bwd(f)  # warm up
            times = []
            spent = 0.0
            while True:
                times.append(bwd(f))
                spent += times[-1]
                if enough(times, spent, args.min_time):
                    return sum(times) / len(times), min(times)

        report("attn", name + "/forward", fwd_flops, *timeit(fwd, args.min_time))
        report("attn", name + "/backward", bwd_flops, *time_bwd(attn),
               f" materialises {8 * B * H * Sq * Sk / 2**20:8.1f} MiB (P and dP)")
        report("attn", name + "/backward/mm", bwd_flops, *time_bwd(attn_mm))


if __name__ == "__main__":
    main()
