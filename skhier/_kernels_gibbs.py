"""numba kernels of the blocked Gibbs engine (several grouping factors).

One chain is one call of :func:`run_chain`; it seeds numba's thread-local random
generator itself, so a chain's draws depend on its seed only (threads run chains
side by side).  Each sweep:

1. **Blocks of effects given the variance parameters.**  The factors form
   *trees* (a top factor and the factors nested in it, outer to inner; a crossed
   factor is a tree of its own).  For each tree in turn, given the other trees'
   effects, ``(beta, every effect of the tree)`` is drawn *jointly and exactly*:
   the innermost levels are integrated out into their parents (information form:
   ``P_a - P_ab Q_b^{-1} P_ba``), level by level up to ``beta``, which is drawn
   from its marginal; then the levels are drawn back down, each given its
   ancestors.  Nested factors are thus one exact block (the collapsed algebra,
   recursively); crossed factors alternate, each collapsing ``beta`` (the
   collapsed Gibbs sampler of Papaspiliopoulos, Roberts & Zanella, 2020).
2. **Variance parameters, interweaved** (ancillarity-sufficiency interweaving,
   Yu & Meng 2011): each factor's SDs (and correlations) given its effects
   (centred form: an independence Metropolis-Hastings step whose proposal is the
   conditional without the prior, accepted by the prior ratio), then each SD
   given the *standardized* effects ``v = u / tau`` and the data (non-centred
   form: a truncated normal, exactly), so that neither weakly nor strongly
   identified group effects slow the chain down.
3. The noise SD given the residuals (the same independence step).

All arrays are on the standardized scale of :mod:`skhier._spec`.
"""

# numba's own generator (``np.random.*`` inside compiled code) is thread-local and
# seeded per chain by ``run_chain``: the legacy-API rule does not apply here.
# ruff: noqa: NPY002

from __future__ import annotations

import numpy as np

from ._kernels_linalg import _njit


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
def _normal():
    return np.random.normal(0.0, 1.0)


@_njit
def _positive_normal(mean, sd):
    """A draw of Normal(mean, sd) truncated to (0, inf), exactly (Robert 1995)."""
    alpha = -mean / sd
    if alpha < 0.5:
        while True:
            z = _normal()
            if z > alpha:
                return mean + sd * z
    lam = 0.5 * (alpha + np.sqrt(alpha * alpha + 4.0))
    while True:
        z = alpha - np.log(1.0 - np.random.random()) / lam
        if np.random.random() <= np.exp(-0.5 * (z - lam) ** 2):
            return mean + sd * z


@_njit
def _scale_step(current, n, ss, rate):
    """One independence M-H step for an SD with conditional
    ``sd^-n exp(-ss / (2 sd^2)) exp(-rate sd)``: proposal from the first two factors
    (precision ~ Gamma((n - 1) / 2, rate ss / 2)), accepted by the prior ratio."""
    if n < 2 or ss <= 0.0:
        return current
    prec = np.random.gamma(0.5 * (n - 1), 2.0 / ss)
    prop = 1.0 / np.sqrt(prec)
    if np.log(1.0 - np.random.random()) < -rate * (prop - current):
        return prop
    return current


@_njit
def _log_prior_over_ref(sig, q, rates, eta, psi, work):
    """log p(Sigma) - log IW(Sigma; psi I, q + 1) for SDs ~ Exponential(rates) and
    correlations ~ LKJ(eta) (with the Jacobian of (tau, R) -> Sigma)."""
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
    log_det_r = logdet - 2.0 * sum_log_tau
    out += (eta - 1.0) * log_det_r - q * sum_log_tau
    # reference IW(psi I, q + 1): -(2q + 2) / 2 log|Sigma| - psi / 2 tr(Sigma^-1)
    trace_inv = 0.0
    for k in range(q):  # tr(Sigma^-1) = ||L^-1||_F^2
        e = np.zeros(q)
        e[k] = 1.0
        _forward(work, q, e)
        for i in range(q):
            trace_inv += e[i] * e[i]
    out += (q + 1.0) * logdet + 0.5 * psi * trace_inv
    return out


@_njit
def _cov_step(sig, q, scatter, n_levels, rates, eta, psi):
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
        a[i, i] = np.sqrt(np.random.chisquare(dof - i))
        for j in range(i):
            a[i, j] = _normal()
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
    if np.log(1.0 - np.random.random()) < log_ratio:
        for i in range(q):
            for j in range(q):
                sig[i, j] = prop[i, j]


@_njit
def _contribution(Z, codes, u, zoff, uoff, q, i, f):
    """``Z_f(i) . u_f[level of row i]``."""
    base = uoff[f] + codes[i, f] * q[f]
    acc = 0.0
    for k in range(q[f]):
        acc += Z[i, zoff[f] + k] * u[base + k]
    return acc


