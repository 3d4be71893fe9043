"""The collapsed Gaussian model in plain numpy.

For one grouping factor and a Gaussian likelihood, the group effects ``u_g``
and the population coefficients ``beta`` can be integrated out analytically.
With ``V_g = s^2 I + Z_g Sigma Z_g'`` (``Sigma`` the covariance of the group
effects: ``diag(tau^2)`` for independent effects, full for correlated ones)
Woodbury and the matrix determinant lemma give, per group,

    V_g^{-1} = s^{-2} I - s^{-4} Z_g M_g^{-1} Z_g',    M_g = Sigma^{-1} + Z_g'Z_g / s^2
    log|V_g| = n_g log s^2 + log|Sigma| + log|M_g|

so every quantity needs only the per-group cross products of ``[Z_g, W_g]``
where ``W_g = [F_g, y_g]``.  Summing ``W_g' V_g^{-1} W_g`` over groups gives
``A = F'V^{-1}F``, ``c = F'V^{-1}y`` and ``d = y'V^{-1}y``; with the prior
``beta ~ N(0, S0)`` and ``P = A + S0^{-1}``,

    log p(y | Sigma, s) = -1/2 [N log 2 pi + sum_g log|V_g| + d - c'P^{-1}c
                              + log|P| + log|S0|].

Given the variance parameters, ``beta | y ~ N(P^{-1} c, P^{-1})`` and
``u_g | beta, y ~ N(M_g^{-1} Z_g'(y_g - F_g beta) / s^2, M_g^{-1})`` exactly.

This module is the numerical reference (tests compare it with a dense
multivariate normal density and with the PyTensor graph the sampler uses) and
it draws the integrated-out parameters for every posterior draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skhier._data.weights import weighted_rows

_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class SufficientStats:
    """Per-group cross products of the (standardized) design.

    Attributes
    ----------
    n : ndarray of shape (n_groups,)
        Rows per group.
    zz : ndarray of shape (n_groups, q, q)
        ``Z_g' Z_g``.
    zw : ndarray of shape (n_groups, q, p + 1)
        ``Z_g' [F_g, y_g]``.
    ww : ndarray of shape (p + 1, p + 1)
        ``sum_g [F_g, y_g]' [F_g, y_g]``.
    """

    n: np.ndarray
    zz: np.ndarray
    zw: np.ndarray
    ww: np.ndarray

    @property
    def n_obs(self) -> float:
        """How many observations the rows stand for (frequency weights summed)."""
        return float(self.n.sum())


def sufficient_stats(F, Z, y, codes, n_groups, chunk_size=200_000, weights=None):
    """Accumulate the sufficient statistics in one chunked pass over the rows
    (``weights``: the rows' frequency weights; each cross product weighted by them)."""
    p, q = F.shape[1], Z.shape[1]
    n = np.bincount(codes, weights=weights, minlength=n_groups).astype(np.float64)
    if weights is not None:
        F, Z, y = weighted_rows(weights, F, Z, y)
    zz = np.zeros((n_groups, q, q))
    zw = np.zeros((n_groups, q, p + 1))
    ww = np.zeros((p + 1, p + 1))
    for start in range(0, len(y), chunk_size):
        sl = slice(start, start + chunk_size)
        w = np.column_stack([F[sl], y[sl]])
        z = Z[sl]
        c = codes[sl]
        ww += w.T @ w
        for i in range(q):
            zi = z[:, i]
            for j in range(i, q):
                zz[:, i, j] += np.bincount(c, weights=zi * z[:, j], minlength=n_groups)
            for j in range(p + 1):
                zw[:, i, j] += np.bincount(c, weights=zi * w[:, j], minlength=n_groups)
    iu = np.triu_indices(q, 1)
    zz[:, iu[1], iu[0]] = zz[:, iu[0], iu[1]]
    return SufficientStats(n=n, zz=zz, zw=zw, ww=ww)


def diagonal_chol(tau):
    """Cholesky factors ``diag(tau)`` of independent effects' covariances, (S, q, q)."""
    tau = np.atleast_2d(tau)
    return tau[..., :, None] * np.eye(tau.shape[-1])


def _group_factors(stats, chol_cov, s):
    """Cholesky factors of ``M_g`` and ``H_g = L_g^{-1} Z_g'W_g / s^2``.

    ``chol_cov`` (S, q, q) holds Cholesky factors of ``Sigma`` and ``s`` has shape
    (S,); results carry a leading draw axis: L (S, G, q, q), H (S, G, q, p + 1).
    """
    s2 = (s**2)[:, None, None, None]
    inv = np.linalg.inv(chol_cov)
    m = stats.zz[None] / s2 + (np.swapaxes(inv, -1, -2) @ inv)[:, None]
    chol = np.linalg.cholesky(m)
    rhs = np.broadcast_to(stats.zw[None] / s2, m.shape[:-1] + (stats.zw.shape[-1],))
    h = np.linalg.solve(chol, rhs)
    return chol, h


def log_marginal(stats, chol_cov, s, prior_sd):
    """Collapsed log likelihood ``log p(y | Sigma, s)`` for a batch of draws.

    Parameters
    ----------
    stats : SufficientStats
    chol_cov : ndarray of shape (S, q, q)
        Cholesky factors of the group-effect covariance ``Sigma``.
    s : ndarray of shape (S,)
        Noise standard deviation.
    prior_sd : ndarray of shape (p,)
        Prior standard deviations of the population coefficients (mean 0).

    Returns
    -------
    ndarray of shape (S,)
    """
    s = np.atleast_1d(s)
    chol, h = _group_factors(stats, chol_cov, s)
    p = len(prior_sd)
    n_groups = stats.zz.shape[0]
    logdet_v = (
        stats.n_obs * np.log(s**2)
        + n_groups * 2.0 * np.log(np.diagonal(chol_cov, axis1=-2, axis2=-1)).sum(axis=1)
        + 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=(1, 2))
    )
    g = stats.ww[None] / (s**2)[:, None, None] - np.einsum("sgia,sgib->sab", h, h)
    prec = g[:, :p, :p] + np.diag(1.0 / prior_sd**2)[None]
    c = g[:, :p, p]
    lp = np.linalg.cholesky(prec)
    v = np.linalg.solve(lp, c[..., None])[..., 0]
    logdet_p = 2.0 * np.log(np.diagonal(lp, axis1=-2, axis2=-1)).sum(axis=1)
    logdet_s0 = 2.0 * np.log(prior_sd).sum()
    quad = g[:, p, p] - (v**2).sum(axis=1)
    return -0.5 * (stats.n_obs * _LOG_2PI + logdet_v + quad + logdet_p + logdet_s0)


