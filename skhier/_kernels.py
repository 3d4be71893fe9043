"""numba kernels of the collapsed engine: the sampled density and exact draws.

The algebra is the one documented in :mod:`skhier._collapsed` (whose numpy
code is the tested reference).  Everything per group is tiny q x q work, so the
kernels are explicit loops over groups with no allocation inside them.  numba
compiles them once per machine (``cache=True``).
"""

from __future__ import annotations

import numpy as np

try:
    import numba

    _FLAGS = {
        "cache": True,
        "nogil": True,
        "error_model": "numpy",
        "fastmath": {"contract", "reassoc", "arcp"},
    }
    _njit = numba.njit(**_FLAGS)
    _njit_parallel = numba.njit(parallel=True, **_FLAGS)
    _prange = numba.prange
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None
    _prange = range

    def _njit(f):
        return f

    _njit_parallel = _njit


@_njit
def factor_groups(zz, zw, ww, inv_tau2, inv_s2, chol, rdiag, h):
    """Per group: ``L_g = chol(D^{-1} + Z'Z / s^2)`` and ``H_g = L_g^{-1} Z'W / s^2``.

    Fills ``chol`` (G, q, q; lower), ``rdiag`` (G, q; ``1 / diag L_g``) and ``h``
    (G, q, p + 1).  Returns ``g = W'V^{-1}W`` (upper triangle valid) and
    ``sum_g log|L_g|``.
    """
    n_groups, q, pp1 = zw.shape
    g = ww * inv_s2
    logdet = 0.0
    for gi in range(n_groups):
        lg = chol[gi]
        rg = rdiag[gi]
        hg = h[gi]
        det = 1.0
        for j in range(q):
            acc = zz[gi, j, j] * inv_s2 + inv_tau2[j]
            for k in range(j):
                acc -= lg[j, k] * lg[j, k]
            d = np.sqrt(acc)
            lg[j, j] = d
            rg[j] = 1.0 / d
            det *= d
            for i in range(j + 1, q):
                acc = zz[gi, i, j] * inv_s2
                for k in range(j):
                    acc -= lg[i, k] * lg[j, k]
                lg[i, j] = acc * rg[j]
        logdet += np.log(det)
        for i in range(q):
            for a in range(pp1):
                acc = zw[gi, i, a] * inv_s2
                for k in range(i):
                    acc -= lg[i, k] * hg[k, a]
                hg[i, a] = acc * rg[i]
        for a in range(pp1):
            for b in range(a, pp1):
                acc = 0.0
                for i in range(q):
                    acc += hg[i, a] * hg[i, b]
                g[a, b] -= acc
    return g, logdet


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
def log_density_and_grad(x, n_obs, zz, zw, ww, prior_sd, rate):
    """Log posterior of ``x = (log tau, log s)`` (up to a constant) and its gradient.

    Value: the collapsed marginal likelihood plus the Exponential priors and the
    log-Jacobian of ``x = log sd``.

    Gradient: Fisher's identity, ``d log p(y | x) = E[d log p(y, beta, u | x) | y]``,
    with the Gaussian posterior moments of ``(beta, u)`` given ``x``:

        d/d log tau_j = -G + T_j,          T_j = sum_g E[u_gj^2] / tau_j^2
        d/d log s     = -N + E||y - F beta - Z u||^2 / s^2
                      = -N + quad - beta_hat' S0^{-1} beta_hat - tr(S0^{-1} P^{-1})
                        + p + G q - sum_j T_j

    (the last line uses ``||y - A psi_hat||^2 / s^2 + psi_hat' Lambda psi_hat = quad``
    and ``tr(A'A Q^{-1}) / s^2 = dim(psi) - tr(Lambda Q^{-1})`` for the joint
    posterior precision ``Q = A'A / s^2 + Lambda``).  Cost: two passes over the
    groups of O(q^3 + q^2 p + q p^2) each.
    """
    n_groups, q, pp1 = zw.shape
    p = pp1 - 1
    tau2 = np.exp(2.0 * x[:q])
    chol = np.zeros((n_groups, q, q))
    rdiag = np.empty((n_groups, q))
    h = np.empty((n_groups, q, pp1))
    g, logdet_m = factor_groups(zz, zw, ww, 1.0 / tau2, np.exp(-2.0 * x[q]), chol, rdiag, h)
    lp = np.zeros((p, p))
    lp_rdiag = np.empty(p)
    ok, logdet_p, v, quad = population_factor(g, prior_sd, lp, lp_rdiag)
    grad = np.zeros(q + 1)
    if not ok:
        return -np.inf, grad
    beta = np.empty((p, 1))
    back_substitute(lp, lp_rdiag, v.reshape((p, 1)), beta)
    lp_inv = np.zeros((p, p))
    lower_inverse(lp, lp_rdiag, lp_inv)
    logdet_v = 2.0 * n_obs * x[q] + 2.0 * n_groups * np.sum(x[:q]) + 2.0 * logdet_m
    value = -0.5 * (logdet_v + quad + 2.0 * logdet_p)

    # Second pass: T_j = sum_g (ubar_gj^2 + Var u_gj) / tau_j^2
    t = np.zeros(q)
    rhs = np.empty((q, pp1))  # columns: H_F (for K) and h_y - H_F beta (for ubar)
    sol = np.empty((q, pp1))
    lg_inv = np.zeros((q, q))
    for gi in range(n_groups):
        hg = h[gi]
        for i in range(q):
            acc = hg[i, p]
            for a in range(p):
                rhs[i, a] = hg[i, a]
                acc -= hg[i, a] * beta[a, 0]
            rhs[i, p] = acc
        back_substitute(chol[gi], rdiag[gi], rhs, sol)  # sol = [K, ubar] = L^{-T} rhs
        lower_inverse(chol[gi], rdiag[gi], lg_inv)
        for j in range(q):
            var_m = 0.0  # (M^{-1})_jj
            for k in range(j, q):
                var_m += lg_inv[k, j] * lg_inv[k, j]
            var_k = 0.0  # (K P^{-1} K')_jj = ||row_j(K) L_P^{-T}||^2
            for m in range(p):
                acc = 0.0
                for a in range(m + 1):
                    acc += sol[j, a] * lp_inv[m, a]
                var_k += acc * acc
            t[j] += (sol[j, p] * sol[j, p] + var_m + var_k) / tau2[j]

    for j in range(q):
        grad[j] = -n_groups + t[j]
    s_term = -n_obs + quad + p + n_groups * q - np.sum(t)
    for a in range(p):
        s_term -= (beta[a, 0] ** 2 + np.sum(lp_inv[a:, a] ** 2)) / prior_sd[a] ** 2
    grad[q] = s_term
    # Exponential priors on exp(x), with the log-Jacobian x
    for j in range(q + 1):
        value += x[j] - rate[j] * np.exp(x[j])
        grad[j] += 1.0 - rate[j] * np.exp(x[j])
    return value, grad


