"""numba kernels of the Gibbs engine's variance steps (see :mod:`skhier._kernels_gibbs`).

Tiny dense linear algebra, random draws from the chain's ``numpy.random.Generator``,
and the updates of
the SDs, correlations and noise SD: the centred steps (independence
Metropolis-Hastings with the conditional's likelihood part as the proposal) and
the interweaving steps (each SD given the standardized effects and the data: a
truncated normal), from rows or from the innermost nodes' statistics.
"""

from __future__ import annotations

import numpy as np

from ._kernels_linalg import _njit, _njit_inline

#: Metropolis-Hastings tries per sweep for a factor's full covariance (each costs
#: O(q^3), nothing per level or row)
_COV_TRIES = 4


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


@_njit_inline
def _normal(rng):
    return rng.standard_normal()


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
    prec = rng.gamma(0.5 * (n - 1), 2.0 / ss)
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
        sig = lo @ lo.T
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
    sig = lo @ lo.T
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
    linv = np.zeros((q, q))  # chol(S^{-1}) = L^{-T} up to orthogonal rotation: use L^{-T}
    for k in range(q):
        e = np.zeros(q)
        e[k] = 1.0
        _forward(ls, q, e)
        for i in range(q):
            linv[i, k] = e[i]  # L^{-1}
    dof = n_levels + q + 1.0
    a = np.zeros((q, q))
    for i in range(q):
        a[i, i] = np.sqrt(rng.chisquare(dof - i))
        for j in range(i):
            a[i, j] = _normal(rng)
    # W = B A A' B' with B B' = S^{-1}; B = L^{-T} (upper): W^{-1} = L C^{-T} C^{-1} L'
    # where C = A (lower), B A = L^{-T} A.  Sigma' = W^{-1}.
    b = np.zeros((q, q))  # T = L^{-T} A
    for i in range(q):
        for j in range(q):
            acc = 0.0
            for k in range(q):
                acc += linv[k, i] * a[k, j]
            b[i, j] = acc
    w = b @ b.T
    prop = np.linalg.inv(w)
    prop = 0.5 * (prop + prop.T)
    log_ratio = _log_prior_over_ref(prop, q, rates, eta, psi, work) - _log_prior_over_ref(
        sig, q, rates, eta, psi, work
    )
    if np.log(1.0 - rng.random()) < log_ratio:
        for i in range(q):
            for j in range(q):
                sig[i, j] = prop[i, j]


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
