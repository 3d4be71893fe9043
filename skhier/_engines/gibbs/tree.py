"""numba kernels of the Gibbs engine's exact block: ``beta`` and every effect of one
tree of factors (a factor and those nested in it), drawn jointly given the variance
parameters and the other trees' effects.

:func:`_upward` integrates the tree's levels out, innermost first, each into its
parent (information form: ``P_a - P_ab Q_b^{-1} P_ba``), up to ``beta``;
:func:`_downward` draws them back down, each level given its ancestors.  The upward
pass also gives the data's part of the log marginal likelihood of the variance
parameters (every effect and ``beta`` integrated out), which the one-tree Metropolis
steps (:mod:`skhier._engines.gibbs.marginal`) and importance sampling
(:mod:`skhier._engines.gibbs.tree_importance`) use.  ``data`` and ``bufs`` are the
tuples :func:`skhier._engines.gibbs.chain.run_chain` passes.
"""

from __future__ import annotations

import numpy as np

from skhier._engines.gibbs.base import _backward, _chol, _copy, _fill, _forward, _normal
from skhier._numba.linalg import _njit, _njit_inline


@_njit_inline
def _contribution(Z, codes, u, zoff, uoff, q, i, f):
    """``Z_f(i) . u_f[level of row i]``."""
    base = uoff[f] + codes[i, f] * q[f]
    acc = 0.0
    for k in range(q[f]):
        acc += Z[i, zoff[f] + k] * u[base + k]
    return acc


@_njit
def level_offsets(nlev, q):
    """Offsets of each factor's per-level ``q x q`` blocks in a flat array."""
    out = np.zeros(q.shape[0] + 1, dtype=np.int64)
    for f in range(q.shape[0]):
        out[f + 1] = out[f] + nlev[f] * q[f] * q[f]
    return out


@_njit
def tree_buffers(q, nlev, mdim, uoff, Cy, p):
    """The work buffers of :func:`_tree_block` (``bufs``): per level its precision
    ``P`` and shift ``h`` (size ``mdim``), the Cholesky factor ``Lb`` and blocks
    ``Wb``, ``hb`` of its own effects, their offsets, the innermost nodes' ``C'y``
    and the precision and shift of ``beta`` (``ptop``, ``htop``)."""
    n_fac = q.shape[0]
    poff = np.zeros(n_fac + 1, dtype=np.int64)
    hoff = np.zeros(n_fac + 1, dtype=np.int64)
    lboff = np.zeros(n_fac + 1, dtype=np.int64)
    woff = np.zeros(n_fac + 1, dtype=np.int64)
    for f in range(n_fac):
        md, qf = mdim[f], q[f]
        poff[f + 1] = poff[f] + nlev[f] * md * md
        hoff[f + 1] = hoff[f] + nlev[f] * md
        lboff[f + 1] = lboff[f] + nlev[f] * qf * qf
        woff[f + 1] = woff[f] + nlev[f] * qf * (md - qf)
    P = np.zeros(poff[n_fac])
    h = np.zeros(hoff[n_fac])
    Lb = np.zeros(lboff[n_fac])
    Wb = np.zeros(woff[n_fac])
    hb = np.zeros(uoff[n_fac])
    ptop = np.zeros(p * p)
    htop = np.zeros(p)
    return (P, h, Lb, Wb, hb, poff, hoff, lboff, woff, Cy.ravel(), ptop, htop)


#: :func:`_tree_block`'s modes and the first tree, as numpy ints: numba compiles a
#: function once per *literal* value it is called with (``f(x, 0)`` and ``f(x, 1)``
#: are two compilations), but once for every ``int64``
SAMPLE, MARGINAL, REUSE = np.int64(0), np.int64(1), np.int64(2)
TOP = np.int64(0)


