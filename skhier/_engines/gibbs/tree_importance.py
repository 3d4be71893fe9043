"""Importance sampling for nested Gaussian models: the variance parameters from
their exact marginal, every effect drawn exactly given them.

When the grouping factors form one tree (one factor nested in another, and so on)
and the noise is Gaussian, the upward pass of the Gibbs engine
(:func:`skhier._engines.gibbs.tree._tree_block`, mode 1) integrates ``beta`` and
every group effect out and gives the log marginal likelihood of the variance
parameters ``theta`` (each factor's log SDs and correlation parameters, and the log
noise SD; :mod:`skhier._engines.gibbs.marginal`).  With a few parameters and many
levels their posterior is close to Gaussian, so, as the one-factor collapsed engine
does from 1,000 groups on:

1. the posterior mode of ``theta`` and the curvature there (Laplace);
2. Pareto-smoothed importance sampling from a multivariate t around it, resampled
   to equally weighted draws (:func:`skhier._engines.collapsed.importance.importance_resample`:
   its ``k_hat`` says whether the weights can be trusted; above 0.7 the caller runs
   the Gibbs sampler instead);
3. for each draw of ``theta``, ``(beta, effects)`` drawn exactly from their
   Gaussian conditional by one upward and one downward pass.

No Markov chain, so no mixing problem: the weakly identified SDs that slow the
Gibbs sweeps (a factor with few levels and a small SD) cost nothing more here.
"""

from __future__ import annotations

import os

import numpy as np

from skhier._engines.collapsed.importance import K_HAT_MAX
from skhier._engines.gibbs.marginal import apply_theta, theta_offsets
from skhier._engines.gibbs.tree import (
    MARGINAL,
    SAMPLE,
    TOP,
    _tree_block,
    level_offsets,
    record_draw,
    tree_buffers,
)
from skhier._numba.linalg import _njit
from skhier._util.threads import thread_map

#: proposals per kept draw
_PROPOSALS_PER_DRAW = 1
#: degrees of freedom of the multivariate t proposals
_DF = 5.0
__all__ = ["K_HAT_MAX", "sample"]


@_njit
def _setup(data, one_tree, p, correlated):
    q, nlev, uoff, mdim = data[7], data[8], data[10], data[11]
    bufs = tree_buffers(q, nlev, mdim, uoff, one_tree[1], p)
    thoff = theta_offsets(q, correlated)
    return bufs, thoff


@_njit
def log_posteriors(thetas, rng, data, croff, priors, one_tree, p, out):
    """The log posterior (up to a constant) of each row of ``thetas`` into ``out``."""
    rates, s_rate, eta, correlated, _, n_obs = priors
    q, zoff, nlev, uoff = data[7], data[9], data[8], data[10]
    bufs, thoff = _setup(data, one_tree, p, correlated)
    tdims = (q, zoff, croff, correlated, thoff, nlev, rates, s_rate, eta)
    tau, corr, sinv = np.zeros(zoff[-1]), np.zeros(croff[-1]), np.zeros(croff[-1])
    u, beta, r = np.zeros(uoff[-1]), np.zeros(p), np.zeros(0)
    yy_tot = one_tree[2].sum()
    for i in range(thetas.shape[0]):
        lp, s = apply_theta(thetas[i], *tdims, tau, corr, sinv)
        inv = 1.0 / (s * s)
        core = _tree_block(rng, TOP, data, sinv, croff, inv, u, beta, r, bufs, MARGINAL)
        value = lp + core - n_obs * np.log(s) - 0.5 * yy_tot * inv
        out[i] = value if np.isfinite(value) else -np.inf


