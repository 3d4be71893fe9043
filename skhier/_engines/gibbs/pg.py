"""numba kernels of Pólya-Gamma data augmentation (Polson, Scott & Windle 2013).

For a binary outcome with log-odds ``eta``, ``omega ~ PG(1, eta)`` makes the
likelihood conditionally Gaussian (``s`` successes out of ``b`` trials: ``omega ~
PG(b, eta)`` and ``kappa = s - b / 2``)::

    p(y | eta) = exp(kappa eta) / (1 + exp(eta)),  kappa = y - 1/2
               = E_omega[ exp(kappa eta - omega eta^2 / 2) ] / 2

so that given ``omega`` the pseudo-response ``kappa / omega`` is ``Normal(eta,
1 / omega)``: the Gibbs engine's exact Gaussian blocks apply unchanged to rows
scaled by ``sqrt(omega)`` (weighted least squares is least squares on scaled
rows).  :func:`pg_refresh` redraws every ``omega`` and rewrites the engine's
design, response and innermost-node statistics in place, once per sweep.

``PG(1, z)`` is drawn exactly by Devroye's alternating-series method for the
Jacobi distribution (Devroye 2009; the sampler of Polson, Scott & Windle's
appendix, also in their ``BayesLogit``).
"""

from __future__ import annotations

import math

import numpy as np

from skhier._engines.gibbs.base import _normal
from skhier._numba.linalg import _njit

#: the point where the two envelopes of the Jacobi density meet
_TRUNC = 0.64


@_njit
def _std_normal_cdf(x):
    return 0.5 * math.erfc(-x / np.sqrt(2.0))


@_njit
def _truncated_inverse_gaussian(rng, z):
    """A draw of InverseGaussian(mean 1/z, shape 1) truncated to (0, _TRUNC)."""
    mu = 1.0 / z if z > 0.0 else np.inf
    if mu > _TRUNC:
        while True:  # 1 / chi^2_1 truncated, accepted by the exponential tilt
            while True:
                e1 = rng.standard_exponential()
                e2 = rng.standard_exponential()
                if e1 * e1 <= 2.0 * e2 / _TRUNC:
                    break
            x = _TRUNC / ((1.0 + _TRUNC * e1) ** 2)
            if rng.random() <= np.exp(-0.5 * z * z * x):
                return x
    while True:  # the inverse-Gaussian draw of Michael, Schucany & Haas, until below
        y = _normal(rng)
        y = y * y
        x = mu + 0.5 * mu * mu * y - 0.5 * mu * np.sqrt(4.0 * mu * y + (mu * y) ** 2)
        if rng.random() > mu / (mu + x):
            x = mu * mu / x
        if x < _TRUNC:
            return x


@_njit
def _proposal_odds(z, k):
    """``q / p``: the mass of the envelope left of ``_TRUNC`` (the truncated inverse
    Gaussian's) over its mass right of it (the exponential's)."""
    root = np.sqrt(1.0 / _TRUNC)
    b = root * (_TRUNC * z - 1.0)
    a = -root * (_TRUNC * z + 1.0)
    if z < 20.0:  # nothing overflows: k * _TRUNC < 130, 2 z < 40
        tail = _std_normal_cdf(b) + np.exp(2.0 * z) * _std_normal_cdf(a)
        return 4.0 / np.pi * k * np.exp(k * _TRUNC - z) * tail
    x0 = np.log(k) + k * _TRUNC
    log_b = x0 - z + np.log(max(_std_normal_cdf(b), 1e-300))
    log_a = x0 + z + np.log(max(_std_normal_cdf(a), 1e-300))
    return 4.0 / np.pi * (np.exp(log_b) + np.exp(log_a))