@_njit
def _tree_block(rng, t, data, sinv, croff, inv_s2, u, beta, r, bufs, mode):
    """Draw ``(beta, effects of tree t)`` jointly given the other trees' effects.

    ``data`` and ``bufs`` are :func:`run_chain`'s tuples of the layout's arrays and of
    the sweep's work buffers.  ``mode`` 0: integrate the levels out (upward), then
    draw; 1: upward only; 2: draw only, from the buffers a mode-1 call filled.
    Returns ``-log|Q|/2 + h'Q^-1 h/2`` (modes 0 and 1), the data's part of the log
    marginal likelihood of a one-tree model (``Q`` the precision of ``(beta, u)``
    given the data).
    """
    beta_prec, toff, q = data[16], data[15], data[7]
    ptop, htop = bufs[10], bufs[11]
    p = beta.shape[0]
    first, depth = toff[t], toff[t + 1] - toff[t]
    maxq = 0
    for f in range(q.shape[0]):
        maxq = max(maxq, q[f])
    qq = np.zeros((maxq, maxq))
    lo = np.zeros((maxq, maxq))
    vec = np.zeros(maxq)
    core = 0.0
    if mode != 2:
        core = _upward(t, data, sinv, croff, inv_s2, u, r, bufs, qq, lo, vec)
    ltop = np.zeros((p, p))
    top = np.zeros((p, p))
    for a in range(p):
        for b in range(a + 1):
            top[a, b] = ptop[a * p + b]
        top[a, a] += beta_prec[a]
    _chol(top, p, ltop)
    hv = htop.copy()
    _forward(ltop, p, hv)
    for a in range(p):
        core += 0.5 * hv[a] * hv[a] - np.log(ltop[a, a])
    if mode == 1:
        return core
    for a in range(p):
        hv[a] += _normal(rng)
    _backward(ltop, p, hv)
    _copy(hv, beta)
    _downward(rng, first, depth, data, bufs, beta, u, lo, vec)
    return core


@_njit
def _upward(t, data, sinv, croff, inv_s2, u, r, bufs, qq, lo, vec):
    """Integrate tree t's levels out, innermost first, into ``ptop``/``htop`` (the
    precision and shift of ``beta``); returns ``-sum log|L_b| + sum |hb|^2 / 2``."""
    (y, Z, codes, C, coff, M, moff, q, nlev, zoff, uoff, mdim, plev, loff, tree_f, toff,
     beta_prec) = data  # fmt: skip
    P, h, Lb, Wb, hb, poff, hoff, lboff, woff, Cy, ptop, htop = bufs
    n_rows = C.shape[0]
    n_trees = toff.shape[0] - 1
    first, depth = toff[t], toff[t + 1] - toff[t]
    f_in = tree_f[first + depth - 1]
    m = mdim[f_in]
    c0 = coff[t]
    core = 0.0
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
        _fill(P, poff[f], poff[f + 1])
        _fill(h, hoff[f], hoff[f + 1])
    if n_trees == 1:  # C'y of the innermost nodes, computed once
        for e in range(hoff[f_in + 1] - hoff[f_in]):
            h[hoff[f_in] + e] = Cy[e] * inv_s2
    else:
        _fill(h, hoff[f_in], hoff[f_in + 1])
        for i in range(n_rows):
            base = hoff[f_in] + codes[i, f_in] * m
            w = target[i] * inv_s2
            for a in range(m):
                h[base + a] += C[i, c0 + a] * w
    # upward: integrate each level out into its parent
    ptop[:] = 0.0
    htop[:] = 0.0
    for d in range(depth - 1, -1, -1):
        f = tree_f[first + d]
        md, qf = mdim[f], q[f]
        ma = md - qf
        fp = tree_f[first + d - 1] if d > 0 else -1
        # the innermost nodes' precision is C'C / s^2, read from M; the outer levels'
        # accumulate in P (lower triangles only: all the algebra reads)
        src, base0, scale = (M, moff[f], inv_s2) if d == depth - 1 else (P, poff[f], 1.0)
        tp, th = (P, h) if d > 0 else (ptop, htop)
        for j in range(nlev[f]):
            pb, hbase = base0 + j * md * md, hoff[f] + j * md
            lbase, wbase, ubase = lboff[f] + j * qf * qf, woff[f] + j * qf * ma, uoff[f] + j * qf
            if qf == 1:  # the common case (random intercepts), without the small solves
                piv = np.sqrt(src[pb + ma * md + ma] * scale + sinv[croff[f]])
                rl = 1.0 / piv
                Lb[lbase] = piv
                for c in range(ma):
                    Wb[wbase + c] = src[pb + ma * md + c] * scale * rl
                hb[ubase] = h[hbase + ma] * rl
                core += 0.5 * hb[ubase] * hb[ubase] - np.log(piv)
            else:
                for a in range(qf):
                    for b in range(a + 1):
                        qq[a, b] = (
                            src[pb + (ma + a) * md + ma + b] * scale + sinv[croff[f] + a * qf + b]
                        )
                _chol(qq, qf, lo)
                for a in range(qf):
                    for b in range(qf):
                        Lb[lbase + a * qf + b] = lo[a, b]
                for c in range(ma):
                    for a in range(qf):
                        vec[a] = src[pb + (ma + a) * md + c] * scale
                    _forward(lo, qf, vec)
                    for a in range(qf):
                        Wb[wbase + a * ma + c] = vec[a]
                for a in range(qf):
                    vec[a] = h[hbase + ma + a]
                _forward(lo, qf, vec)
                for a in range(qf):
                    hb[ubase + a] = vec[a]
                    core += 0.5 * vec[a] * vec[a] - np.log(lo[a, a])
            tpb = thb = 0
            if d > 0:
                jp = plev[loff[f] + j]
                tpb, thb = poff[fp] + jp * ma * ma, hoff[fp] + jp * ma
            if qf == 1:
                hbv = hb[ubase]
                for a in range(ma):
                    wa = Wb[wbase + a]
                    th[thb + a] += h[hbase + a] - wa * hbv
                    row, trow = pb + a * md, tpb + a * ma
                    for b in range(a + 1):
                        tp[trow + b] += src[row + b] * scale - wa * Wb[wbase + b]
                continue
            for a in range(ma):
                acc = h[hbase + a]
                for k in range(qf):
                    acc -= Wb[wbase + k * ma + a] * hb[ubase + k]
                th[thb + a] += acc
                for b in range(a + 1):
                    acc = src[pb + a * md + b] * scale
                    for k in range(qf):
                        acc -= Wb[wbase + k * ma + a] * Wb[wbase + k * ma + b]
                    tp[tpb + a * ma + b] += acc
    return core


