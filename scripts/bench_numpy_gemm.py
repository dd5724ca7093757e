#!/usr/bin/env python3
"""Times numpy float32 matmul (OpenBLAS) on the shapes of kernels/cpu BenchmarkGemm.

Run with the system Python that has numpy, without the OpenBLAS overrides of the
environment, e.g.:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        /usr/bin/python3 scripts/bench_numpy_gemm.py --reps 10

(OPENBLAS_CORETYPE=Haswell selects OpenBLAS's AVX2 kernel instead of its AVX-512
one.) Prints one line per shape: M, K, N and GFLOP/s (2*M*N*K / best time) for
B stored k x n ("nn": a @ b) and for B stored n x k and used transposed ("bt":
a @ b.T with b C-ordered [N, K], the nn.Linear weight layout), each the best of
--reps repetitions of at least --min-time seconds, so the numbers can be compared
with `go test -bench Gemm ./kernels/cpu` (f32 and f32Bt sub-benchmarks).
"""
import argparse
import os
import time

import numpy as np

SHAPES = [  # (name, M, K, N)
    ("1024^3", 1024, 1024, 1024),
    ("2048^3", 2048, 2048, 2048),
    ("sd_4096x320x320", 4096, 320, 320),
    ("sd_4096x320x1280", 4096, 320, 1280),
    ("sd_1024x640x640", 1024, 640, 640),
    ("sd_256x1280x5120", 256, 1280, 5120),
]


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    out = []
    for p in threadpool_info():
        if p.get("internal_api") in ("openblas", "mkl", "blis"):
            out.append("%s %s arch=%s threads=%s" % (
                p.get("internal_api"), p.get("version"), p.get("architecture"), p.get("num_threads")))
    return "; ".join(out) or None


def bench(m, k, n, trans_b, min_time, reps):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    if trans_b:
        b = rng.standard_normal((n, k), dtype=np.float32).T  # a view of a C-ordered [N, K]
    else:
        b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.empty((m, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm up
    best = float("inf")
    for _ in range(reps):
        it = 0
        t0 = time.perf_counter()
        while True:
            np.matmul(a, b, out=c)
            it += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / it)
    return 2.0 * m * n * k / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per repetition")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (best is reported)")
    ap.add_argument("--shapes", default="", help="comma-separated MxKxN list instead of the defaults")
    ap.add_argument("--layouts", default="nn,bt", help="comma-separated subset of nn,bt")
    args = ap.parse_args()
    shapes = SHAPES
    if args.shapes:
        shapes = []
        for s in args.shapes.split(","):
            m, k, n = (int(v) for v in s.split("x"))
            shapes.append(("%dx%dx%d" % (m, k, n), m, k, n))
    layouts = args.layouts.split(",")
    info = blas_info()
    print("numpy %s, cpus %d, OPENBLAS_CORETYPE=%s, OPENBLAS_NUM_THREADS=%s" % (
        np.__version__, os.cpu_count(), os.environ.get("OPENBLAS_CORETYPE", "(auto)"),
        os.environ.get("OPENBLAS_NUM_THREADS", "(default)")))
    if info:
        print("blas:", info)
    for name, m, k, n in shapes:
        line = "%-20s M=%-5d K=%-5d N=%-5d" % (name, m, k, n)
        for lay in layouts:
            g = bench(m, k, n, lay == "bt", args.min_time, args.reps)
            line += "  %s %7.1f" % (lay, g)
        print(line + " GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
