"""numba kernels of the Gibbs engine's steps for a factor's full covariance.

The centred step (:func:`_cov_step`): Sigma given the effects, an inverse-Wishart
proposal corrected to the prior (SDs ~ Exponential, correlations ~ LKJ).  The
interweaving step (:func:`_factor_step`): the Cholesky factor L given the
standardized effects ``v = L^-1 u`` and the data, from rows or from the innermost
nodes' statistics (:func:`_factor_nodes`).
"""

from __future__ import annotations

import numpy as np

from skhier._engines.gibbs.base import (
    _backward,
    _chol,
    _crossprod,
    _forward,
    _gamma,
    _gram,
    _log_prior_sigma,
    _lower_inverse,
    _normal,
    _spd_inverse,
)
from skhier._numba.linalg import _njit, _njit_inline


@_njit
def _log_prior_over_ref(sig, q, rates, eta, psi, work):
    """log p(Sigma) - log IW(Sigma; psi I, q + 1) (the reference prior of the
    covariance proposal)."""
    out = _log_prior_sigma(sig, q, rates, eta, work)
    logdet = 0.0
    for k in range(q):
        logdet += 2.0 * np.log(work[k, k])
    # reference IW(psi I, q + 1): -(2q + 2) / 2 log|Sigma| - psi / 2 tr(Sigma^-1)
    trace_inv = 0.0
    for k in range(q):  # tr(Sigma^-1) = ||L^-1||_F^2
        e = np.zeros(q)
        e[k] = 1.0
        _forward(work, q, e)
        for i in range(q):
            trace_inv += e[i] * e[i]
    return out + (q + 1.0) * logdet + 0.5 * psi * trace_inv


@_njit
def _factor_step(rng, a_mat, b_vec, lcur, q, rates, eta):
    """The interweaving step of a full covariance: the Cholesky factor ``L`` of
    Sigma given the standardized effects ``v = L^-1 u`` and the data.  ``u = L v`` is
    linear in L's lower entries, so their likelihood is Gaussian (precision
    ``a_mat``, ``a_mat^-1 b_vec`` its mean); that is the independence proposal,
    accepted by the ratio of the prior of L (Sigma's, times the Jacobian
    ``prod_i L_ii^(q - i)`` of L -> Sigma).  Updates ``lcur``; returns True if moved."""
    n = q * (q + 1) // 2
    la = np.zeros((n, n))
    _chol(a_mat, n, la)
    theta = b_vec.copy()
    _forward(la, n, theta)
    for k in range(n):
        theta[k] += _normal(rng)
    _backward(la, n, theta)
    lnew = np.zeros((q, q))
    k = 0
    for i in range(q):
        for j in range(i + 1):
            lnew[i, j] = theta[k]
            k += 1
        if lnew[i, i] <= 0.0:
            return False
    work = np.zeros((q, q))
    log_ratio = 0.0
    for sign, lo in ((1.0, lnew), (-1.0, lcur)):
        sig = _gram(lo, q)
        val = _log_prior_sigma(sig, q, rates, eta, work)
        for i in range(q):
            val += (q - i) * np.log(lo[i, i])
        log_ratio += sign * val
    if np.log(1.0 - rng.random()) < log_ratio:
        for i in range(q):
            for j in range(q):
                lcur[i, j] = lnew[i, j]
        return True
    return False


@_njit
def _set_cov(lo, q, tau, corr, zoff, croff, f):
    """tau and R of factor f from the Cholesky factor of its covariance."""
    sig = _gram(lo, q)
    for a in range(q):
        tau[zoff[f] + a] = np.sqrt(sig[a, a])
    for a in range(q):
        for b in range(q):
            corr[croff[f] + a * q + b] = sig[a, b] / (tau[zoff[f] + a] * tau[zoff[f] + b])


@_njit
def _chol_of(tau, corr, q, zoff, croff, f):
    sig = np.zeros((q, q))
    for a in range(q):
        for b in range(q):
            sig[a, b] = tau[zoff[f] + a] * corr[croff[f] + a * q + b] * tau[zoff[f] + b]
    lo = np.zeros((q, q))
    _chol(sig, q, lo)
    return lo


@_njit_inline
def _factor_row(w, z, v, q):
    """Coefficients of L's lower entries in ``z . (L v)``: ``w[(a, b)] = z_a v_b``."""
    k = 0
    for a in range(q):
        for b in range(a + 1):
            w[k] = z[a] * v[b]
            k += 1


