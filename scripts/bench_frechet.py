#!/usr/bin/python3
"""Times scipy's Frechet distance on 2048-d statistics and writes those
statistics for the Go benchmark (scripts/bench_frechet.sh runs both).

Needs python3 with numpy and scipy (Debian: python3-numpy, python3-scipy).

    /usr/bin/python3 scripts/bench_frechet.py OUTDIR [N] [D]

writes OUTDIR/stats1.npz, OUTDIR/stats2.npz (mu, sigma as pytorch-fid saves
them) and OUTDIR/scipy.txt (the distance and the seconds it took).
"""
import os
import sys
import time

import numpy as np
import scipy
import scipy.linalg


def frechet(mu1, s1, mu2, s2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance steps on scipy.linalg.sqrtm."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def features(rng, n, d, k=64, scale=1.0):
    """Non-negative, correlated features like Inception pool outputs."""
    a = rng.standard_normal((d, k)) / np.sqrt(k)
    z = rng.standard_normal((n, k))
    return np.maximum(z @ a.T + 0.5 * rng.standard_normal((n, d)), 0) * scale


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    d = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    stats = []
    for i, scale in enumerate((1.0, 1.1)):
        f = features(rng, n, d, scale=scale)
        mu, sigma = np.mean(f, axis=0), np.cov(f, rowvar=False)
        np.savez(os.path.join(out, "stats%d.npz" % (i + 1)), mu=mu, sigma=sigma)
        stats.append((mu, sigma))
    t0 = time.perf_counter()
    fd = frechet(stats[0][0], stats[0][1], stats[1][0], stats[1][1])
    dt = time.perf_counter() - t0
    with open(os.path.join(out, "scipy.txt"), "w") as fh:
        fh.write("%.17g %.6f\n" % (fd, dt))
    print("scipy %s numpy %s: Frechet distance %dx%d stats (N=%d): fd %.12g in %.2f s"
          % (scipy.__version__, np.__version__, d, d, n, fd, dt))


if __name__ == "__main__":
    main()
