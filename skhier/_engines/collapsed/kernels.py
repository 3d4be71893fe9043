"""numba kernels of the collapsed engine: the sampled density and exact draws.

The algebra is the one documented in :mod:`skhier._engines.collapsed.reference` (whose numpy
code is the tested reference).  Everything per group is tiny q x q work, so the
kernels are explicit loops over groups with no allocation inside them.  numba
compiles them once per machine (``cache=True``).  The linear-algebra building
blocks live in :mod:`skhier._numba.linalg`, the density's passes over the
groups (specialized for small q) in :mod:`skhier._engines.collapsed.grad`.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from skhier._engines.collapsed.grad import SHAPE_CLASSES, pass1_of, pass2_of, shape_class
from skhier._numba.jit import specialized
from skhier._numba.linalg import (
    _mul,
    _njit,
    _njit_inline,
    _precision,
    back_substitute,
    cov_chol,
    group_factor,
    lower_inverse,
    n_corr_params,
    population_factor,
    scaled,
    shifted_column,
)


@_njit
def factor_groups(zz, zw, ww, sigma_inv, inv_s2, chol, rdiag, h):
    """Per group: ``L_g = chol(Sigma^{-1} + Z'Z / s^2)`` and ``H_g = L_g^{-1} Z'W / s^2``.

    Fills ``chol`` (G, q, q; lower), ``rdiag`` (G, q; ``1 / diag L_g``) and ``h``
    (G, q, p + 1).  Returns ``g = W'V^{-1}W`` (upper triangle valid) and
    ``sum_g log|L_g|``.
    """
    n_groups, q, pp1 = zw.shape
    g = scaled(ww, inv_s2)
    logdet = 0.0
    for gi in range(n_groups):
        det = group_factor(q, pp1, zz[gi], zw[gi], sigma_inv, inv_s2, chol[gi], rdiag[gi], h[gi], g)
        logdet += np.log(det)
    return g, logdet


@_njit
def cov_chols(theta, q, correlated, eta):
    """:func:`cov_chol` for each row of ``theta`` (S, q + m): shape (S, q, q)."""
    out = np.empty((theta.shape[0], q, q))
    for d in range(theta.shape[0]):
        cov_chol(theta[d], q, correlated, eta, out[d])
    return out


@_njit_inline
def density(Q, PP1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta):
    """Log posterior of ``x = (log tau, y, log s)`` (up to a constant) and its gradient.

    ``y`` holds the correlation parameters of :func:`cov_chol` (none for
    independent effects).  Value: the collapsed marginal likelihood, the
    Exponential priors on the SDs with the log-Jacobian of ``x = log sd``, and the
    LKJ prior on the correlations with its transform's log-Jacobian.

    Gradient: Fisher's identity, ``d log p(y | x) = E[d log p(y, beta, u | x) | y]``,
    with the Gaussian posterior moments of ``(beta, u)`` given ``x``.  With
    ``S_u = sum_g E[u_g u_g' | y]`` the gradient in the group covariance is
    ``d/dSigma = (Sigma^{-1} S_u Sigma^{-1} - G Sigma^{-1}) / 2``, so in its Cholesky
    factor ``d/dC = (Sigma^{-1} S_u Sigma^{-1} - G Sigma^{-1}) C``, and the chain rule
    through ``C(log tau, y)`` uses that tiny map's Jacobian (complex step: exact
    to machine precision; cheap here, where it touches no group, whereas the GLM
    density uses the hand-written :func:`skhier._numba.linalg.cov_chol_grad`).
    For the noise,

        d/d log s = -N + E||y - F beta - Z u||^2 / s^2
                  = -N + quad - beta_hat' S0^{-1} beta_hat - tr(S0^{-1} P^{-1})
                    + p + G q - tr(Sigma^{-1} S_u)

    (using ``||y - A psi_hat||^2 / s^2 + psi_hat' Lambda psi_hat = quad`` and
    ``tr(A'A Q^{-1}) / s^2 = dim(psi) - tr(Lambda Q^{-1})`` for the joint posterior
    precision ``Q = A'A / s^2 + Lambda``).  Cost: two passes over the groups of
    O(q^3 + q^2 p + q p^2) each (:mod:`skhier._engines.collapsed.grad`), compiled for the
    shape class ``(Q, PP1)`` of :func:`skhier._engines.collapsed.grad.shape_class` (constants
    where this is inlined; ``Q < 0``: every class, chosen at run time).
    """
    n_groups, q, pp1 = zw.shape
    p = pp1 - 1
    n_cov = q + n_corr_params(q, correlated)
    chol_cov = np.zeros((q, q))
    value = cov_chol(x[:n_cov], q, correlated, eta, chol_cov)
    sigma_inv = np.empty((q, q))
    logdet_sigma = _precision(chol_cov, sigma_inv)
    log_s = x[n_cov]
    g, logdet_m, su, amat = pass1_of(Q, PP1, zz, zw, ww, sigma_inv, np.exp(-2.0 * log_s))
    lp = np.zeros((p, p))
    lp_rdiag = np.empty(p)
    ok, logdet_p, v, quad = population_factor(g, prior_sd, lp, lp_rdiag)
    grad = np.zeros(n_cov + 1)
    if not ok:
        return -np.inf, grad
    beta = np.empty((p, 1))
    back_substitute(lp, lp_rdiag, v.reshape((p, 1)), beta)
    lp_inv = np.zeros((p, p))
    lower_inverse(lp, lp_rdiag, lp_inv)
    logdet_v = 2.0 * n_obs * log_s + n_groups * logdet_sigma + 2.0 * logdet_m
    value += -0.5 * (logdet_v + quad + 2.0 * logdet_p)

    # S_u = sum_g (ubar ubar' + M^{-1} + K P^{-1} K'): su holds sum_g M^{-1} (lower)
    pass2_of(Q, PP1, amat, beta.reshape(p), lp_inv, su)
    for j in range(q):
        for k in range(j):
            su[k, j] = su[j, k]

    # d/dC = (Sigma^{-1} S_u Sigma^{-1} - G Sigma^{-1}) C, and tr(Sigma^{-1} S_u)
    inner = _mul(_mul(sigma_inv, su), sigma_inv)
    for j in range(q):
        for k in range(q):
            inner[j, k] -= n_groups * sigma_inv[j, k]
    grad_c = _mul(inner, chol_cov)
    trace = 0.0
    for j in range(q):
        for k in range(q):
            trace += sigma_inv[j, k] * su[k, j]
    step = 1e-20
    xc = x[:n_cov].astype(np.complex128)
    cc = np.zeros((q, q), dtype=np.complex128)
    for t in range(n_cov):
        xc[t] += 1j * step
        dlp = cov_chol(xc, q, correlated, eta, cc).imag / step
        xc[t] -= 1j * step
        acc = dlp
        for i in range(q):
            for j in range(i + 1):
                acc += grad_c[i, j] * cc[i, j].imag / step
        grad[t] = acc

    s_term = -n_obs + quad + p + n_groups * q - trace
    for a in range(p):
        acc = beta[a, 0] ** 2
        for b in range(a, p):
            acc += lp_inv[b, a] ** 2
        s_term -= acc / prior_sd[a] ** 2
    grad[n_cov] = s_term
    # Exponential priors on the SDs exp(x), with the log-Jacobian x
    for j in range(q + 1):
        xi = x[j] if j < q else log_s
        ti = j if j < q else n_cov
        value += xi - rate[j] * np.exp(xi)
        grad[ti] += 1.0 - rate[j] * np.exp(xi)
    return value, grad


@_njit
def log_density_and_grad(x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta):
    """:func:`density` with the shape class of the data chosen at run time: every
    class compiles with it.  :func:`density_for` gives one compiled for a single
    class (the same machine code as :func:`density_of` calls)."""
    return density(-1, -1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta)


def _make_density(Q, PP1):
    @_njit
    @specialized(Q, PP1)
    def log_density_and_grad(x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta):
        return density(Q, PP1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta)

    return log_density_and_grad


# one per shape class of _kernels_grad.shape_class (nothing compiles until called)
_DENSITIES = {cls: _make_density(*cls) for cls in SHAPE_CLASSES}
_D23, _D34, _D45, _D10, _D20, _D00 = (
    _DENSITIES[c] for c in ((2, 3), (3, 4), (4, 5), (1, 0), (2, 0), (0, 0))
)


def density_for(q, pp1):
    """:func:`log_density_and_grad` compiled for the shape class of ``(q, p + 1)`` only."""
    return _DENSITIES[shape_class(q, pp1)]


def _make_value(Q, PP1):
    """The value of :func:`density` alone, for the shape class ``(Q, PP1)``: one pass
    over the groups with nothing stored (importance weights need no gradient)."""

    @_njit
    @specialized(Q, PP1)
    def log_density(x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta):
        n_groups = zw.shape[0]
        q = Q if Q > 0 else zw.shape[1]
        pp1 = PP1 if PP1 > 0 else zw.shape[2]
        qn = np.int64(q)  # (not a literal: cov_chol is compiled once for every q)
        n_cov = q + n_corr_params(qn, correlated)
        chol_cov = np.zeros((q, q))
        value = cov_chol(x[:n_cov], qn, correlated, eta, chol_cov)
        sigma_inv = np.empty((q, q))
        logdet_sigma = _precision(chol_cov, sigma_inv)
        log_s = x[n_cov]
        inv_s2 = np.exp(-2.0 * log_s)
        g = scaled(ww, inv_s2)
        lg, rg, hg = np.zeros((q, q)), np.empty(q), np.empty((q, pp1))
        logdet_m = 0.0
        for gi in range(n_groups):
            logdet_m += np.log(
                group_factor(q, pp1, zz[gi], zw[gi], sigma_inv, inv_s2, lg, rg, hg, g)
            )
        p = pp1 - 1
        ok, logdet_p, _, quad = population_factor(g, prior_sd, np.zeros((p, p)), np.empty(p))
        if not ok:
            return -np.inf
        logdet_v = 2.0 * n_obs * log_s + n_groups * logdet_sigma + 2.0 * logdet_m
        value += -0.5 * (logdet_v + quad + 2.0 * logdet_p)
        for j in range(q + 1):  # Exponential priors on the SDs, log-Jacobian x
            xi = x[j] if j < q else log_s
            value += xi - rate[j] * np.exp(xi)
        return value

    return log_density


@cache
def _value_of_class(Q, PP1):
    return _make_value(Q, PP1)


def value_for(q, pp1):
    """:func:`density`'s value alone (no gradient), compiled for the shape class of
    ``(q, p + 1)`` only, on first use."""
    return _value_of_class(*shape_class(q, pp1))


@_njit_inline
def density_of(Q, PP1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta):
    """Calls :func:`density_for`'s function of the shape class ``(Q, PP1)`` (``Q < 0``:
    :func:`log_density_and_grad`).  Inlined: with ``Q`` and ``PP1`` constants in
    the caller (a C callback made per class), only that class compiles."""
    args = (x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta)
    if Q < 0:
        return log_density_and_grad(*args)
    if Q == 2 and PP1 == 3:
        return _D23(*args)
    if Q == 3 and PP1 == 4:
        return _D34(*args)
    if Q == 4 and PP1 == 5:
        return _D45(*args)
    if Q == 1:
        return _D10(*args)
    if Q == 2:
        return _D20(*args)
    return _D00(*args)


@_njit
def draw_one(zz, zw, ww, prior_sd, chol_cov, s, e_beta, e_u, beta_out, u_out):
    """One exact draw of ``beta`` (p,) and the group effects (G, q) given
    ``(Sigma, s)`` from standard normals ``e_beta`` (p,) and ``e_u`` (G, q);
    ``chol_cov`` (q, q) is the Cholesky factor of ``Sigma``.  Returns False (and
    writes nothing) when ``P`` is numerically indefinite."""
    n_groups, q, pp1 = zw.shape
    p = pp1 - 1
    chol = np.zeros((n_groups, q, q))
    rdiag = np.empty((n_groups, q))
    h = np.empty((n_groups, q, pp1))
    sigma_inv = np.empty((q, q))
    _precision(chol_cov, sigma_inv)
    g, _ = factor_groups(zz, zw, ww, sigma_inv, 1.0 / s**2, chol, rdiag, h)
    lp = np.zeros((p, p))
    lp_rdiag = np.empty(p)
    ok, _, v, _ = population_factor(g, prior_sd, lp, lp_rdiag)
    if not ok:
        return False
    beta = np.empty((p, 1))
    back_substitute(lp, lp_rdiag, shifted_column(v, e_beta), beta)
    for a in range(p):  # (loops: see _kernels_linalg.scaled)
        beta_out[a] = beta[a, 0]
    rhs = np.empty((q, 1))
    sol = np.empty((q, 1))
    for gi in range(n_groups):
        hg = h[gi]
        for i in range(q):
            acc = hg[i, p] + e_u[gi, i]
            for a in range(p):
                acc -= hg[i, a] * beta[a, 0]
            rhs[i, 0] = acc
        back_substitute(chol[gi], rdiag[gi], rhs, sol)
        for i in range(q):
            u_out[gi, i] = sol[i, 0]
    return True