@_njit
def _precisions(tau, corr, q, zoff, croff, sinv, sig):
    """Sigma_f = D R D and its inverse for every factor (flat, ``croff``)."""
    for f in range(q.shape[0]):
        qf = q[f]
        a = np.zeros((qf, qf))
        for i in range(qf):
            for j in range(qf):
                a[i, j] = tau[zoff[f] + i] * corr[croff[f] + i * qf + j] * tau[zoff[f] + j]
                sig[croff[f] + i * qf + j] = a[i, j]
        inv = np.linalg.inv(a)
        for i in range(qf):
            for j in range(qf):
                sinv[croff[f] + i * qf + j] = 0.5 * (inv[i, j] + inv[j, i])


@_njit
def _tree_block(
    t,
    y,
    Z,
    codes,
    C,
    coff,
    M,
    moff,
    q,
    nlev,
    zoff,
    uoff,
    mdim,
    plev,
    loff,
    tree_f,
    toff,
    beta_prec,
    sinv,
    croff,
    inv_s2,
    u,
    beta,
    r,
    P,
    h,
    Lb,
    Wb,
    hb,
    poff,
    hoff,
    lboff,
    woff,
    Cy,
):
    """Draw ``(beta, effects of tree t)`` jointly given the other trees' effects."""
    n_rows, p = C.shape[0], beta.shape[0]
    n_trees = toff.shape[0] - 1
    first, depth = toff[t], toff[t + 1] - toff[t]
    f_in = tree_f[first + depth - 1]
    m = mdim[f_in]
    c0 = coff[t]
    target = y
    if n_trees > 1:
        for i in range(n_rows):
            acc = y[i]
            for f in range(q.shape[0]):
                if not _in_tree(tree_f, first, depth, f):
                    acc -= _contribution(Z, codes, u, zoff, uoff, q, i, f)
            r[i] = acc
        target = r
    for d in range(depth - 1):  # accumulators of the outer levels
        f = tree_f[first + d]
        P[poff[f] : poff[f + 1]] = 0.0
        h[hoff[f] : hoff[f + 1]] = 0.0
    for e in range(poff[f_in + 1] - poff[f_in]):
        P[poff[f_in] + e] = M[moff[f_in] + e] * inv_s2
    if n_trees == 1:  # C'y of the innermost nodes, computed once
        for e in range(hoff[f_in + 1] - hoff[f_in]):
            h[hoff[f_in] + e] = Cy[e] * inv_s2
    else:
        h[hoff[f_in] : hoff[f_in + 1]] = 0.0
        for i in range(n_rows):
            base = hoff[f_in] + codes[i, f_in] * m
            w = target[i] * inv_s2
            for a in range(m):
                h[base + a] += C[i, c0 + a] * w
    ptop = np.zeros((p, p))
    htop = np.zeros(p)
    maxq = 0
    for f in range(q.shape[0]):
        maxq = max(maxq, q[f])
    qq = np.zeros((maxq, maxq))
    lo = np.zeros((maxq, maxq))
    vec = np.zeros(maxq)
    # upward: integrate each level out into its parent
    for d in range(depth - 1, -1, -1):
        f = tree_f[first + d]
        md, qf = mdim[f], q[f]
        ma = md - qf
        fp = tree_f[first + d - 1] if d > 0 else -1
        pp = hp = 0
        for j in range(nlev[f]):
            pb, hbase = poff[f] + j * md * md, hoff[f] + j * md
            for a in range(qf):
                for b in range(qf):
                    qq[a, b] = P[pb + (ma + a) * md + ma + b] + sinv[croff[f] + a * qf + b]
            _chol(qq, qf, lo)
            lbase, wbase, ubase = lboff[f] + j * qf * qf, woff[f] + j * qf * ma, uoff[f] + j * qf
            for a in range(qf):
                for b in range(qf):
                    Lb[lbase + a * qf + b] = lo[a, b]
            for c in range(ma):
                for a in range(qf):
                    vec[a] = P[pb + (ma + a) * md + c]
                _forward(lo, qf, vec)
                for a in range(qf):
                    Wb[wbase + a * ma + c] = vec[a]
            for a in range(qf):
                vec[a] = h[hbase + ma + a]
            _forward(lo, qf, vec)
            for a in range(qf):
                hb[ubase + a] = vec[a]
            if d > 0:
                jp = plev[loff[f] + j]
                pp, hp = poff[fp] + jp * ma * ma, hoff[fp] + jp * ma
            for a in range(ma):
                acc = h[hbase + a]
                for k in range(qf):
                    acc -= Wb[wbase + k * ma + a] * hb[ubase + k]
                if d > 0:
                    h[hp + a] += acc
                else:
                    htop[a] += acc
                for b in range(ma):
                    acc = P[pb + a * md + b]
                    for k in range(qf):
                        acc -= Wb[wbase + k * ma + a] * Wb[wbase + k * ma + b]
                    if d > 0:
                        P[pp + a * ma + b] += acc
                    else:
                        ptop[a, b] += acc
    for a in range(p):
        ptop[a, a] += beta_prec[a]
    ltop = np.zeros((p, p))
    _chol(ptop, p, ltop)
    _forward(ltop, p, htop)
    for a in range(p):
        htop[a] += _normal()
    _backward(ltop, p, htop)
    beta[:] = htop
    # downward: each level given beta and its ancestors
    xa = np.zeros(m)
    for d in range(depth):
        f = tree_f[first + d]
        md, qf = mdim[f], q[f]
        ma = md - qf
        for j in range(nlev[f]):
            xa[:p] = beta
            cur_f, cur_l = f, j
            for dd in range(d - 1, -1, -1):
                cur_l = plev[loff[cur_f] + cur_l]
                cur_f = tree_f[first + dd]
                off = mdim[cur_f] - q[cur_f]
                for k in range(q[cur_f]):
                    xa[off + k] = u[uoff[cur_f] + cur_l * q[cur_f] + k]
            lbase, wbase, ubase = lboff[f] + j * qf * qf, woff[f] + j * qf * ma, uoff[f] + j * qf
            for a in range(qf):
                for b in range(qf):
                    lo[a, b] = Lb[lbase + a * qf + b]
                acc = hb[ubase + a] + _normal()
                for c in range(ma):
                    acc -= Wb[wbase + a * ma + c] * xa[c]
                vec[a] = acc
            _backward(lo, qf, vec)
            for a in range(qf):
                u[ubase + a] = vec[a]


