#!/usr/bin/python3
"""Fits the polynomial coefficients of kernels/cpu/mathfast.go (float32 exp, erfc,
erf, tanh) by weighted least squares on Chebyshev nodes, then a few Lawson
(iteratively reweighted) steps towards minimax, and prints them with the max
error of the fit in float64. Run: /usr/bin/python3 scripts/fit_mathfast.py"""
import math
import numpy as np
import mpmath as mp

mp.mp.dps = 40


def cheb(a, b, n=4000):
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos(np.pi * (k + 0.5) / n)


def lawson(A, y, w, iters=60):
    """Minimise max |w*(A c - y)| approximately (Lawson's algorithm)."""
    lw = np.ones(len(y)) / len(y)
    best = None
    for _ in range(iters):
        sw = np.sqrt(lw) * w
        c, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
        e = np.abs(w * (A @ c - y))
        if best is None or e.max() < best[1]:
            best = (c, e.max())
        lw = lw * e
        lw /= lw.sum()
    return best


def show(name, c, err):
    print(f"// {name}: max fit error {err:.3g}")
    for i, v in enumerate(c):
        print(f"  c{i} = {float(np.float32(v))!r}  (f64 {v!r})")


# exp(r) = 1 + r + r^2 * q(r), q of degree 4, |r| <= ln2/2 (+ slack).
h = math.log(2) / 2 * 1.0005
r = cheb(-h, h)
q = np.array([float((mp.exp(mp.mpf(x)) - 1 - x) / (mp.mpf(x) ** 2)) for x in r])
A = np.vstack([r ** i for i in range(5)]).T
w = r * r / np.exp(r)  # relative error of exp
c, e = lawson(A, q, w)
show("exp q(r)", c, e)

# erfc(z) = t * exp(-z^2 + R(t)), t = 1/(1 + z/2), z in [0, 10.5].
for deg in (9, 10, 11):
    t = cheb(1 / (1 + 10.5 / 2), 1.0)
    z = 2 * (1 / t - 1)
    R = np.array([float(mp.log(mp.erfc(mp.mpf(zz)) / mp.mpf(tt)) + mp.mpf(zz) ** 2) for zz, tt in zip(z, t)])
    A = np.vstack([t ** i for i in range(deg + 1)]).T
    c, e = lawson(A, R, np.ones_like(t))
    show(f"erfc R(t) degree {deg}", c, e)

# erf(z) = z * P(z^2), |z| <= 0.75
for deg in (5, 6):
    zz = cheb(1e-4, 0.75)
    y = np.array([float(mp.erf(mp.mpf(v)) / v) for v in zz])
    A = np.vstack([(zz * zz) ** i for i in range(deg + 1)]).T
    c, e = lawson(A, y, 1 / y)
    show(f"erf P(z^2) degree {deg}", c, e)

# tanh(x) = x * P(x^2), |x| <= 0.625
for deg in (5, 6, 7):
    xx = cheb(1e-4, 0.625)
    y = np.array([float(mp.tanh(mp.mpf(v)) / v) for v in xx])
    A = np.vstack([(xx * xx) ** i for i in range(deg + 1)]).T
    c, e = lawson(A, y, 1 / y)
    show(f"tanh P(x^2) degree {deg}", c, e)
