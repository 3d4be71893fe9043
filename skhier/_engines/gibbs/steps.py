"""numba kernels of the Gibbs engine's variance steps (see :mod:`skhier._engines.gibbs.chain`).

The updates of the SDs and correlations: the centred steps (given the effects;
independence Metropolis-Hastings with the conditional's likelihood part as the
proposal) and the interweaving steps (each SD given the standardized effects and
the data, a truncated normal; a full covariance's Cholesky factor likewise), from
rows or from the innermost nodes' statistics.
"""

from __future__ import annotations

import numpy as np

from skhier._engines.gibbs.base import _positive_normal, _scale_step
from skhier._engines.gibbs.cov import (
    _chol_of,
    _cov_step,
    _factor_nodes,
    _factor_row,
    _factor_step,
    _moved,
    _set_cov,
    _standardized,
)
from skhier._numba.linalg import _njit, _njit_inline

#: Metropolis-Hastings tries per sweep for a factor's full covariance (each costs
#: O(q^3), nothing per level or row)
_COV_TRIES = 4


@_njit
def _centred_steps(rng, u, tau, corr, q, nlev, zoff, uoff, croff, rates, correlated, eta, psi):
    """Each factor's SDs (and correlations) given its effects."""
    for f in range(q.shape[0]):
        qf, n_lev = q[f], nlev[f]
        if correlated[f] and qf > 1:
            scatter = np.zeros((qf, qf))
            for j in range(n_lev):
                for a in range(qf):
                    for b in range(qf):
                        scatter[a, b] += u[uoff[f] + j * qf + a] * u[uoff[f] + j * qf + b]
            sig = np.zeros((qf, qf))
            for a in range(qf):
                for b in range(qf):
                    sig[a, b] = tau[zoff[f] + a] * corr[croff[f] + a * qf + b] * tau[zoff[f] + b]
            for _ in range(_COV_TRIES):  # independence proposals: cheap, so try several
                _cov_step(rng, sig, qf, scatter, n_lev, rates[zoff[f] : zoff[f] + qf], eta, psi)
            for a in range(qf):
                tau[zoff[f] + a] = np.sqrt(sig[a, a])
            for a in range(qf):
                for b in range(qf):
                    corr[croff[f] + a * qf + b] = sig[a, b] / (tau[zoff[f] + a] * tau[zoff[f] + b])
        else:
            for k in range(qf):
                ss = 0.0
                for j in range(n_lev):
                    ss += u[uoff[f] + j * qf + k] ** 2
                tau[zoff[f] + k] = _scale_step(rng, tau[zoff[f] + k], n_lev, ss, rates[zoff[f] + k])


@_njit
def _rescale(u, tau, q, nlev, uoff, f, k, col, new):
    """Set ``tau[col] = new`` keeping ``v = u / tau`` (the interweaving move)."""
    ratio = new / tau[col]
    for j in range(nlev[f]):
        u[uoff[f] + j * q[f] + k] *= ratio
    tau[col] = new


@_njit
def _interweave_rows(
    rng, res, Z, codes, u, tau, corr, q, nlev, zoff, uoff, croff, rates, correlated, eta, inv_s2
):
    """Each SD given ``v = u / tau`` and the data: a truncated normal; a full
    covariance's Cholesky factor given ``v = L^-1 u`` (:func:`_factor_step`)."""
    n_rows = res.shape[0]
    for f in range(q.shape[0]):
        qf = q[f]
        if correlated[f] and qf > 1:
            lo = _chol_of(tau, corr, qf, zoff, croff, f)
            v = _standardized(u, lo, qf, nlev[f], uoff[f])
            n = qf * (qf + 1) // 2
            a_mat, b_vec, w = np.zeros((n, n)), np.zeros(n), np.empty(n)
            for i in range(n_rows):
                lev = codes[i, f]
                part = res[i]
                for c in range(qf):
                    part += Z[i, zoff[f] + c] * u[uoff[f] + lev * qf + c]
                _factor_row(w, Z[i, zoff[f] : zoff[f] + qf], v[lev], qf)
                for k1 in range(n):
                    b_vec[k1] += w[k1] * part * inv_s2
                    for k2 in range(k1 + 1):
                        a_mat[k1, k2] += w[k1] * w[k2] * inv_s2
            if _factor_step(rng, a_mat, b_vec, lo, qf, rates[zoff[f] : zoff[f] + qf], eta):
                du = _moved(u, lo, v, qf, nlev[f], uoff[f])
                for i in range(n_rows):
                    for c in range(qf):
                        res[i] -= Z[i, zoff[f] + c] * du[codes[i, f], c]
                _set_cov(lo, qf, tau, corr, zoff, croff, f)
            continue
        for k in range(qf):
            tk = tau[zoff[f] + k]
            col = zoff[f] + k
            a_sum = 0.0
            b_sum = 0.0
            for i in range(n_rows):
                w = Z[i, col] * u[uoff[f] + codes[i, f] * qf + k] / tk
                a_sum += w * w
                b_sum += w * (res[i] + tk * w)
            a_sum *= inv_s2
            b_sum *= inv_s2
            if a_sum <= 0.0:
                continue
            new = _positive_normal(rng, (b_sum - rates[col]) / a_sum, 1.0 / np.sqrt(a_sum))
            for i in range(n_rows):
                w = Z[i, col] * u[uoff[f] + codes[i, f] * qf + k] / tk
                res[i] -= (new - tk) * w
            _rescale(u, tau, q, nlev, uoff, f, k, col, new)


