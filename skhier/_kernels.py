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
def factor_groups(zz, zw, ww, sigma_inv, inv_s2, chol, rdiag, h):
    """Per group: ``L_g = chol(Sigma^{-1} + Z'Z / s^2)`` and ``H_g = L_g^{-1} Z'W / s^2``.

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
            acc = zz[gi, j, j] * inv_s2 + sigma_inv[j, j]
            for k in range(j):
                acc -= lg[j, k] * lg[j, k]
            d = np.sqrt(acc)
            lg[j, j] = d
            rg[j] = 1.0 / d
            det *= d
            for i in range(j + 1, q):
                acc = zz[gi, i, j] * inv_s2 + sigma_inv[i, j]
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
    ``theta`` alike, so derivatives can be taken by complex step.
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


@_njit
def cov_chols(theta, q, correlated, eta):
    """:func:`cov_chol` for each row of ``theta`` (S, q + m): shape (S, q, q)."""
    out = np.empty((theta.shape[0], q, q))
    for d in range(theta.shape[0]):
        cov_chol(theta[d], q, correlated, eta, out[d])
    return out


@_njit
def log_density_and_grad(x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta):
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
    to machine precision).  For the noise,

        d/d log s = -N + E||y - F beta - Z u||^2 / s^2
                  = -N + quad - beta_hat' S0^{-1} beta_hat - tr(S0^{-1} P^{-1})
                    + p + G q - tr(Sigma^{-1} S_u)

    (using ``||y - A psi_hat||^2 / s^2 + psi_hat' Lambda psi_hat = quad`` and
    ``tr(A'A Q^{-1}) / s^2 = dim(psi) - tr(Lambda Q^{-1})`` for the joint posterior
    precision ``Q = A'A / s^2 + Lambda``).  Cost: two passes over the groups of
    O(q^3 + q^2 p + q p^2) each.
    """
    n_groups, q, pp1 = zw.shape
    p = pp1 - 1
    n_cov = q + n_corr_params(q, correlated)
    chol_cov = np.zeros((q, q))
    value = cov_chol(x[:n_cov], q, correlated, eta, chol_cov)
    sigma_inv = np.empty((q, q))
    logdet_sigma = _precision(chol_cov, sigma_inv)
    log_s = x[n_cov]
    chol = np.zeros((n_groups, q, q))
    rdiag = np.empty((n_groups, q))
    h = np.empty((n_groups, q, pp1))
    g, logdet_m = factor_groups(zz, zw, ww, sigma_inv, np.exp(-2.0 * log_s), chol, rdiag, h)
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

    # Second pass: S_u = sum_g (ubar ubar' + M^{-1} + K P^{-1} K')
    su = np.zeros((q, q))
    rhs = np.empty((q, pp1))  # columns: H_F (for K) and h_y - H_F beta (for ubar)
    sol = np.empty((q, pp1))
    lg_inv = np.zeros((q, q))
    w = np.empty((q, p))
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
            for m in range(p):  # w = K L_P^{-T}, so K P^{-1} K' = w w'
                acc = 0.0
                for a in range(m + 1):
                    acc += sol[j, a] * lp_inv[m, a]
                w[j, m] = acc
        for j in range(q):
            for k in range(j + 1):
                acc = sol[j, p] * sol[k, p]
                for m in range(j, q):  # (M^{-1})_jk, k <= j
                    acc += lg_inv[m, j] * lg_inv[m, k]
                for m in range(p):
                    acc += w[j, m] * w[k, m]
                su[j, k] += acc
    for j in range(q):
        for k in range(j):
            su[k, j] = su[j, k]

    # d/dC = (Sigma^{-1} S_u Sigma^{-1} - G Sigma^{-1}) C, and tr(Sigma^{-1} S_u)
    grad_c = _mul(_mul(_mul(sigma_inv, su), sigma_inv) - n_groups * sigma_inv, chol_cov)
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
        s_term -= (beta[a, 0] ** 2 + np.sum(lp_inv[a:, a] ** 2)) / prior_sd[a] ** 2
    grad[n_cov] = s_term
    # Exponential priors on the SDs exp(x), with the log-Jacobian x
    for j in range(q + 1):
        xi = x[j] if j < q else log_s
        ti = j if j < q else n_cov
        value += xi - rate[j] * np.exp(xi)
        grad[ti] += 1.0 - rate[j] * np.exp(xi)
    return value, grad


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
    back_substitute(lp, lp_rdiag, (v + e_beta).reshape((p, 1)), beta)
    beta_out[:] = beta[:, 0]
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
        u_out[gi] = sol[:, 0]
    return True


@_njit_parallel
def draw_conditional(zz, zw, ww, prior_sd, chol_cov, s, e_beta, e_u, beta_out, u_out):
    """Exact draws of ``beta`` and the group effects given ``(Sigma, s)``, in parallel
    over posterior draws, from standard normals ``e_beta`` (S, p) and ``e_u``
    (S, G, q); ``chol_cov`` (S, q, q) holds the Cholesky factors of ``Sigma``.
    Same arithmetic as :func:`skhier._collapsed.draw_conditional`.

    Returns a boolean mask of draws whose ``P`` was numerically indefinite (left
    for the caller to redo with the eigenvalue-floored reference).
    """
    n_draws = s.shape[0]
    failed = np.zeros(n_draws, dtype=np.bool_)
    for d in _prange(n_draws):
        ok = draw_one(
            zz, zw, ww, prior_sd, chol_cov[d], s[d], e_beta[d], e_u[d], beta_out[d], u_out[d]
        )
        failed[d] = not ok
    return failed
