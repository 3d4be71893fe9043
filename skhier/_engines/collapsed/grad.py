"""The two passes over the groups of the collapsed density, specialized for small q.

:func:`skhier._engines.collapsed.kernels.log_density_and_grad` spends nearly all its time in two
loops over the groups doing tiny q x q work:

1. :func:`group_pass1`: per group the Cholesky factor ``L_g`` of
   ``M_g = Sigma^{-1} + Z'Z / s^2``, ``H_g = L_g^{-1} Z'W / s^2`` (to form
   ``g = W'V^{-1}W``), ``A_g = L_g^{-T} H_g = M_g^{-1} Z'W / s^2`` (kept for the
   second pass) and ``sum_g M_g^{-1}``;
2. :func:`group_pass2`: once ``beta_hat`` and ``L_P`` are known,
   ``S_u = sum_g M_g^{-1} + A_g Omega A_g'`` with
   ``Omega = w w' + [[P^{-1}, 0], [0, 0]]`` and ``w = (-beta_hat, 1)``, i.e.
   ``sum_g ubar ubar' + M^{-1} + K P^{-1} K'`` with ``ubar_g = A_g w`` and
   ``K_g = A_g[:, :p]``.  ``Omega = B B'`` with ``B = [w, [L_P^{-T}; 0]]``, so
   each group adds ``R R'`` with ``R = A_g B``.

Each pass is compiled for a few shape classes with the sizes as compile-time
constants, so LLVM unrolls the tiny loops: ``(q, p + 1) = (k, k + 1)`` for
``2 <= k <= 4`` (random slopes on every feature, the default), ``q = 1`` (random
intercepts) and ``q = 2`` with any ``p``, and a general fallback.  On 2,000
groups a fixed q makes the passes about 2x faster, fixed q and p about 3x; each
class costs a few seconds of numba's one-time compilation, hence only these, and
the class is chosen in Python (:func:`shape_class`): :func:`pass1_of` and
:func:`pass2_of` are inlined where the class is a compile-time constant, so a
fit compiles its own class only.  :func:`group_pass1` and :func:`group_pass2`
choose at run time (every class compiles with them).
"""

from __future__ import annotations

import numpy as np

from skhier._numba.jit import specialized
from skhier._numba.linalg import _njit, _njit_inline, group_factor, scaled


def _make_passes(Q, PP1):
    """Both passes with ``q = Q`` and ``p + 1 = PP1`` fixed (0: read from the data)."""

    @_njit
    @specialized(Q, PP1)
    def pass1(zz, zw, ww, sigma_inv, inv_s2):
        n_groups = zw.shape[0]
        q = Q if Q > 0 else zw.shape[1]
        pp1 = PP1 if PP1 > 0 else zw.shape[2]
        g = scaled(ww, inv_s2)
        amat = np.empty((n_groups, q, pp1))
        msum = np.zeros((q, q))
        lg = np.zeros((q, q))
        rg = np.empty(q)
        hg = np.empty((q, pp1))
        li = np.zeros((q, q))
        logdet = 0.0
        for gi in range(n_groups):  # L_g, H_g and g -= H_g'H_g
            det = group_factor(q, pp1, zz[gi], zw[gi], sigma_inv, inv_s2, lg, rg, hg, g)
            logdet += np.log(det)
            for a in range(pp1):  # A_g = L_g^{-T} H_g
                for i in range(q - 1, -1, -1):
                    acc = hg[i, a]
                    for k in range(i + 1, q):
                        acc -= lg[k, i] * amat[gi, k, a]
                    amat[gi, i, a] = acc * rg[i]
            for c in range(q):  # L_g^{-1}, then M_g^{-1} = L_g^{-T} L_g^{-1} (lower)
                li[c, c] = rg[c]
                for i in range(c + 1, q):
                    acc = 0.0
                    for k in range(c, i):
                        acc -= lg[i, k] * li[k, c]
                    li[i, c] = acc * rg[i]
            for j in range(q):
                for k in range(j + 1):
                    acc = 0.0
                    for m in range(j, q):
                        acc += li[m, j] * li[m, k]
                    msum[j, k] += acc
        return g, logdet, msum, amat

    @_njit
    @specialized(Q, PP1)
    def pass2(amat, beta, lp_inv, su):
        n_groups = amat.shape[0]
        q = Q if Q > 0 else amat.shape[1]
        pp1 = PP1 if PP1 > 0 else amat.shape[2]
        p = pp1 - 1
        r = np.empty((q, pp1))
        for gi in range(n_groups):
            for j in range(q):
                acc = amat[gi, j, p]  # ubar_g = A_g w
                for a in range(p):
                    acc -= amat[gi, j, a] * beta[a]
                r[j, 0] = acc
                for m in range(p):  # K_g L_P^{-T}
                    acc = 0.0
                    for a in range(m + 1):
                        acc += amat[gi, j, a] * lp_inv[m, a]
                    r[j, m + 1] = acc
            for j in range(q):
                for k in range(j + 1):
                    acc = 0.0
                    for c in range(pp1):
                        acc += r[j, c] * r[k, c]
                    su[j, k] += acc

    return pass1, pass2