@_njit_parallel
def draw_conditional(zz, zw, ww, prior_sd, tau, s, e_beta, e_u, beta_out, u_out):
    """Exact draws of ``beta`` and the group effects given ``(tau, s)``, in parallel
    over posterior draws, from standard normals ``e_beta`` (S, p) and ``e_u``
    (S, G, q).  Same arithmetic as :func:`skhier._collapsed.draw_conditional`.

    Returns a boolean mask of draws whose ``P`` was numerically indefinite (left
    for the caller to redo with the eigenvalue-floored reference).
    """
    n_draws = s.shape[0]
    n_groups, q, pp1 = zw.shape
    p = pp1 - 1
    failed = np.zeros(n_draws, dtype=np.bool_)
    for d in _prange(n_draws):
        chol = np.zeros((n_groups, q, q))
        rdiag = np.empty((n_groups, q))
        h = np.empty((n_groups, q, pp1))
        g, _ = factor_groups(zz, zw, ww, 1.0 / tau[d] ** 2, 1.0 / s[d] ** 2, chol, rdiag, h)
        lp = np.zeros((p, p))
        lp_rdiag = np.empty(p)
        ok, _, v, _ = population_factor(g, prior_sd, lp, lp_rdiag)
        if not ok:
            failed[d] = True
            continue
        beta = np.empty((p, 1))
        back_substitute(lp, lp_rdiag, (v + e_beta[d]).reshape((p, 1)), beta)
        beta_out[d] = beta[:, 0]
        rhs = np.empty((q, 1))
        sol = np.empty((q, 1))
        for gi in range(n_groups):
            hg = h[gi]
            for i in range(q):
                acc = hg[i, p] + e_u[d, gi, i]
                for a in range(p):
                    acc -= hg[i, a] * beta[a, 0]
                rhs[i, 0] = acc
            back_substitute(chol[gi], rdiag[gi], rhs, sol)
            u_out[d, gi] = sol[:, 0]
    return failed
