"""Exact conditional draws of the collapsed engine, compiled per shape class.

After NUTS, every posterior draw of ``(Sigma, s)`` gets one exact draw of the
integrated-out ``beta`` and group effects (the algebra of
:func:`skhier._collapsed.draw_conditional`): per group ``L_g = chol(M_g)`` and
``H_g = L_g^{-1} Z'W / s^2``, then ``beta`` from ``P`` and each
``u_g = L_g^{-T} (H_g w + e_g)`` with ``w = (-beta, 1)``.  This is the
arithmetic of :func:`skhier._kernels.draw_one`, with the sizes ``(q, p + 1)``
fixed at compile time for the shape classes of :mod:`skhier._kernels_grad`
(so LLVM unrolls the tiny per-group loops) and :func:`draws_for` choosing the
class in Python: only the class a fit uses is ever compiled.

The kernel is serial and releases the GIL; :func:`draw_in_chunks` runs it in
threads over slices of the draws.  (A numba ``parallel=True`` kernel does the
same but doubles its one-time compilation.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

from ._collapsed import draw_conditional
from ._kernels_grad import shape_class
from ._kernels_linalg import (
    _njit,
    _precision,
    back_substitute,
    group_factor,
    numba,
    population_factor,
)


def _make_draws(Q, PP1):
    """Exact draws with ``q = Q`` and ``p + 1 = PP1`` fixed (0: read from the data)."""

    @_njit
    def draws(zz, zw, ww, prior_sd, chol_cov, s, e_beta, e_u, beta_out, u_out):
        n_draws, n_groups = s.shape[0], zw.shape[0]
        q = Q if Q > 0 else zw.shape[1]
        pp1 = PP1 if PP1 > 0 else zw.shape[2]
        p = pp1 - 1
        failed = np.zeros(n_draws, dtype=np.bool_)
        for d in range(n_draws):
            inv_s2 = 1.0 / s[d] ** 2
            sigma_inv = np.empty((q, q))
            _precision(chol_cov[d], sigma_inv)
            chol = np.zeros((n_groups, q, q))
            rdiag = np.empty((n_groups, q))
            h = np.empty((n_groups, q, pp1))
            g = ww * inv_s2
            for gi in range(n_groups):  # L_g, H_g and g -= H_g'H_g
                group_factor(
                    q, pp1, zz[gi], zw[gi], sigma_inv, inv_s2, chol[gi], rdiag[gi], h[gi], g
                )
            lp = np.zeros((p, p))
            lp_rdiag = np.empty(p)
            ok, _, v, _ = population_factor(g, prior_sd, lp, lp_rdiag)
            failed[d] = not ok
            if not ok:
                continue
            beta = np.empty((p, 1))
            back_substitute(lp, lp_rdiag, (v + e_beta[d]).reshape((p, 1)), beta)
            beta_out[d] = beta[:, 0]
            rhs = np.empty(q)
            for gi in range(n_groups):  # u_g = L_g^{-T} (H_g w + e_g)
                lg, rg, hg, ud = chol[gi], rdiag[gi], h[gi], u_out[d, gi]
                for i in range(q):
                    acc = hg[i, p] + e_u[d, gi, i]
                    for a in range(p):
                        acc -= hg[i, a] * beta[a, 0]
                    rhs[i] = acc
                for i in range(q - 1, -1, -1):
                    acc = rhs[i]
                    for k in range(i + 1, q):
                        acc -= lg[k, i] * ud[k]
                    ud[i] = acc * rg[i]
        return failed

    return draws


@cache
def _draws_of_class(Q, PP1):
    return _make_draws(Q, PP1)


def draws_for(q, pp1):
    """The draw kernel for ``q`` group effects and ``p + 1 = pp1``.

    Signature ``(zz, zw, ww, prior_sd, chol_cov, s, e_beta, e_u, beta_out,
    u_out) -> failed``: exact draws of ``beta`` and the group effects given
    ``(Sigma, s)`` for each posterior draw, from standard normals
    ``e_beta`` (S, p) and ``e_u`` (S, G, q); ``chol_cov`` (S, q, q) holds the
    Cholesky factors of ``Sigma``.  Returns a boolean mask of draws whose ``P`` was
    numerically indefinite (nothing written for them: left for the caller to redo
    with the eigenvalue-floored reference).
    """
    return _draws_of_class(*shape_class(q, pp1))


def draw_in_chunks(stats, chol_cov, s, prior_sd, rng, max_bytes=64 * 2**20):
    """Exact conditional draws of ``beta`` (S, p) and ``u`` (S, G, q) for every
    posterior draw: ``chol_cov`` (S, q, q) and ``s`` (S,).

    The standard normals come in blocks of ``block`` draws (``e_beta``, then
    ``e_u``; the draws depend on this order and on ``block``'s formula, so both
    stay as they were); the kernel runs on several blocks at once, in threads.
    A batch with a numerically indefinite ``P`` is redone block by block, in the
    order of the random numbers."""
    n_groups, q, pp1 = stats.zw.shape
    p = pp1 - 1
    block = max(1, int(max_bytes // (8 * n_groups * q * (q + 2 * pp1 + 2))))
    batch = block * max(1, int(max_bytes // (8 * n_groups * q * block)))
    kernel = draws_for(q, pp1)
    beta = np.empty((len(s), p))
    u = np.empty((len(s), n_groups, q))
    n_threads = numba.get_num_threads() if numba is not None else 1
    with ThreadPoolExecutor(n_threads) as pool:
        for start in range(0, len(s), batch):
            stop = min(start + batch, len(s))
            state = rng.bit_generator.state
            e_beta = np.empty((stop - start, p))
            e_u = np.empty((stop - start, n_groups, q))
            for b in range(0, stop - start, block):
                rng.standard_normal(out=e_beta[b : b + block])
                rng.standard_normal(out=e_u[b : b + block])

            def run(a, b, start=start, e_beta=e_beta, e_u=e_u):  # the draws a:b
                sl, el = slice(a, b), slice(a - start, b - start)
                args = (stats.zz, stats.zw, stats.ww, prior_sd, chol_cov[sl], s[sl])
                return kernel(*args, e_beta[el], e_u[el], beta[sl], u[sl]).any()

            cuts = np.linspace(start, stop, n_threads + 1).astype(int)
            if any(list(pool.map(run, cuts[:-1], cuts[1:]))):  # all done first
                rng.bit_generator.state = state
                for b in range(start, stop, block):
                    _draw_block(kernel, stats, chol_cov, s, prior_sd, rng, beta, u, b, block)
    return beta, u


def _draw_block(kernel, stats, chol_cov, s, prior_sd, rng, beta, u, start, block):
    sl = slice(start, start + block)
    e_beta = rng.standard_normal(beta[sl].shape)
    e_u = rng.standard_normal(u[sl].shape)
    args = (stats.zz, stats.zw, stats.ww, prior_sd, chol_cov[sl], s[sl])
    failed = kernel(*args, e_beta, e_u, beta[sl], u[sl])
    if failed.any():  # P numerically indefinite: the reference floors its eigenvalues
        idx = np.flatnonzero(failed) + start
        beta[idx], u[idx] = draw_conditional(stats, chol_cov[idx], s[idx], prior_sd, rng)
