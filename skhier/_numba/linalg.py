"""numba building blocks of the collapsed engine's kernels: tiny dense linear
algebra (Cholesky pieces, triangular solves) and the group-covariance transform.

Shared by :mod:`skhier._engines.collapsed.kernels` (the density and the exact draws) and
:mod:`skhier._engines.collapsed.grad` (the per-group passes of the density); this module
imports neither.  numba compiles everything once per machine (``cache=True``).
"""

from __future__ import annotations

import numpy as np

from skhier._numba.jit import njit as _njit
from skhier._numba.jit import njit_inline as _njit_inline

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None


@_njit_inline
def group_chol(q, zz_g, sigma_inv, inv_s2, lg, rg):
    """One group's ``L_g = chol(Sigma^{-1} + Z'Z / s^2)`` into ``lg`` (``rg = 1 /
    diag L_g``); returns ``|L_g|``.  Inlined, so sizes that are compile-time
    constants in the caller unroll its loops."""
    det = 1.0
    for j in range(q):
        acc = zz_g[j, j] * inv_s2 + sigma_inv[j, j]
        for k in range(j):
            acc -= lg[j, k] * lg[j, k]
        d = np.sqrt(acc)
        rj = 1.0 / d
        lg[j, j] = d
        rg[j] = rj
        det *= d
        for i in range(j + 1, q):
            acc = zz_g[i, j] * inv_s2 + sigma_inv[i, j]
            for k in range(j):
                acc -= lg[i, k] * lg[j, k]
            lg[i, j] = acc * rj
    return det


@_njit_inline
def group_factor(q, pp1, zz_g, zw_g, sigma_inv, inv_s2, lg, rg, hg, g):
    """:func:`group_chol` plus ``H_g = L_g^{-1} Z'W / s^2`` into ``hg``; subtracts
    ``H_g'H_g`` from the upper triangle of ``g``.  Returns ``|L_g|``."""
    det = group_chol(q, zz_g, sigma_inv, inv_s2, lg, rg)
    for i in range(q):
        for a in range(pp1):
            acc = zw_g[i, a] * inv_s2
            for k in range(i):
                acc -= lg[i, k] * hg[k, a]
            hg[i, a] = acc * rg[i]
    for a in range(pp1):
        for b in range(a, pp1):
            acc = 0.0
            for i in range(q):
                acc += hg[i, a] * hg[i, b]
            g[a, b] -= acc
    return det


@_njit
def scaled(a, c):
    """``a * c`` for a 2-D array, as a loop: numba compiles an array expression with
    its broadcasting error paths (string formatting included), seconds per use."""
    out = np.empty(a.shape)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[i, j] = a[i, j] * c
    return out


@_njit
def shifted_column(v, e):
    """``(v + e)`` as a (n, 1) column (a loop, see :func:`scaled`)."""
    out = np.empty((v.shape[0], 1))
    for i in range(v.shape[0]):
        out[i, 0] = v[i] + e[i]
    return out


@_njit
def population_factor(g, prior_sd, lp, lp_rdiag):
    """Cholesky of ``P = g[:p, :p] + S0^{-1}`` into ``lp``; ``v = L_P^{-1} c``.

    Returns ``(ok, log|L_P|, v, quad)`` with ``quad = d - c'P^{-1}c`` (the
    quadratic form ``y' Sigma_y^{-1} y``).  ``ok`` is False when rounding made
    ``P`` numerically indefinite.
    """
    p = lp.shape[0]
    logdet = 0.0
    for j in range(p):
        acc = g[j, j] + 1.0 / prior_sd[j] ** 2
        for k in range(j):
            acc -= lp[j, k] * lp[j, k]
        if not acc > 0.0:
            return False, 0.0, np.zeros(p), 0.0
        d = np.sqrt(acc)
        lp[j, j] = d
        lp_rdiag[j] = 1.0 / d
        logdet += np.log(d)
        for i in range(j + 1, p):
            acc = g[j, i]
            for k in range(j):
                acc -= lp[i, k] * lp[j, k]
            lp[i, j] = acc * lp_rdiag[j]
    v = np.empty(p)
    quad = g[p, p]
    for i in range(p):
        acc = g[i, p]
        for k in range(i):
            acc -= lp[i, k] * v[k]
        v[i] = acc * lp_rdiag[i]
        quad -= v[i] * v[i]
    return True, logdet, v, quad


@_njit
def back_substitute(lower, rdiag, rhs, out):
    """Solve ``lower.T @ out = rhs`` (columns of ``rhs``); ``rdiag = 1 / diag(lower)``."""
    n = lower.shape[0]
    for c in range(rhs.shape[1]):
        for i in range(n - 1, -1, -1):
            acc = rhs[i, c]
            for k in range(i + 1, n):
                acc -= lower[k, i] * out[k, c]
            out[i, c] = acc * rdiag[i]


@_njit
def lower_inverse(lower, rdiag, inv):
    """Inverse of a lower-triangular matrix into ``inv`` (its upper part stays zero)."""
    n = lower.shape[0]
    for c in range(n):
        inv[c, c] = rdiag[c]
        for i in range(c + 1, n):
            acc = 0.0
            for k in range(c, i):
                acc -= lower[i, k] * inv[k, c]
            inv[i, c] = acc * rdiag[i]


@_njit
def n_corr_params(q, correlated):
    """Number of unconstrained correlation parameters (0 for independent effects)."""
    return q * (q - 1) // 2 if correlated else 0