@_njit
def _moved(u, lo, v, q, n_lev, base):
    """Set ``u = L v`` for every level; return the change (n_lev, q)."""
    du = np.empty((n_lev, q))
    for j in range(n_lev):
        for a in range(q):
            acc = 0.0
            for b in range(a + 1):
                acc += lo[a, b] * v[j, b]
            du[j, a] = acc - u[base + j * q + a]
            u[base + j * q + a] = acc
    return du


@_njit
def _standardized(u, lo, q, n_lev, base):
    """``v = L^-1 u`` of every level: (n_lev, q)."""
    v = np.empty((n_lev, q))
    vec = np.empty(q)
    for j in range(n_lev):
        for a in range(q):
            vec[a] = u[base + j * q + a]
        _forward(lo, q, vec)
        for a in range(q):
            v[j, a] = vec[a]
    return v


@_njit
def _cov_step(rng, sig, q, scatter, n_levels, rates, eta, psi):
    """Independence M-H step for a full covariance: proposal IW(scatter + psi I,
    n_levels + q + 1) (the conditional under a reference prior), accepted by the
    ratio of the real prior to the reference one.  Updates ``sig`` in place."""
    work = np.zeros((q, q))
    s = scatter.copy()
    for k in range(q):
        s[k, k] += psi
    # Sigma' = (T T')^{-1} with T = chol(S^{-1}) A (Bartlett)
    ls = np.zeros((q, q))
    _chol(s, q, ls)
    linv = _lower_inverse(ls, q)  # B = L^-T satisfies B B' = S^-1
    dof = n_levels + q + 1.0
    a = np.zeros((q, q))
    for i in range(q):
        a[i, i] = np.sqrt(2.0 * _gamma(rng, 0.5 * (dof - i)))  # chi-square(dof - i)
        for j in range(i):
            a[i, j] = _normal(rng)
    # W = B A A' B' with B B' = S^{-1}; B = L^{-T} (upper): W^{-1} = L C^{-T} C^{-1} L'
    # where C = A (lower), B A = L^{-T} A.  Sigma' = W^{-1}.
    b = _crossprod(linv, a, q)  # T = L^-T A
    prop = _spd_inverse(_gram(b, q), q)
    log_ratio = _log_prior_over_ref(prop, q, rates, eta, psi, work) - _log_prior_over_ref(
        sig, q, rates, eta, psi, work
    )
    if np.log(1.0 - rng.random()) < log_ratio:
        for i in range(q):
            for j in range(q):
                sig[i, j] = prop[i, j]


@_njit
def _factor_nodes(rng, M3, g, anc, d, off, f, u, tau, corr, q, nlev, zoff, uoff, croff, rates,
                  eta, inv_s2):  # fmt: skip
    """:func:`_factor_step` for factor f (depth d, columns ``off:off + q``) from the
    innermost nodes' statistics; keeps ``g = C'(y - C x)`` current."""
    qf = q[f]
    lo = _chol_of(tau, corr, qf, zoff, croff, f)
    v = _standardized(u, lo, qf, nlev[f], uoff[f])
    n = qf * (qf + 1) // 2
    a_mat, b_vec = np.zeros((n, n)), np.zeros(n)
    m = g.shape[1]
    for j in range(g.shape[0]):
        lev = anc[j, d]
        k1 = 0
        for a in range(qf):
            part = g[j, off + a]
            for c in range(qf):
                part += M3[j, off + a, off + c] * u[uoff[f] + lev * qf + c]
            for b in range(a + 1):
                b_vec[k1] += v[lev, b] * part * inv_s2
                k2 = 0
                for c in range(qf):
                    for e in range(c + 1):
                        if k2 <= k1:
                            mac = M3[j, off + a, off + c]
                            a_mat[k1, k2] += v[lev, b] * v[lev, e] * mac * inv_s2
                        k2 += 1
                k1 += 1
    if not _factor_step(rng, a_mat, b_vec, lo, qf, rates[zoff[f] : zoff[f] + qf], eta):
        return
    du = _moved(u, lo, v, qf, nlev[f], uoff[f])
    for j in range(g.shape[0]):
        lev = anc[j, d]
        for a in range(m):
            acc = 0.0
            for c in range(qf):
                acc += M3[j, a, off + c] * du[lev, c]
            g[j, a] -= acc
    _set_cov(lo, qf, tau, corr, zoff, croff, f)