@_njit
def pg1(rng, c):
    """One exact draw of PG(1, c)."""
    z = 0.5 * abs(c)
    k = 0.125 * np.pi * np.pi + 0.5 * z * z
    p_right = 1.0 / (1.0 + _proposal_odds(z, k))
    while True:
        if rng.random() < p_right:
            x = _TRUNC + rng.standard_exponential() / k
        else:
            x = _truncated_inverse_gaussian(rng, z)
        # The alternating series of the Jacobi J*(1) density: terms
        # a_n(x) = scale (n + 1/2) exp(r (n + 1/2)^2), with r = -pi^2 x / 2 right of
        # _TRUNC and -2 / x left of it.  With e0 = exp(r / 4): a_0 = scale e0 / 2
        # and a_1 = 3 scale e0^9 / 2 (one exp for both; later terms are rare).
        if x > _TRUNC:
            scale = np.pi
            r = -0.5 * np.pi * np.pi * x
        else:
            u = 2.0 / (np.pi * x)
            scale = np.pi * u * np.sqrt(u)
            r = -2.0 / x
        e0 = np.exp(0.25 * r)
        s = 0.5 * scale * e0
        if not s > 0.0:  # x so small that a_0 underflows (or is inf * 0): as the log form did,
            return 0.25 * x  # accept (happens for |c| in the thousands, or c = +-inf)
        y = rng.random() * s
        e2 = e0 * e0
        e4 = e2 * e2
        s -= 1.5 * scale * (e4 * e4 * e0)
        if y <= s:
            return 0.25 * x
        n = 1
        while True:
            n += 1
            h = n + 0.5
            term = scale * h * np.exp(r * h * h)
            if n % 2 == 1:
                s -= term
                if y <= s:
                    return 0.25 * x
            else:
                s += term
                if y > s:
                    break


@_njit
def pg_fill(rng, c, out, b):
    """``out[i] ~ PG(b[i], c[i])`` (whole numbers ``b[i] >= 1``)."""
    for i in range(c.shape[0]):
        out[i] = pg_draw(rng, b[i], c[i])


@_njit
def pg_draw(rng, b, c):
    """One exact draw of PG(b, c) for a whole number ``b >= 1``: the sum of ``b``
    independent PG(1, c) draws."""
    w = 0.0
    for _ in range(b):
        w += pg1(rng, c)
    return w


@_njit
def pg_refresh(rng, aug, beta, u, data, F, one_tree):
    """One Pólya-Gamma step: ``omega_i ~ PG(b_i, eta_i)`` at the current ``(beta, u)``,
    then the engine's working arrays rewritten for the Gaussian model given omega:
    rows scaled by ``sqrt(omega_i)``, response ``(kappa_i / omega_i - offset_i)``
    scaled the same way, and the innermost nodes' ``C'C`` (``M``; ``M3``, ``Cy``,
    ``yy`` for one-tree models) recomputed.  ``F0``, ``Z0``, ``C0`` are the
    unscaled arrays; ``offset`` is the fixed part of the log-odds; ``b`` the
    rows' trials (1 for a 0/1 row; its whole-number frequency weight times its
    trials in general) and ``kappa = successes - b / 2``."""
    kappa, b, offset, F0, Z0, C0 = aug
    (y, Z, codes, C, coff, M, moff, q, nlev, zoff, uoff, mdim, plev, loff, tree_f, toff,
     beta_prec) = data  # fmt: skip
    M3, Cy, yy, _ = one_tree
    n_rows, p = F0.shape
    n_fac = q.shape[0]
    n_trees = toff.shape[0] - 1
    for i in range(n_rows):
        lin = 0.0
        for a in range(p):
            lin += F0[i, a] * beta[a]
        for f in range(n_fac):
            base = uoff[f] + codes[i, f] * q[f]
            for k in range(q[f]):
                lin += Z0[i, zoff[f] + k] * u[base + k]
        w = pg_draw(rng, b[i], offset[i] + lin)
        sw = np.sqrt(w)
        y[i] = sw * (kappa[i] / w - offset[i])
        for a in range(F0.shape[1]):
            F[i, a] = sw * F0[i, a]
        for a in range(Z0.shape[1]):
            Z[i, a] = sw * Z0[i, a]
        for a in range(C0.shape[1]):
            C[i, a] = sw * C0[i, a]
    one_tree = n_trees == 1
    for t in range(n_trees):
        f_in = tree_f[toff[t + 1] - 1]
        m = mdim[f_in]
        for k in range(moff[f_in], moff[f_in + 1]):
            M[k] = 0.0
        if one_tree:
            for j in range(nlev[f_in]):
                yy[j] = 0.0
                for a in range(m):
                    Cy[j, a] = 0.0
        for i in range(n_rows):
            j = codes[i, f_in]
            base = moff[f_in] + j * m * m
            for a in range(m):
                ca = C[i, coff[t] + a]
                for b in range(a + 1):
                    M[base + a * m + b] += ca * C[i, coff[t] + b]
            if one_tree:
                yy[j] += y[i] * y[i]
                for a in range(m):
                    Cy[j, a] += C[i, coff[t] + a] * y[i]
        for j in range(nlev[f_in]):
            base = moff[f_in] + j * m * m
            for a in range(m):
                for b in range(a):
                    M[base + b * m + a] = M[base + a * m + b]
            if one_tree:
                for a in range(m):
                    for b in range(m):
                        M3[j, a, b] = M[base + a * m + b]