#: the compiled shape classes ``(Q, PP1)`` (see :func:`shape_class`)
SHAPE_CLASSES = ((2, 3), (3, 4), (4, 5), (1, 0), (2, 0), (0, 0))

_P1_23, _P2_23 = _make_passes(2, 3)
_P1_34, _P2_34 = _make_passes(3, 4)
_P1_45, _P2_45 = _make_passes(4, 5)
_P1_10, _P2_10 = _make_passes(1, 0)
_P1_20, _P2_20 = _make_passes(2, 0)
_P1_00, _P2_00 = _make_passes(0, 0)


def shape_class(q, pp1):
    """The compiled shape class ``(Q, PP1)`` of the data's ``(q, p + 1)`` (0: general)."""
    if pp1 == q + 1 and 2 <= q <= 4:
        return q, pp1
    if q in (1, 2):
        return q, 0
    return 0, 0


@_njit
def group_pass1(zz, zw, ww, sigma_inv, inv_s2):
    """First pass: ``(g, sum_g log|L_g|, sum_g M_g^{-1} (lower), A)``, A (G, q, p + 1).

    ``g = W'V^{-1}W`` has its upper triangle valid."""
    q, pp1 = zw.shape[1], zw.shape[2]
    if pp1 == q + 1:
        if q == 2:
            return _P1_23(zz, zw, ww, sigma_inv, inv_s2)
        if q == 3:
            return _P1_34(zz, zw, ww, sigma_inv, inv_s2)
        if q == 4:
            return _P1_45(zz, zw, ww, sigma_inv, inv_s2)
    if q == 1:
        return _P1_10(zz, zw, ww, sigma_inv, inv_s2)
    if q == 2:
        return _P1_20(zz, zw, ww, sigma_inv, inv_s2)
    return _P1_00(zz, zw, ww, sigma_inv, inv_s2)


@_njit
def group_pass2(amat, beta, lp_inv, su):
    """Second pass: adds ``sum_g A_g Omega A_g'`` to the lower triangle of ``su``."""
    q, pp1 = amat.shape[1], amat.shape[2]
    if pp1 == q + 1:
        if q == 2:
            return _P2_23(amat, beta, lp_inv, su)
        if q == 3:
            return _P2_34(amat, beta, lp_inv, su)
        if q == 4:
            return _P2_45(amat, beta, lp_inv, su)
    if q == 1:
        return _P2_10(amat, beta, lp_inv, su)
    if q == 2:
        return _P2_20(amat, beta, lp_inv, su)
    return _P2_00(amat, beta, lp_inv, su)


@_njit_inline
def pass1_of(Q, PP1, zz, zw, ww, sigma_inv, inv_s2):
    """:func:`group_pass1` of the shape class ``(Q, PP1)`` (:func:`shape_class`);
    ``Q < 0``: the class of the data, chosen at run time.  Inlined: with ``Q`` and
    ``PP1`` constants in the caller, only their class is compiled."""
    if Q < 0:
        return group_pass1(zz, zw, ww, sigma_inv, inv_s2)
    if Q == 2 and PP1 == 3:
        return _P1_23(zz, zw, ww, sigma_inv, inv_s2)
    if Q == 3 and PP1 == 4:
        return _P1_34(zz, zw, ww, sigma_inv, inv_s2)
    if Q == 4 and PP1 == 5:
        return _P1_45(zz, zw, ww, sigma_inv, inv_s2)
    if Q == 1:
        return _P1_10(zz, zw, ww, sigma_inv, inv_s2)
    if Q == 2:
        return _P1_20(zz, zw, ww, sigma_inv, inv_s2)
    return _P1_00(zz, zw, ww, sigma_inv, inv_s2)


@_njit_inline
def pass2_of(Q, PP1, amat, beta, lp_inv, su):
    """:func:`group_pass2` of the shape class ``(Q, PP1)``, as :func:`pass1_of`."""
    if Q < 0:
        return group_pass2(amat, beta, lp_inv, su)
    if Q == 2 and PP1 == 3:
        return _P2_23(amat, beta, lp_inv, su)
    if Q == 3 and PP1 == 4:
        return _P2_34(amat, beta, lp_inv, su)
    if Q == 4 and PP1 == 5:
        return _P2_45(amat, beta, lp_inv, su)
    if Q == 1:
        return _P2_10(amat, beta, lp_inv, su)
    if Q == 2:
        return _P2_20(amat, beta, lp_inv, su)
    return _P2_00(amat, beta, lp_inv, su)
