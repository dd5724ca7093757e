#!/usr/bin/python3
"""Writes golden data for package metrics into metrics/testdata/.

Needs python3 with numpy, scipy and torch (Debian: python3-numpy, python3-scipy,
python3-torch). Run from the repository root:

    /usr/bin/python3 scripts/golden_eval.py

The Go tests only read the files written here; neither CI nor `go test` needs
Python. Everything is seeded, so a rerun writes the same numbers (up to the
BLAS build's rounding).

Files (numpy .npz; 0-d arrays for scalars):
  features.npz        two feature sets, their mean/covariance (np.mean, np.cov)
  frechet_<case>.npz  mu1, sigma1, mu2, sigma2, fd, trace_sqrt, eps_added
                      (pytorch-fid's calculate_frechet_distance, re-implemented
                      below from its documented steps on top of scipy.linalg.sqrtm)
  sqrtm.npz           a_<k>, re_<k>, im_<k>: scipy.linalg.sqrtm of small matrices
  stats_cleanfid.npz  mu as float32, sigma float64, savez_compressed (as clean-fid)
  kid.npz             x, y, subset indices, per-subset MMD^2 and their mean
  ssim.npz            images (float32 in [0,1]) and SSIM / MS-SSIM values from an
                      independent numpy implementation, cross-checked with torch
"""
import os
import sys

import numpy as np
import scipy
import scipy.linalg
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "metrics", "testdata")


