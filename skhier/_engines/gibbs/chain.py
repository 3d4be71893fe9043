"""numba kernels of the blocked Gibbs engine (several grouping factors).

One chain is one call of :func:`run_chain` with its own ``numpy.random.Generator``
(numba draws from it in compiled code and advances its state), so a chain's draws
depend on its generator's seed only; threads run chains side by side.  Each sweep:

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

All arrays are on the standardized scale of :mod:`skhier._model.spec`.
"""

from __future__ import annotations

import numpy as np

from skhier._engines.gibbs.base import _copy, _scale_step, _spd_inverse
from skhier._engines.gibbs.marginal import adapt, apply_theta, propose, theta_of, theta_offsets
from skhier._engines.gibbs.pg import pg_refresh
from skhier._engines.gibbs.steps import _centred_steps, _interweave_nodes, _interweave_rows
from skhier._engines.gibbs.tree import (
    MARGINAL,
    REUSE,
    SAMPLE,
    TOP,
    _contribution,
    _tree_block,
    level_offsets,
    record_draw,
    tree_buffers,
)
from skhier._numba.linalg import _njit

#: one-tree models: interweaving steps too (besides the collapsed Metropolis steps)
ONE_TREE_NCP = np.bool_(True)  # (a numpy bool: numba would compile for a literal True)


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
        inv = _spd_inverse(a, qf)
        for i in range(qf):
            for j in range(qf):
                sinv[croff[f] + i * qf + j] = 0.5 * (inv[i, j] + inv[j, i])