@_njit
def exact_draws(thetas, rng, data, croff, priors, one_tree, p, kept_pos, outs):
    """For each row of ``thetas`` (one chain's draws), ``(beta, effects)`` drawn
    exactly given it, into ``outs`` (as :func:`skhier._engines.gibbs.chain.run_chain`
    fills them: the kept effects, and every draw's sums and outer products)."""
    rates, s_rate, eta, correlated, _, _ = priors
    q, zoff, nlev, uoff = data[7], data[9], data[8], data[10]
    bufs, thoff = _setup(data, one_tree, p, correlated)
    tdims = (q, zoff, croff, correlated, thoff, nlev, rates, s_rate, eta)
    tau, corr, sinv = np.zeros(zoff[-1]), np.zeros(croff[-1]), np.zeros(croff[-1])
    u, beta, r = np.zeros(uoff[-1]), np.zeros(p), np.zeros(0)
    xoff = level_offsets(nlev, q)
    for d in range(thetas.shape[0]):
        _, s = apply_theta(thetas[d], *tdims, tau, corr, sinv)
        _tree_block(rng, TOP, data, sinv, croff, 1.0 / (s * s), u, beta, r, bufs, SAMPLE)
        record_draw(d, kept_pos, beta, s, tau, corr, u, outs, q, nlev, uoff, xoff)


class _Target:
    """``log_posteriors`` as the Laplace fit of :mod:`skhier._engines.pooled` expects
    it: vectorized over rows, with a start and a dimension."""

    family = "normal"

    def __init__(self, args, dim, start, n_threads=1):
        self.args, self.dim, self._start, self.n_threads = args, dim, start, n_threads

    def start(self):
        return self._start.copy()

    def __call__(self, thetas):
        thetas = np.ascontiguousarray(np.atleast_2d(thetas), dtype=np.float64)
        out = np.empty(len(thetas))
        n_parts = min(self.n_threads, max(len(thetas) // 64, 1))
        bounds = np.linspace(0, len(thetas), n_parts + 1).astype(int)

        def part(k):  # (the kernel releases the GIL: the parts run in parallel)
            lo, hi = bounds[k], bounds[k + 1]
            log_posteriors(thetas[lo:hi], *self.args, out[lo:hi])

        thread_map(part, range(n_parts), n_parts)
        return out


def sample(lay, data, priors, one_tree, spec, config, rng, outs, kept_pos):
    """Importance sampling of a one-tree Gaussian model into the Gibbs engine's
    output arrays ``outs`` (one per chain, as :func:`run_chain` fills them).
    Returns the inference record (``method``, ``pareto_k``, ``ess``), or None when
    the weights are unreliable (``k_hat > 0.7``) or the mode is not well defined:
    the caller then runs the Gibbs sampler."""
    from skhier._engines.collapsed.importance import adaptive_importance
    from skhier._engines.pooled import _mode_and_scale

    p = lay.F.shape[1]
    correlated = priors[3]
    thoff = theta_offsets(lay.q, correlated)
    dim = int(thoff[-1]) + 1
    start = np.zeros(dim)  # SDs of 0.5 and a noise SD of 0.7 on the standardized scale
    for f in range(len(lay.q)):
        start[thoff[f] : thoff[f] + lay.q[f]] = np.log(0.5)
    start[-1] = np.log(0.7)
    n_threads = os.cpu_count() or 1
    target = _Target((rng, data, lay.croff, priors, one_tree, p), dim, start, n_threads)
    try:
        with np.errstate(all="ignore"):
            mode, chol = _mode_and_scale(target)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not (np.all(np.isfinite(mode)) and np.all(np.isfinite(chol))):
        return None
    n_chains, n_draws = int(config.chains), int(config.draws)
    n = n_chains * n_draws * _PROPOSALS_PER_DRAW

    thetas, info = adaptive_importance(
        target, mode, chol, n, n_chains * n_draws, rng, vectorized=True, df=_DF
    )
    info["method"] = "importance"
    if thetas is None:
        return info
    thetas = np.ascontiguousarray(thetas.reshape(n_chains, n_draws, dim))
    rngs = rng.spawn(n_chains)

    def chain(c):  # one "chain" of resampled draws per thread (the GIL released)
        exact_draws(thetas[c], rngs[c], data, lay.croff, priors, one_tree, p, kept_pos,
                    tuple(o[c] for o in outs))  # fmt: skip

    thread_map(chain, range(n_chains), n_threads)
    return info