@_njit
def _in_tree(tree_f, first, depth, f):
    for d in range(depth):
        if tree_f[first + d] == f:
            return True
    return False


@_njit
def _centred_steps(u, tau, corr, q, nlev, zoff, uoff, croff, rates, correlated, eta, psi):
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
            _cov_step(sig, qf, scatter, n_lev, rates[zoff[f] : zoff[f] + qf], eta, psi)
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
                tau[zoff[f] + k] = _scale_step(tau[zoff[f] + k], n_lev, ss, rates[zoff[f] + k])


@_njit
def _rescale(u, tau, q, nlev, uoff, f, k, col, new):
    """Set ``tau[col] = new`` keeping ``v = u / tau`` (the interweaving move)."""
    ratio = new / tau[col]
    for j in range(nlev[f]):
        u[uoff[f] + j * q[f] + k] *= ratio
    tau[col] = new


@_njit
def _interweave_rows(res, Z, codes, u, tau, q, nlev, zoff, uoff, rates, inv_s2):
    """Each SD given ``v = u / tau`` and the data: a truncated normal (from rows)."""
    n_rows = res.shape[0]
    for f in range(q.shape[0]):
        qf = q[f]
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
            new = _positive_normal((b_sum - rates[col]) / a_sum, 1.0 / np.sqrt(a_sum))
            for i in range(n_rows):
                w = Z[i, col] * u[uoff[f] + codes[i, f] * qf + k] / tk
                res[i] -= (new - tk) * w
            _rescale(u, tau, q, nlev, uoff, f, k, col, new)


@_njit
def _node_state(x, beta, u, anc, j, chain, q, uoff):
    """``x = (beta, u of each factor of the chain at node j's ancestors)``."""
    p = beta.shape[0]
    x[:p] = beta
    off = p
    for d in range(chain.shape[0]):
        f = chain[d]
        lev = anc[j, d]
        for k in range(q[f]):
            x[off + k] = u[uoff[f] + lev * q[f] + k]
        off += q[f]


@_njit
def _interweave_nodes(M3, Cy, yy, anc, chain, beta, u, tau, q, nlev, zoff, uoff, rates, inv_s2):
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
    for d in range(chain.shape[0]):
        f = chain[d]
        qf = q[f]
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
            new = _positive_normal((b_sum - rates[col]) / a_sum, 1.0 / np.sqrt(a_sum))
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