@_njit
def _downward(rng, first, depth, data, bufs, beta, u, lo, vec):
    """Draw each level of a tree given beta and its ancestors (after :func:`_upward`)."""
    q, nlev, uoff, mdim, plev, loff, tree_f = (data[7], data[8], data[10], data[11], data[12],
                                               data[13], data[14])  # fmt: skip
    h, Lb, Wb, hb, hoff, lboff, woff = bufs[1], bufs[2], bufs[3], bufs[4], bufs[6], bufs[7], bufs[8]
    # downward: each level given beta and its ancestors; a node's (beta, ancestors'
    # effects, own effects) is kept in h (free after the upward pass) for its children
    for d in range(depth):
        f = tree_f[first + d]
        md, qf = mdim[f], q[f]
        ma = md - qf
        fp = tree_f[first + d - 1] if d > 0 else -1
        for j in range(nlev[f]):
            xb = hoff[fp] + plev[loff[f] + j] * ma if d > 0 else 0
            xs = h if d > 0 else beta
            lbase, wbase, ubase = lboff[f] + j * qf * qf, woff[f] + j * qf * ma, uoff[f] + j * qf
            hbase = hoff[f] + j * md
            if qf == 1:
                acc = hb[ubase] + _normal(rng)
                for c in range(ma):
                    xc = xs[xb + c]
                    acc -= Wb[wbase + c] * xc
                    h[hbase + c] = xc
                v = acc / Lb[lbase]
                u[ubase] = v
                h[hbase + ma] = v
                continue
            for a in range(qf):
                acc = hb[ubase + a] + _normal(rng)
                for c in range(ma):
                    acc -= Wb[wbase + a * ma + c] * xs[xb + c]
                vec[a] = acc
            if qf == 1:
                vec[0] /= Lb[lbase]
            else:
                for a in range(qf):
                    for b in range(qf):
                        lo[a, b] = Lb[lbase + a * qf + b]
                _backward(lo, qf, vec)
            for c in range(ma):
                h[hbase + c] = xs[xb + c]
            for a in range(qf):
                u[ubase + a] = vec[a]
                h[hbase + ma + a] = vec[a]


@_njit_inline
def _in_tree(tree_f, first, depth, f):
    for d in range(depth):
        if tree_f[first + d] == f:
            return True
    return False


@_njit
def record_draw(d, kept_pos, beta, s, tau, corr, u, outs, q, nlev, uoff, xoff):
    """Store draw ``d`` into ``outs = (beta, s, tau, corr, u, usum, ucross)``: the
    effects when ``kept_pos[d] >= 0``, and every draw's effects summed and their
    per-level outer products accumulated (``xoff``: :func:`level_offsets`)."""
    out_beta, out_s, out_tau, out_corr, out_u, usum, ucross = outs
    _copy(beta, out_beta[d])
    out_s[d] = s
    _copy(tau, out_tau[d])
    _copy(corr, out_corr[d])
    if kept_pos[d] >= 0:
        _copy(u, out_u[kept_pos[d]])
    for f in range(q.shape[0]):
        qf = q[f]
        for j in range(nlev[f]):
            ub = uoff[f] + j * qf
            xb = xoff[f] + j * qf * qf
            for a in range(qf):
                usum[ub + a] += u[ub + a]
                for b in range(qf):
                    ucross[xb + a * qf + b] += u[ub + a] * u[ub + b]