def frechet(mu1, s1, mu2, s2, eps=1e-6):
    """Frechet distance with pytorch-fid's conventions: retry with eps*I on a
    non-finite sqrtm, drop a small imaginary part (diagonal within 1e-3)."""
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    added = False
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
        added = True
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("imaginary component %g" % np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    tr = np.trace(covmean)
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr, tr, added


def structured(rng, n, d, k, scale=1.0, shift=0.0):
    """n samples of x = A z + noise + shift: a covariance of rank k plus noise."""
    a = rng.standard_normal((d, k)) / np.sqrt(k)
    z = rng.standard_normal((n, k))
    return (z @ a.T + 0.3 * rng.standard_normal((n, d))) * scale + shift


def write_features(rng):
    f1 = structured(rng, 50, 8, 3)
    f2 = structured(rng, 61, 8, 5, scale=1.5, shift=0.2) + 1e4  # a large offset tests stability
    np.savez(os.path.join(OUT, "features.npz"),
             f1=f1, f2=f2,
             mu1=np.mean(f1, axis=0), sigma1=np.cov(f1, rowvar=False),
             mu2=np.mean(f2, axis=0), sigma2=np.cov(f2, rowvar=False))


def write_frechet(rng):
    cases = {}
    # Well-conditioned: 16-d from 400 samples each.
    f1 = structured(rng, 400, 16, 6)
    f2 = structured(rng, 400, 16, 6, scale=1.2, shift=0.1)
    cases["full"] = (f1, f2)
    # Near-singular: 40-d from 25 samples (rank-24 covariances).
    f1 = structured(rng, 25, 40, 5)
    f2 = structured(rng, 25, 40, 5, scale=0.8)
    cases["near_singular"] = (f1, f2)
    # Identical sets: the distance is rounding noise around 0.
    f1 = structured(rng, 100, 12, 4)
    cases["identical"] = (f1, f1.copy())
    for name, (f1, f2) in cases.items():
        mu1, s1 = np.mean(f1, axis=0), np.cov(f1, rowvar=False)
        mu2, s2 = np.mean(f2, axis=0), np.cov(f2, rowvar=False)
        fd, tr, added = frechet(mu1, s1, mu2, s2)
        assert not added, name
        np.savez(os.path.join(OUT, "frechet_%s.npz" % name), mu1=mu1, sigma1=s1, mu2=mu2, sigma2=s2,
                 fd=np.float64(fd), trace_sqrt=np.float64(tr), eps_added=np.float64(added))

    # A product whose Schur form has a Jordan block at eigenvalue 0
    # (S1 S2 = [[0,0,0],[1,0,0],[0,0,1]]-like): scipy's sqrtm fails (0/0 with
    # a non-zero numerator), so pytorch-fid adds eps*I to both covariances.
    s1 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    s2 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mu1 = np.array([0.5, -1.0, 2.0])
    mu2 = np.array([0.0, 1.0, 1.0])
    first, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    assert not np.isfinite(first).all()
    eps = 1e-6
    off = np.eye(3) * eps
    cm = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    np.savez(os.path.join(OUT, "frechet_eps.npz"), mu1=mu1, sigma1=s1, mu2=mu2, sigma2=s2,
             sqrt_re=cm.real, sqrt_im=np.imag(cm),
             max_imag_diag=np.float64(np.max(np.abs(np.diagonal(cm).imag))),
             mean_term=np.float64((mu1 - mu2).dot(mu1 - mu2)),
             trace_sqrt=np.float64(np.trace(cm).real))


def write_sqrtm(rng):
    mats = []
    # PSD product (real, positive eigenvalues).
    a = rng.standard_normal((6, 6)); b = rng.standard_normal((6, 6))
    mats.append((a @ a.T).dot(b @ b.T))
    # Non-symmetric with complex eigenvalues (2x2 blocks in the real Schur form).
    mats.append(rng.standard_normal((7, 7)) + 3 * np.eye(7))
    # Real, with a negative eigenvalue (complex root, no 2x2 blocks).
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    mats.append(q @ np.diag([4.0, 1.0, 0.25, -2.0, 9.0]) @ q.T)
    # Upper triangular, 70x70 (beyond scipy's 64 block size).
    t = np.triu(rng.standard_normal((70, 70))) * 0.1
    t[np.diag_indices(70)] = rng.uniform(0.5, 2.0, 70)
    mats.append(t)
    out = {}
    for k, m in enumerate(mats):
        x, _ = scipy.linalg.sqrtm(m, disp=False)
        out["a_%d" % k] = m
        out["re_%d" % k] = np.real(x).astype(np.float64)
        out["im_%d" % k] = np.imag(x).astype(np.float64)
    np.savez(os.path.join(OUT, "sqrtm.npz"), **out)


def write_cleanfid_stats(rng):
    f = structured(rng, 30, 6, 3).astype(np.float32)
    mu = np.mean(f, axis=0)  # float32, as clean-fid's stats have it
    sigma = np.cov(f, rowvar=False)  # float64
    assert mu.dtype == np.float32 and sigma.dtype == np.float64
    np.savez_compressed(os.path.join(OUT, "stats_cleanfid.npz"), mu=mu, sigma=sigma)


def mmd2_unbiased(x, y):
    """clean-fid kernel_distance's per-subset term, cubic polynomial kernel."""
    m, d = x.shape
    a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
    b = (x @ y.T / d + 1) ** 3
    return (a.sum() - np.diag(a).sum()) / (m * (m - 1)) - b.sum() * 2 / (m * m)


def write_kid(rng):
    x = structured(rng, 40, 10, 4)
    y = structured(rng, 50, 10, 4, scale=1.3, shift=0.2)
    m, subsets = 12, 5
    ix = np.stack([rng.choice(40, m, replace=False) for _ in range(subsets)])
    iy = np.stack([rng.choice(50, m, replace=False) for _ in range(subsets)])
    vals = np.array([mmd2_unbiased(x[ix[s]], y[iy[s]]) for s in range(subsets)])
    np.savez(os.path.join(OUT, "kid.npz"), x=x, y=y, ix=ix.astype(np.float64), iy=iy.astype(np.float64),
             mmd2=vals, kid=np.float64(vals.mean()), kid_std=np.float64(vals.std()),
             mmd2_full=np.float64(mmd2_unbiased(x[:40], y[:40])))


# --- SSIM / MS-SSIM, written from the paper and pytorch_msssim's documented steps ---

def gauss_win(size=11, sigma=1.5):
    c = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(c ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def filt_np(img, g):
    """Separable valid correlation: along rows, then along columns."""
    n = len(g)
    h, w = img.shape
    t = sum(g[k] * img[:, k:w - n + 1 + k] for k in range(n))
    return sum(g[k] * t[k:h - n + 1 + k, :] for k in range(n))


def ssim_cs_np(x, y, data_range, g, k1=0.01, k2=0.03):
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mx, my = filt_np(x, g), filt_np(y, g)
    sx = filt_np(x * x, g) - mx * mx
    sy = filt_np(y * y, g) - my * my
    sxy = filt_np(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sx + sy + c2)
    s = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return s.mean(), cs.mean()


def pool_np(x):
    """2x2 mean with zero padding of size%2 on both sides, zeros counted."""
    ph, pw = x.shape[0] % 2, x.shape[1] % 2
    p = np.pad(x, ((ph, ph), (pw, pw)))
    oh, ow = (p.shape[0] - 2) // 2 + 1, (p.shape[1] - 2) // 2 + 1
    p = p[:2 * oh, :2 * ow]
    return (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4


WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


def ms_ssim_np(x, y, data_range):
    g = gauss_win()
    val = 1.0
    for i, w in enumerate(WEIGHTS):
        s, cs = ssim_cs_np(x, y, data_range, g)
        if i < len(WEIGHTS) - 1:
            val *= max(cs, 0.0) ** w
            x, y = pool_np(x), pool_np(y)
        else:
            val *= max(s, 0.0) ** w
    return val


def ms_ssim_torch(x, y, data_range):
    """The same with torch ops (conv2d, avg_pool2d) as a cross-check of the
    numpy code's padding and pooling conventions."""
    win = torch.tensor(gauss_win(), dtype=torch.float64)
    wr = win.view(1, 1, 1, -1)
    wc = win.view(1, 1, -1, 1)
    X = torch.tensor(x).view(1, 1, *x.shape)
    Y = torch.tensor(y).view(1, 1, *y.shape)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def f(t):
        return F.conv2d(F.conv2d(t, wr), wc)

    val = torch.tensor(1.0, dtype=torch.float64)
    for i, w in enumerate(WEIGHTS):
        mx, my = f(X), f(Y)
        sx, sy, sxy = f(X * X) - mx ** 2, f(Y * Y) - my ** 2, f(X * Y) - mx * my
        csm = (2 * sxy + c2) / (sx + sy + c2)
        sm = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1) * csm
        if i < len(WEIGHTS) - 1:
            val = val * torch.relu(csm.mean()) ** w
            pad = (X.shape[2] % 2, X.shape[3] % 2)
            X, Y = F.avg_pool2d(X, 2, padding=pad), F.avg_pool2d(Y, 2, padding=pad)
        else:
            val = val * torch.relu(sm.mean()) ** w
    return float(val)


def smooth_image(rng, h, w):
    """A smooth random 8-bit-valued image in [0,1]: blurred noise plus a gradient."""
    n = rng.standard_normal((h + 8, w + 8))
    k = np.ones(9) / 9
    n = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, n)
    n = np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, n)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.5 + 0.6 * n + 0.2 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


