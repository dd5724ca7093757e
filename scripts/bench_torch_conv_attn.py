#!/usr/bin/python3
"""PyTorch CPU baseline for the kernels/cpu Conv2d and Attention benchmarks.

Run:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/bench_torch_conv_attn.py [--threads 2]
Measures the same cases as BenchmarkConv2d / BenchmarkAttention in
kernels/cpu/*_bench_test.go: torch.nn.functional.conv2d, and attention as diffusers'
AttnProcessor computes it (baddbmm(q, k^T) * scale, softmax, bmm with v) over
[B*H, S, D] operands (and, as "/mm", a loop over heads with 2-D torch.mm, which
this torch build runs faster than its bmm). Prints the mean time and GFLOP/s (and the best-of-runs GFLOP/s; conv: 2*N*K*OH*OW*C*R*S, attention:
4*B*H*Sq*Sk*D) and, for attention, the bytes of the score matrix it materialises.
"""
import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

CONV = [  # name, N, C, H, W, K, R(=S), stride, pad
    ("unet3x3_N2_320to320_64x64", 2, 320, 64, 64, 320, 3, 1, 1),
    ("convin3x3_N2_4to320_64x64", 2, 4, 64, 64, 320, 3, 1, 1),
    ("vae3x3_N1_512to512_128x128", 1, 512, 128, 128, 512, 3, 1, 1),
    ("down3x3s2_N2_320to320_64x64", 2, 320, 64, 64, 320, 3, 2, 1),
    ("shortcut1x1_N2_320to640_32x32", 2, 320, 32, 32, 640, 1, 1, 0),
]

ATTN = [  # name, B, H, Sq, Sk, D, causal
    ("self_B2_H8_S4096_D40", 2, 8, 4096, 4096, 40, False),
    ("cross_B2_H8_S4096x77_D40", 2, 8, 4096, 77, 40, False),
    ("self_B2_H8_S1024_D80", 2, 8, 1024, 1024, 80, False),
    ("self_B2_H8_S256_D160", 2, 8, 256, 256, 160, False),
    ("self_B2_H5_S4096_D64", 2, 5, 4096, 4096, 64, False),
    ("causal_B2_H12_S77_D64", 2, 12, 77, 77, 64, True),
]


def timeit(fn, min_time):
    """Returns (mean, best) seconds per call over at least min_time and 3 calls."""
    fn()  # warm up
    times = []
    t0 = time.perf_counter()
    while True:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - t0 >= min_time and len(times) >= 3:
            return sum(times) / len(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per case")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    with torch.no_grad():
        for name, n, c, h, w, k, r, st, pad in CONV:
            x = torch.randn(n, c, h, w)
            wt = torch.randn(k, c, r, r) * (c * r * r) ** -0.5
            b = torch.randn(k)
            y = torch.nn.functional.conv2d(x, wt, b, stride=st, padding=pad)
            flops = 2 * n * k * y.shape[2] * y.shape[3] * c * r * r
            t, best = timeit(lambda: torch.nn.functional.conv2d(x, wt, b, stride=st, padding=pad), args.min_time)
            print(f"conv {name:34s} {t * 1e3:9.2f} ms {flops / t / 1e9:8.1f} GFLOP/s (best {flops / best / 1e9:6.1f})")
        for name, B, H, Sq, Sk, D, causal in ATTN:
            q = torch.randn(B * H, Sq, D)
            k = torch.randn(B * H, Sk, D)
            v = torch.randn(B * H, Sk, D)
            scale = D ** -0.5
            mask = None
            if causal:
                i = torch.arange(Sq)[:, None]
                j = torch.arange(Sk)[None, :]
                mask = torch.zeros(Sq, Sk).masked_fill(j > i + (Sk - Sq), float("-inf"))

            def attn():
                base = torch.empty(B * H, Sq, Sk) if mask is None else mask.expand(B * H, Sq, Sk)
                beta = 0 if mask is None else 1
                s = torch.baddbmm(base, q, k.transpose(1, 2), beta=beta, alpha=scale)
                p = s.softmax(dim=-1)
                return torch.bmm(p, v)

            def attn_mm():
                # The same per (batch, head) with 2-D torch.addmm/mm, which this
                # torch build runs through a faster path than its bmm.
                out = torch.empty(B * H, Sq, D)
                for i in range(B * H):
                    if mask is None:
                        s = torch.mm(q[i], k[i].t()).mul_(scale)
                    else:
                        s = torch.addmm(mask, q[i], k[i].t(), alpha=scale)
                    torch.mm(s.softmax(dim=-1), v[i], out=out[i])
                return out

            flops = 4 * B * H * Sq * Sk * D
            t2, best2 = timeit(attn_mm, args.min_time)
            print(f"attn {name + '/mm':34s} {t2 * 1e3:9.2f} ms {flops / t2 / 1e9:8.1f} GFLOP/s (best {flops / best2 / 1e9:6.1f}) "
                  f"scores {4 * Sq * Sk / 2**20:8.1f} MiB per head")
            t, best = timeit(attn, args.min_time)
            score_bytes = 4 * B * H * Sq * Sk  # the score matrix (softmax makes a second one)
            print(f"attn {name:34s} {t * 1e3:9.2f} ms {flops / t / 1e9:8.1f} GFLOP/s (best {flops / best / 1e9:6.1f}) "
                  f"scores {score_bytes / 2**20:8.1f} MiB (x2 with the softmax output)")


if __name__ == "__main__":
    main()