@_njit
def cov_chol(theta, q, correlated, eta, out):
    """Lower Cholesky factor ``C`` of the group-effect covariance ``Sigma = C C'``.

    ``theta = (log tau_0..tau_{q-1}, y_1..y_m)``: the group SDs and, when
    ``correlated``, the ``m = q(q-1)/2`` unconstrained correlation parameters.
    ``C = diag(tau) L`` with ``L`` the Cholesky factor of the correlation matrix,
    built from canonical partial correlations ``tanh(y)`` row by row (the
    transform Stan uses).  Fills ``out`` (q, q) and returns the log density of
    ``y``: the LKJ(eta) prior on the correlation matrix plus the log-Jacobian of
    ``y -> L`` (0 for independent effects).  Written for float and complex
    ``theta`` alike, so derivatives can be taken by complex step (the collapsed
    density does; the tests check :func:`cov_chol_grad` against it).
    """
    zero = theta[0] * 0.0  # 0 of theta's type (float or complex)
    lp = zero
    for i in range(q):
        for j in range(q):
            out[i, j] = zero
    k = q
    for i in range(q):
        tau = np.exp(theta[i])
        if not correlated or i == 0:
            out[i, i] = tau
            continue
        sum_sqs = zero
        for j in range(i):
            z = np.tanh(theta[k])
            k += 1
            lp += np.log(1.0 - z * z)
            if j > 0:
                lp += 0.5 * np.log(1.0 - sum_sqs)
            lij = z * np.sqrt(1.0 - sum_sqs)
            out[i, j] = tau * lij
            sum_sqs += lij * lij
        lii = np.sqrt(1.0 - sum_sqs)
        out[i, i] = tau * lii
        lp += (q - i - 1 + 2.0 * eta - 2.0) * np.log(lii)
    return lp


@_njit
def cov_chol_grad(theta, q, correlated, eta, chol, g_c, out):
    """Adds to ``out[t]`` the derivative in ``theta[t]`` of ``lp(theta) + sum_{i >= j}
    g_c[i, j] C[i, j]``, with ``C`` (given: ``chol``) and ``lp`` those of
    :func:`cov_chol` (forward mode by hand, row by row: row ``i`` of ``C`` depends
    on ``log tau_i`` and on that row's correlation parameters only).  The GLM
    density's chain rule through ``C``: a complex step there re-evaluated the
    centered prior over every group once per parameter.

    With ``tau_i`` scaling the row, ``dC[i, j] / d log tau_i = C[i, j]``.  For the
    row's parameter ``y_m`` (``z = tanh(y)``, ``S_j = sum_{l < j} L[i, l]^2``,
    ``L[i, j] = z_j sqrt(1 - S_j)``): ``dL[i, m] = (1 - z_m^2) sqrt(1 - S_m)``, then
    for ``j > m``, ``dS_j = dS_{j-1} + 2 L[i, j-1] dL[i, j-1]`` and ``dL[i, j] =
    -z_j dS_j / (2 sqrt(1 - S_j))``, and ``dL[i, i] = -dS_i / (2 L[i, i])``; ``lp``
    gains ``-2 z_m`` from ``log(1 - z_m^2)``, ``-dS_j / (2 (1 - S_j))`` from each
    ``log(1 - S_j) / 2`` and ``c_i dL[i, i] / L[i, i]`` from ``c_i log L[i, i]``.
    """
    k = q
    for i in range(q):
        tau = np.exp(theta[i])
        acc = 0.0
        for j in range(i + 1):
            acc += g_c[i, j] * chol[i, j]
        out[i] += acc
        if not correlated or i == 0:
            continue
        c_i = q - i - 1 + 2.0 * eta - 2.0
        l_ii = chol[i, i] / tau
        for m in range(i):
            z_m = np.tanh(theta[k + m])
            s_j = 0.0  # S_m
            for c in range(m):
                s_j += (chol[i, c] / tau) ** 2
            d_l = (1.0 - z_m * z_m) * np.sqrt(1.0 - s_j)
            grad = g_c[i, m] * tau * d_l - 2.0 * z_m
            l_prev = chol[i, m] / tau
            d_s = 0.0
            for j in range(m + 1, i):
                d_s += 2.0 * l_prev * d_l
                s_j += l_prev * l_prev
                z_j = np.tanh(theta[k + j])
                d_l = -z_j * d_s / (2.0 * np.sqrt(1.0 - s_j))
                grad += g_c[i, j] * tau * d_l - 0.5 * d_s / (1.0 - s_j)
                l_prev = chol[i, j] / tau
            d_s += 2.0 * l_prev * d_l
            d_ii = -d_s / (2.0 * l_ii)
            grad += g_c[i, i] * tau * d_ii + c_i * d_ii / l_ii
            out[k + m] += grad
        k += i


@_njit
def _precision(chol_cov, sigma_inv):
    """``Sigma^{-1} = C^{-T} C^{-1}`` into ``sigma_inv``; returns ``log|Sigma|``."""
    q = chol_cov.shape[0]
    rdiag = np.empty(q)
    logdet = 0.0
    for i in range(q):
        rdiag[i] = 1.0 / chol_cov[i, i]
        logdet += 2.0 * np.log(chol_cov[i, i])
    inv = np.zeros((q, q))
    lower_inverse(chol_cov, rdiag, inv)
    for i in range(q):
        for j in range(q):
            acc = 0.0
            for k in range(max(i, j), q):
                acc += inv[k, i] * inv[k, j]
            sigma_inv[i, j] = acc
    return logdet


@_njit
def _mul(a, b):
    """``a @ b`` for tiny square matrices (no BLAS call inside the density)."""
    n = a.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for k in range(n):
            aik = a[i, k]
            for j in range(n):
                out[i, j] += aik * b[k, j]
    return out