@_njit
def run_chain(rng, n_tune, kept_pos, data, F, croff, priors, one_tree, outs, marginal_tries,
              augment, aug, stop):  # fmt: skip
    """One chain: ``n_tune`` sweeps of burn-in, then one draw per sweep into the
    ``out_*`` arrays (the group effects ``u`` at the draws where ``kept_pos >= 0``),
    with every draw's effects summed into ``usum`` and their per-level outer
    products into ``ucross`` (flat, ``croff`` per level's block).

    A model whose factors form one tree (one factor, or nested factors) runs from
    its innermost nodes' statistics ``M3`` (C'C), ``Cy`` (C'y) and ``yy`` (y'y),
    with ``anc`` the level of each factor of the chain above each node: a sweep
    then costs nothing per row, and its variance parameters also get
    ``marginal_tries`` collapsed Metropolis steps (:mod:`skhier._engines.gibbs.marginal`).

    ``priors`` ends with the number of observations the rows stand for (their
    frequency weights summed; Gaussian rows come scaled by the root of their weight).
    ``augment``: a binary outcome (``kappa``, trials ``b``) with log-odds ``offset +
    F beta + Z u``;
    each sweep starts with a Pólya-Gamma step (:func:`skhier._engines.gibbs.pg.pg_refresh`)
    that rewrites ``y``, ``F``, ``Z``, ``C`` and the node statistics from the
    unscaled ``F0``, ``Z0``, ``C0`` for the Gaussian model given omega, whose noise
    SD is then fixed at 1."""
    (y, Z, codes, C, coff, M, moff, q, nlev, zoff, uoff, mdim, plev, loff, tree_f, toff,
     beta_prec) = data  # fmt: skip
    rates, s_rate, eta, correlated, psi, n_obs = priors
    M3, Cy, yy, anc = one_tree
    out_beta, out_s, out_tau, out_corr, out_u, usum, ucross = outs
    n_rows, p = F.shape
    n_fac = q.shape[0]
    n_draws = out_beta.shape[0]
    bufs = tree_buffers(q, nlev, mdim, uoff, Cy, p)
    xoff = level_offsets(nlev, q)  # per-level outer products
    u = np.zeros(uoff[n_fac])
    beta = np.zeros(p)
    r = np.zeros(n_rows)
    res = np.zeros(n_rows)
    n_tau = zoff[n_fac]
    tau = np.empty(n_tau)
    for k in range(n_tau):  # over-dispersed starting points (standardized scale)
        tau[k] = 0.1 + 0.9 * rng.random()
    corr = np.zeros(croff[n_fac])
    for f in range(n_fac):
        for a in range(q[f]):
            corr[croff[f] + a * q[f] + a] = 1.0
    s = 1.0 if augment else 0.3 + 0.7 * rng.random()
    sinv = np.zeros(croff[n_fac])
    sig = np.zeros(croff[n_fac])
    n_trees = toff.shape[0] - 1
    # the collapsed step of one-tree models (see _kernels_gibbs_marginal)
    thoff = theta_offsets(q, correlated)
    n_theta = thoff[n_fac] + 1
    tdims = (q, zoff, croff, correlated, thoff, nlev, rates, s_rate, eta)
    th, th_p = np.zeros(n_theta), np.zeros(n_theta)
    tau_p, corr_p, sinv_p = tau.copy(), corr.copy(), sinv.copy()
    th_mean, th_m2 = np.zeros(n_theta), np.zeros((n_theta, n_theta))
    chol_prop = 0.1 * np.eye(n_theta)
    n_seen = np.int64(0)  # (not a literal: see skhier._engines.gibbs.tree.SAMPLE)
    log_scale = 0.0
    prop_scale = 2.38 / np.sqrt(n_theta)
    yy_tot = yy.sum()
    for it in range(n_tune + n_draws):
        if stop[0] != 0:  # interrupted (skhier._util.threads.thread_map)
            return
        if augment:
            pg_refresh(rng, aug, beta, u, data, F, one_tree)
            yy_tot = yy.sum()
        _precisions(tau, corr, q, zoff, croff, sinv, sig)
        inv_s2 = 1.0 / (s * s)
        for t in range(n_trees):
            core = _tree_block(rng, t, data, sinv, croff, inv_s2, u, beta, r, bufs, SAMPLE)
        if n_trees == 1 and marginal_tries > 0:
            theta_of(tau, corr, s, q, zoff, croff, correlated, thoff, th)
            lp, _ = apply_theta(th, *tdims, tau_p, corr_p, sinv_p)
            cur = lp + core - n_obs * np.log(s) - 0.5 * yy_tot / (s * s)
            moved = last = False
            for _ in range(marginal_tries):
                propose(rng, th, chol_prop, prop_scale, th_p)
                if augment:  # the noise SD stays 1
                    th_p[n_theta - 1] = 0.0
                lp, s_p = apply_theta(th_p, *tdims, tau_p, corr_p, sinv_p)
                inv_p = 1.0 / (s_p * s_p)
                core = _tree_block(rng, TOP, data, sinv_p, croff, inv_p, u, beta, r, bufs, MARGINAL)
                new = lp + core - n_obs * np.log(s_p) - 0.5 * yy_tot * inv_p
                last = np.log(1.0 - rng.random()) < new - cur
                if last:
                    _copy(th_p, th)
                    _copy(tau_p, tau)
                    _copy(corr_p, corr)
                    _copy(sinv_p, sinv)
                    s, inv_s2, cur, moved = s_p, inv_p, new, True
                if it < n_tune:  # learn the proposal during burn-in, then freeze it
                    n_seen = adapt(th, n_seen, th_mean, th_m2, chol_prop)
                    log_scale += ((1.0 if last else 0.0) - 0.25) / np.sqrt(it + 1.0)
                    prop_scale = np.exp(log_scale) * 2.38 / np.sqrt(n_theta)
            if moved:  # the effects given the new theta (the buffers hold the last try's)
                mode = REUSE if last else SAMPLE
                _tree_block(rng, TOP, data, sinv, croff, inv_s2, u, beta, r, bufs, mode)
        _centred_steps(rng, u, tau, corr, q, nlev, zoff, uoff, croff, rates, correlated, eta, psi)
        if n_trees == 1:
            rss = _interweave_nodes(
                rng, M3, Cy, yy, anc, tree_f, beta, u, tau, corr, q, nlev, zoff, uoff, croff,
                rates, correlated, eta, inv_s2, ONE_TREE_NCP,
            )  # fmt: skip
        else:
            for i in range(n_rows):
                acc = y[i]
                for a in range(p):
                    acc -= F[i, a] * beta[a]
                for f in range(n_fac):
                    acc -= _contribution(Z, codes, u, zoff, uoff, q, i, f)
                res[i] = acc
            _interweave_rows(
                rng, res, Z, codes, u, tau, corr, q, nlev, zoff, uoff, croff, rates,
                correlated, eta, inv_s2,
            )  # fmt: skip
            rss = 0.0
            for i in range(n_rows):
                rss += res[i] * res[i]
        if not augment:
            s = _scale_step(rng, s, n_obs, rss, s_rate)
        d = it - n_tune
        if d < 0:
            continue
        record_draw(d, kept_pos, beta, s, tau, corr, u, outs, q, nlev, uoff, xoff)
