"""Exact conditional draws of the collapsed engine, compiled per shape class.

After sampling, every posterior draw of ``(Sigma, s)`` gets one exact draw of the
integrated-out ``beta`` and group effects (the algebra of
:func:`skhier._engines.collapsed.reference.draw_conditional`), in two passes so that no array of
all draws x all groups is ever needed:

1. :func:`population_kernel_for` - ``beta`` for every draw: per group
   ``L_g = chol(M_g)`` and ``H_g = L_g^{-1} Z'W / s^2`` update the Schur
   complement ``W'V^{-1}W``; then ``beta = P^{-1} c + L_P^{-T} e``.  Nothing per
   group is stored.
2. :func:`group_kernel_for` - given ``beta``, the effects of a block of groups for
   every draw: ``u_g = L_g^{-T} (L_g^{-1} Z'(y - F beta) / s^2 + e_g)``.
   :func:`group_draws_in_chunks` yields them a block of groups at a time, so the
   caller reduces each block (moments, intervals, the stored draws) and lets it go.

The sizes ``(q, p + 1)`` are fixed at compile time for the shape classes of
:mod:`skhier._engines.collapsed.grad` (so LLVM unrolls the tiny per-group loops), and only
the class a fit uses is ever compiled.  The kernels are serial and release the
GIL; threads run them over blocks of draws.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

from skhier._engines.collapsed.grad import shape_class
from skhier._engines.collapsed.reference import draw_conditional
from skhier._numba.jit import specialized
from skhier._numba.linalg import (
    _njit,
    _precision,
    back_substitute,
    group_chol,
    group_factor,
    numba,
    population_factor,
    scaled,
    shifted_column,
)
from skhier._util.threads import thread_map

#: draws per task of the thread pool (fixed, so results do not depend on threads)
DRAW_BLOCK = 128


def _make_kernels(Q, PP1):
    """Both passes with ``q = Q`` and ``p + 1 = PP1`` fixed (0: read from the data)."""

    @_njit
    @specialized(Q, PP1)
    def population(zz, zw, ww, prior_sd, chol_cov, s, e_beta, beta_out):
        n_draws, n_groups = s.shape[0], zw.shape[0]
        q = Q if Q > 0 else zw.shape[1]
        pp1 = PP1 if PP1 > 0 else zw.shape[2]
        p = pp1 - 1
        failed = np.zeros(n_draws, dtype=np.bool_)
        sigma_inv = np.empty((q, q))
        lg = np.zeros((q, q))
        rg = np.empty(q)
        hg = np.empty((q, pp1))
        lp = np.zeros((p, p))
        lp_rdiag = np.empty(p)
        beta = np.empty((p, 1))
        for d in range(n_draws):
            inv_s2 = 1.0 / s[d] ** 2
            _precision(chol_cov[d], sigma_inv)
            g = scaled(ww, inv_s2)
            for gi in range(n_groups):  # g -= H_g'H_g
                group_factor(q, pp1, zz[gi], zw[gi], sigma_inv, inv_s2, lg, rg, hg, g)
            ok, _, v, _ = population_factor(g, prior_sd, lp, lp_rdiag)
            failed[d] = not ok
            if ok:
                back_substitute(lp, lp_rdiag, shifted_column(v, e_beta[d]), beta)
                for a in range(p):  # (a loop: see _kernels_linalg.scaled)
                    beta_out[d, a] = beta[a, 0]
        return failed

    @_njit
    @specialized(Q, PP1)
    def groups(zz, zw, sigma_inv, inv_s2, beta, rng, u_out, first):
        n_groups, n_draws = zw.shape[0], inv_s2.shape[0]
        q = Q if Q > 0 else zw.shape[1]
        pp1 = PP1 if PP1 > 0 else zw.shape[2]
        p = pp1 - 1
        lg = np.zeros((q, q))
        rg = np.empty(q)
        rhs = np.empty(q)
        ud = np.empty(q)
        for gi in range(n_groups):  # group-major: each group's draws are contiguous
            zzg, zwg = zz[gi], zw[gi]
            for d in range(n_draws):
                group_chol(q, zzg, sigma_inv[d], inv_s2[d], lg, rg)
                bd = beta[d]
                for i in range(q):  # L^{-1} Z'(y - F beta) / s^2 + e
                    acc = zwg[i, p]
                    for a in range(p):
                        acc -= zwg[i, a] * bd[a]
                    acc *= inv_s2[d]
                    for k in range(i):
                        acc -= lg[i, k] * rhs[k]
                    rhs[i] = acc * rg[i]
                for i in range(q):
                    rhs[i] += rng.standard_normal()
                for i in range(q - 1, -1, -1):  # L^{-T}
                    acc = rhs[i]
                    for k in range(i + 1, q):
                        acc -= lg[k, i] * ud[k]
                    ud[i] = acc * rg[i]
                    u_out[gi, i, first + d] = ud[i]

    return population, groups


@cache
def _kernels_of_class(Q, PP1):
    return _make_kernels(Q, PP1)


def population_kernel_for(q, pp1):
    """Pass 1 for ``q`` group effects and ``p + 1 = pp1``: ``(zz, zw, ww,
    prior_sd, chol_cov, s, e_beta, beta_out) -> failed``, exact draws of ``beta``
    given ``(Sigma, s)`` from standard normals ``e_beta`` (S, p); ``failed`` marks
    draws whose ``P`` was numerically indefinite (nothing written for them)."""
    return _kernels_of_class(*shape_class(q, pp1))[0]


def group_kernel_for(q, pp1):
    """Pass 2: ``(zz, zw, sigma_inv, inv_s2, beta, rng, u_out, first)``, exact
    draws of the effects of the groups in ``zz``/``zw`` given ``(Sigma^{-1}, 1 /
    s^2, beta)`` per draw, in group-major layout: draw ``d`` goes to ``u_out[:, :,
    first + d]`` (``u_out`` (c, q, S) whole, so that its type never depends on the
    number of draws); the standard normals come from the
    :class:`numpy.random.Generator` ``rng`` (group by group, draw by draw)."""
    return _kernels_of_class(*shape_class(q, pp1))[1]


def _n_threads():
    return numba.get_num_threads() if numba is not None else 1


def draw_population(stats, chol_cov, s, prior_sd, rng):
    """Exact draws of ``beta`` (S, p), one per posterior draw of ``(Sigma, s)``."""
    n_groups, q, pp1 = stats.zw.shape
    kernel = population_kernel_for(q, pp1)
    e_beta = rng.standard_normal((len(s), pp1 - 1))
    beta = np.empty_like(e_beta)

    def run(a):
        sl = slice(a, a + DRAW_BLOCK)
        args = (stats.zz, stats.zw, stats.ww, prior_sd, chol_cov[sl], s[sl], e_beta[sl])
        return kernel(*args, beta[sl])

    failed = np.concatenate(thread_map(run, range(0, len(s), DRAW_BLOCK), _n_threads()))
    if failed.any():  # P numerically indefinite: the reference floors its eigenvalues
        idx = np.flatnonzero(failed)
        beta[idx] = draw_conditional(stats, chol_cov[idx], s[idx], prior_sd, rng)[0]
    return beta


def group_draws_in_chunks(stats, chol_cov, s, beta, rng, max_bytes=32 * 2**20):
    """Yield ``(start, u)``: exact draws ``u`` (c, q, S) of the effects of the groups
    ``start:start + c`` for every posterior draw (group-major: a group's draws are
    contiguous), a block of groups at a time (each block about ``max_bytes``).  The
    random numbers of each (block of groups, block of draws) come from their own
    stream, so the draws do not depend on the number of threads."""
    n_groups, q, pp1 = stats.zw.shape
    kernel = group_kernel_for(q, pp1)
    n_draws = len(s)
    inv_chol = np.linalg.inv(chol_cov)
    sigma_inv = np.ascontiguousarray(np.swapaxes(inv_chol, -1, -2) @ inv_chol)
    inv_s2 = 1.0 / s**2
    chunk = max(1, int(max_bytes // (8 * n_draws * q)))
    root = int(rng.integers(2**63))
    with ThreadPoolExecutor(_n_threads()) as pool:
        for ci, start in enumerate(range(0, n_groups, chunk)):
            sl = slice(start, start + chunk)
            zz, zw = stats.zz[sl], stats.zw[sl]
            u = np.empty((zz.shape[0], q, n_draws))

            def run(a, ci=ci, zz=zz, zw=zw, u=u):
                ds = slice(a, a + DRAW_BLOCK)
                rng_block = np.random.default_rng((root, ci, a))
                kernel(zz, zw, sigma_inv[ds], inv_s2[ds], beta[ds], rng_block, u, a)

            list(pool.map(run, range(0, n_draws, DRAW_BLOCK)))
            yield start, u