def draw_conditional(stats, chol_cov, s, prior_sd, rng):
    """Exact draws of ``beta`` and of the group effects given ``(Sigma, s)``.

    Returns
    -------
    beta : ndarray of shape (S, p)
    u : ndarray of shape (S, G, q)
    """
    s = np.atleast_1d(s)
    chol, h = _group_factors(stats, chol_cov, s)
    p = len(prior_sd)
    n_draws, n_groups, q = chol.shape[0], chol.shape[1], chol.shape[2]
    g = stats.ww[None] / (s**2)[:, None, None] - np.einsum("sgia,sgib->sab", h, h)
    prec = g[:, :p, :p] + np.diag(1.0 / prior_sd**2)[None]
    lp = _cholesky_floor(prec, float(np.min(1.0 / prior_sd**2)))
    # beta = P^{-1} c + L_P^{-T} e
    v = np.linalg.solve(lp, g[:, :p, p][..., None])
    e = rng.standard_normal((n_draws, p, 1))
    beta = _solve_upper(np.swapaxes(lp, -1, -2), v + e)[..., 0]
    # u_g | beta: mean M^{-1} Z'(y - F beta)/s^2 = L^{-T} (h_y - h_F beta)
    hb = h[..., p] - np.einsum("sgqa,sa->sgq", h[..., :p], beta)
    e = rng.standard_normal((n_draws, n_groups, q))
    u = _solve_upper(np.swapaxes(chol, -1, -2), (hb + e)[..., None])[..., 0]
    return beta, u


def _cholesky_floor(prec, floor):
    """Cholesky factor of ``P = F'V^{-1}F + S0^{-1}``, robust to rounding.

    ``F'V^{-1}F`` is a difference of nearly equal terms when the noise SD is
    tiny, so rounding can push ``P`` below its exact lower bound ``S0^{-1}``.
    Since ``P >= S0^{-1}`` in the Loewner order, eigenvalues below
    ``lambda_min(S0^{-1})`` are pure rounding error and are raised to it.
    """
    try:
        return np.linalg.cholesky(prec)
    except np.linalg.LinAlgError:
        sym = 0.5 * (prec + np.swapaxes(prec, -1, -2))
        w, v = np.linalg.eigh(sym)
        fixed = (v * np.maximum(w, floor)[..., None, :]) @ np.swapaxes(v, -1, -2)
        return np.linalg.cholesky(fixed)


def _solve_upper(upper, rhs):
    """Batched solve with an upper-triangular matrix (back substitution)."""
    n = upper.shape[-1]
    out = np.empty(np.broadcast_shapes(upper.shape[:-1], rhs.shape[:-1]) + rhs.shape[-1:])
    for i in range(n - 1, -1, -1):
        acc = rhs[..., i, :]
        if i + 1 < n:
            acc = acc - np.einsum("...k,...kr->...r", upper[..., i, i + 1 :], out[..., i + 1 :, :])
        out[..., i, :] = acc / upper[..., i, i][..., None]
    return out