@_njit_inline
def _node_state(x, beta, u, anc, j, chain, q, uoff):
    """``x = (beta, u of each factor of the chain at node j's ancestors)`` (inlined:
    it runs once per node)."""
    p = beta.shape[0]
    for a in range(p):
        x[a] = beta[a]
    off = p
    for d in range(chain.shape[0]):
        f = chain[d]
        lev = anc[j, d]
        for k in range(q[f]):
            x[off + k] = u[uoff[f] + lev * q[f] + k]
        off += q[f]


@_njit
def _interweave_nodes(
    rng, M3, Cy, yy, anc, chain, beta, u, tau, corr, q, nlev, zoff, uoff, croff, rates,
    correlated, eta, inv_s2, ncp=True,
):  # fmt: skip
    """The interweaving steps of a one-tree model from the innermost nodes'
    statistics (``C'C``, ``C'y``, ``y'y``); returns the residual sum of squares."""
    n_nodes, m = Cy.shape
    g = np.empty((n_nodes, m))  # C_j'(y - C_j x_j)
    x = np.empty(m)
    for j in range(n_nodes):
        _node_state(x, beta, u, anc, j, chain, q, uoff)
        for a in range(m):
            acc = Cy[j, a]
            for b in range(m):
                acc -= M3[j, a, b] * x[b]
            g[j, a] = acc
    p = beta.shape[0]
    off = p
    for d in range(chain.shape[0] if ncp else 0):
        f = chain[d]
        qf = q[f]
        if correlated[f] and qf > 1:
            _factor_nodes(rng, M3, g, anc, d, off, f, u, tau, corr, q, nlev, zoff, uoff,
                          croff, rates, eta, inv_s2)  # fmt: skip
            off += qf
            continue
        for k in range(qf):
            col, cpos = zoff[f] + k, off + k
            tk = tau[col]
            a_sum = 0.0
            b_sum = 0.0
            for j in range(n_nodes):
                v = u[uoff[f] + anc[j, d] * qf + k] / tk
                mm = M3[j, cpos, cpos]
                a_sum += v * v * mm
                b_sum += v * (g[j, cpos] + tk * v * mm)
            a_sum *= inv_s2
            b_sum *= inv_s2
            if a_sum <= 0.0:
                continue
            new = _positive_normal(rng, (b_sum - rates[col]) / a_sum, 1.0 / np.sqrt(a_sum))
            for j in range(n_nodes):
                dv = (new - tk) * u[uoff[f] + anc[j, d] * qf + k] / tk
                for a in range(m):
                    g[j, a] -= M3[j, a, cpos] * dv
            _rescale(u, tau, q, nlev, uoff, f, k, col, new)
        off += qf
    rss = 0.0
    for j in range(n_nodes):
        _node_state(x, beta, u, anc, j, chain, q, uoff)
        acc = yy[j]
        for a in range(m):
            acc -= x[a] * (Cy[j, a] + g[j, a])
        rss += acc
    return max(rss, 0.0)