def write_ssim(rng):
    out = {}
    # One pair with odd sizes (exercises the pooling padding), data_range 1 and 255.
    a = smooth_image(rng, 171, 190)
    b = np.clip(a + rng.normal(0, 0.08, a.shape), 0, 1).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out["pair_x"], out["pair_y"] = a, b
    out["ssim"] = ssim_cs_np(a64, b64, 1.0, gauss_win())[0]
    out["ssim_255"] = ssim_cs_np(a64 * 255, b64 * 255, 255.0, gauss_win())[0]
    ms = ms_ssim_np(a64, b64, 1.0)
    mt = ms_ssim_torch(a64, b64, 1.0)
    assert abs(ms - mt) < 1e-12, (ms, mt)
    out["ms_ssim"] = ms
    # Unrelated images: low similarity (cs may go negative at some scale).
    c = smooth_image(rng, 171, 190)
    out["pair_z"] = c
    out["ssim_xz"] = ssim_cs_np(a64, c.astype(np.float64), 1.0, gauss_win())[0]
    out["ms_ssim_xz"] = ms_ssim_np(a64, c.astype(np.float64), 1.0)
    assert abs(out["ms_ssim_xz"] - ms_ssim_torch(a64, c.astype(np.float64), 1.0)) < 1e-12
    # RoentGen's within-prompt protocol: 4 images, mean MS-SSIM over 6 pairs.
    base = smooth_image(rng, 168, 165).astype(np.float64)
    imgs = [np.clip(0.7 * base + 0.3 * smooth_image(rng, 168, 165), 0, 1).astype(np.float32) for _ in range(4)]
    vals = []
    for i in range(4):
        out["prompt_%d" % i] = imgs[i]
        for j in range(i + 1, 4):
            vals.append(ms_ssim_np(imgs[i].astype(np.float64), imgs[j].astype(np.float64), 1.0))
    out["prompt_pairs"] = np.array(vals)
    out["prompt_diversity"] = np.mean(vals)
    np.savez_compressed(os.path.join(OUT, "ssim.npz"), **{k: np.asarray(v) for k, v in out.items()})


def main():
    os.makedirs(OUT, exist_ok=True)
    print("numpy", np.__version__, "scipy", scipy.__version__, "torch", torch.__version__, file=sys.stderr)
    write_features(np.random.default_rng(1))
    write_frechet(np.random.default_rng(2))
    write_sqrtm(np.random.default_rng(3))
    write_cleanfid_stats(np.random.default_rng(4))
    write_kid(np.random.default_rng(5))
    write_ssim(np.random.default_rng(6))


if __name__ == "__main__":
    main()