@_njit
def run_chain(
    seed,
    n_tune,
    kept_pos,
    y,
    F,
    Z,
    codes,
    C,
    coff,
    M,
    moff,
    q,
    nlev,
    zoff,
    uoff,
    mdim,
    plev,
    loff,
    tree_f,
    toff,
    croff,
    beta_prec,
    rates,
    s_rate,
    eta,
    correlated,
    psi,
    M3,
    Cy,
    yy,
    anc,
    out_beta,
    out_s,
    out_tau,
    out_corr,
    out_u,
    usum,
    ucross,
):
    """One chain: ``n_tune`` sweeps of burn-in, then one draw per sweep into the
    ``out_*`` arrays (the group effects ``u`` at the draws where ``kept_pos >= 0``),
    with every draw's effects summed into ``usum`` and their per-level outer
    products into ``ucross`` (flat, ``croff`` per level's block).

    A model whose factors form one tree (one factor, or nested factors) runs from
    its innermost nodes' statistics ``M3`` (C'C), ``Cy`` (C'y) and ``yy`` (y'y),
    with ``anc`` the level of each factor of the chain above each node: a sweep
    then costs nothing per row."""
    np.random.seed(seed)
    n_rows, p = F.shape
    n_fac = q.shape[0]
    n_draws = out_beta.shape[0]
    poff = np.zeros(n_fac + 1, dtype=np.int64)
    hoff = np.zeros(n_fac + 1, dtype=np.int64)
    lboff = np.zeros(n_fac + 1, dtype=np.int64)
    woff = np.zeros(n_fac + 1, dtype=np.int64)
    xoff = np.zeros(n_fac + 1, dtype=np.int64)  # per-level outer products
    for f in range(n_fac):
        md, qf = mdim[f], q[f]
        poff[f + 1] = poff[f] + nlev[f] * md * md
        hoff[f + 1] = hoff[f] + nlev[f] * md
        lboff[f + 1] = lboff[f] + nlev[f] * qf * qf
        woff[f + 1] = woff[f] + nlev[f] * qf * (md - qf)
        xoff[f + 1] = xoff[f] + nlev[f] * qf * qf
    P = np.zeros(poff[n_fac])
    h = np.zeros(hoff[n_fac])
    Lb = np.zeros(lboff[n_fac])
    Wb = np.zeros(woff[n_fac])
    hb = np.zeros(uoff[n_fac])
    u = np.zeros(uoff[n_fac])
    beta = np.zeros(p)
    r = np.zeros(n_rows)
    res = np.zeros(n_rows)
    n_tau = zoff[n_fac]
    tau = np.empty(n_tau)
    for k in range(n_tau):  # over-dispersed starting points (standardized scale)
        tau[k] = 0.1 + 0.9 * np.random.random()
    corr = np.zeros(croff[n_fac])
    for f in range(n_fac):
        for a in range(q[f]):
            corr[croff[f] + a * q[f] + a] = 1.0
    s = 0.3 + 0.7 * np.random.random()
    sinv = np.zeros(croff[n_fac])
    sig = np.zeros(croff[n_fac])
    n_trees = toff.shape[0] - 1
    for it in range(n_tune + n_draws):
        _precisions(tau, corr, q, zoff, croff, sinv, sig)
        inv_s2 = 1.0 / (s * s)
        for t in range(n_trees):
            _tree_block(
                t,
                y,
                Z,
                codes,
                C,
                coff,
                M,
                moff,
                q,
                nlev,
                zoff,
                uoff,
                mdim,
                plev,
                loff,
                tree_f,
                toff,
                beta_prec,
                sinv,
                croff,
                inv_s2,
                u,
                beta,
                r,
                P,
                h,
                Lb,
                Wb,
                hb,
                poff,
                hoff,
                lboff,
                woff,
                Cy.ravel(),
            )
        _centred_steps(u, tau, corr, q, nlev, zoff, uoff, croff, rates, correlated, eta, psi)
        if n_trees == 1:
            rss = _interweave_nodes(
                M3, Cy, yy, anc, tree_f, beta, u, tau, q, nlev, zoff, uoff, rates, inv_s2
            )
        else:
            for i in range(n_rows):
                acc = y[i]
                for a in range(p):
                    acc -= F[i, a] * beta[a]
                for f in range(n_fac):
                    acc -= _contribution(Z, codes, u, zoff, uoff, q, i, f)
                res[i] = acc
            _interweave_rows(res, Z, codes, u, tau, q, nlev, zoff, uoff, rates, inv_s2)
            rss = 0.0
            for i in range(n_rows):
                rss += res[i] * res[i]
        s = _scale_step(s, n_rows, rss, s_rate)
        d = it - n_tune
        if d < 0:
            continue
        out_beta[d] = beta
        out_s[d] = s
        out_tau[d] = tau
        out_corr[d] = corr
        if kept_pos[d] >= 0:
            out_u[kept_pos[d]] = u
        for f in range(n_fac):
            qf = q[f]
            for j in range(nlev[f]):
                ub = uoff[f] + j * qf
                xb = xoff[f] + j * qf * qf
                for a in range(qf):
                    usum[ub + a] += u[ub + a]
                    for b in range(qf):
                        ucross[xb + a * qf + b] += u[ub + a] * u[ub + b]
