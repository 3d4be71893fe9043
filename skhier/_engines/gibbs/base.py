"""numba building blocks of the Gibbs engine (:mod:`skhier._engines.gibbs.chain`): tiny
dense linear algebra, draws from the chain's ``numpy.random.Generator``, the
independence Metropolis-Hastings step of one SD, and the prior of a covariance.
"""

from __future__ import annotations

import numpy as np

from skhier._numba.linalg import _njit


@_njit
def _copy(src, dst):
    """``dst[:] = src`` for 1-D arrays (a loop: slice assignment compiles numba's
    shape-checking error paths, seconds of compile time)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@_njit
def _fill(a, start, stop):
    """``a[start:stop] = 0``."""
    for i in range(start, stop):
        a[i] = 0.0


@_njit
def _chol(a, n, out):
    """Lower Cholesky factor of the leading n x n block of ``a`` into ``out``."""
    for j in range(n):
        acc = a[j, j]
        for k in range(j):
            acc -= out[j, k] * out[j, k]
        d = np.sqrt(max(acc, 1e-300))
        out[j, j] = d
        for i in range(j + 1, n):
            acc = a[i, j]
            for k in range(j):
                acc -= out[i, k] * out[j, k]
            out[i, j] = acc / d
        for i in range(j):
            out[i, j] = 0.0


@_njit
def _forward(lo, n, b):
    """``b <- L^{-1} b`` in place."""
    for i in range(n):
        acc = b[i]
        for k in range(i):
            acc -= lo[i, k] * b[k]
        b[i] = acc / lo[i, i]


@_njit
def _backward(lo, n, b):
    """``b <- L^{-T} b`` in place."""
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for k in range(i + 1, n):
            acc -= lo[k, i] * b[k]
        b[i] = acc / lo[i, i]


@_njit
def _normal(rng):
    return rng.standard_normal()


@_njit
def _gamma(rng, shape):
    """A Gamma(shape, 1) draw (Marsaglia & Tsang 2000), from the generator's normal
    and uniform draws only (numba's own gamma costs seconds to compile)."""
    boost = 1.0
    if shape < 1.0:  # Gamma(a) = Gamma(a + 1) U^(1/a)
        boost = (1.0 - rng.random()) ** (1.0 / shape)
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    while True:
        x = _normal(rng)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = 1.0 - rng.random()
        if u < 1.0 - 0.0331 * x**4 or np.log(u) < 0.5 * x * x + d * (1.0 - v + np.log(v)):
            return d * v * boost


@_njit
def _positive_normal(rng, mean, sd):
    """A draw of Normal(mean, sd) truncated to (0, inf), exactly (Robert 1995)."""
    alpha = -mean / sd
    if alpha < 0.5:
        while True:
            z = _normal(rng)
            if z > alpha:
                return mean + sd * z
    lam = 0.5 * (alpha + np.sqrt(alpha * alpha + 4.0))
    while True:
        z = alpha - np.log(1.0 - rng.random()) / lam
        if rng.random() <= np.exp(-0.5 * (z - lam) ** 2):
            return mean + sd * z


@_njit
def _scale_step(rng, current, n, ss, rate):
    """One independence M-H step for an SD with conditional
    ``sd^-n exp(-ss / (2 sd^2)) exp(-rate sd)``: proposal from the first two factors
    (precision ~ Gamma((n - 1) / 2, rate ss / 2)), accepted by the prior ratio."""
    if n < 2 or ss <= 0.0:
        return current
    prec = _gamma(rng, 0.5 * (n - 1)) * 2.0 / ss
    prop = 1.0 / np.sqrt(prec)
    if np.log(1.0 - rng.random()) < -rate * (prop - current):
        return prop
    return current


@_njit
def _log_prior_sigma(sig, q, rates, eta, work):
    """log p(Sigma) for SDs ~ Exponential(rates) and correlations ~ LKJ(eta), with
    the Jacobian of (tau, R) -> Sigma; also leaves chol(Sigma) in ``work``."""
    _chol(sig, q, work)
    logdet = 0.0
    for k in range(q):
        logdet += 2.0 * np.log(work[k, k])
    out = 0.0
    sum_log_tau = 0.0
    for k in range(q):
        tau = np.sqrt(sig[k, k])
        out -= rates[k] * tau
        sum_log_tau += np.log(tau)
    return out + (eta - 1.0) * (logdet - 2.0 * sum_log_tau) - q * sum_log_tau


@_njit
def _gram(a, q):
    """``a a'`` of a (q, q) matrix (loops: no BLAS to compile)."""
    return _crossprod(a.T.copy(), a.T.copy(), q)


@_njit
def _crossprod(a, b, q):
    """``a' b`` of two (q, q) matrices."""
    out = np.zeros((q, q))
    for i in range(q):
        for j in range(q):
            acc = 0.0
            for k in range(q):
                acc += a[k, i] * b[k, j]
            out[i, j] = acc
    return out


@_njit
def _lower_inverse(lo, q):
    """``L^-1`` of a lower-triangular (q, q) matrix."""
    out = np.zeros((q, q))
    for k in range(q):
        e = np.zeros(q)
        e[k] = 1.0
        _forward(lo, q, e)
        for i in range(q):
            out[i, k] = e[i]
    return out


@_njit
def _spd_inverse(a, q):
    """Inverse of a symmetric positive-definite (q, q) matrix: ``L^-T L^-1``."""
    lo = np.zeros((q, q))
    _chol(a, q, lo)
    linv = _lower_inverse(lo, q)
    return _crossprod(linv, linv, q)


# ---- the innermost nodes' sufficient statistics (computed once per fit)
@_njit
def node_cy(C, y, node, n_nodes):
    """``C_j'y`` and ``y_j'y_j`` of the rows of each innermost node."""
    n_rows, m = C.shape
    cy = np.zeros((n_nodes, m))
    yy = np.zeros(n_nodes)
    for i in range(n_rows):
        j = node[i]
        yy[j] += y[i] * y[i]
        for a in range(m):
            cy[j, a] += C[i, a] * y[i]
    return cy, yy


@_njit
def node_stats(C, node, n_nodes):
    """``C_j'C_j`` of the rows of each innermost node: (n_nodes, m, m)."""
    n_rows, m = C.shape
    out = np.zeros((n_nodes, m, m))
    for i in range(n_rows):
        j = node[i]
        for a in range(m):
            ca = C[i, a]
            for b in range(a + 1):
                out[j, a, b] += ca * C[i, b]
    for j in range(n_nodes):
        for a in range(m):
            for b in range(a):
                out[j, b, a] = out[j, a, b]
    return out
