"""Pure-numpy prediction from a :class:`~skhier._posterior.one_factor.Posterior`.

Every prediction method goes through two primitives:

* :func:`linear_moments` - exact posterior mean and variance of
  ``E[y | x, group] = a[g] + x @ b[g]`` from the per-group posterior moments
  (no draws, O(rows)).  For a new group the law of total variance adds the
  between-group spread: ``Var = x' Cov(mu) x + x' E[Sigma] x`` with ``x = [1, x]``
  and ``Sigma`` the covariance of the group effects.
* :func:`predictive_draws` - posterior predictive draws for a block of rows,
  where the rows of one new group share one drawn group effect per draw.

Rows are processed in chunks so no (rows x draws) matrix of the full input is
ever held at once.
"""

from __future__ import annotations

import numpy as np

from skhier._model.likelihoods import of_posterior

#: bound on the values of one block of rows' draws held at once (~64 MB of float64)
CHUNK_ELEMENTS = 2**23


def row_blocks(n_rows, n_draws, width=1):
    """Slices of the rows, each small enough that ``width`` arrays of its draws
    (rows x ``n_draws``) fit in :data:`CHUNK_ELEMENTS` values."""
    step = max(1, CHUNK_ELEMENTS // max(n_draws * width, 1))
    for start in range(0, n_rows, step):
        yield slice(start, start + step)


def equal_tailed(draws, prob):
    """The equal-tailed ``prob`` interval of each row of ``draws`` (n, S): (n, 2)."""
    tail = (1.0 - prob) / 2.0
    return np.quantile(draws, [tail, 1.0 - tail], axis=1).T


def interval_by_blocks(draw_rows, n_rows, n_draws, prob, width=1):
    """Equal-tailed intervals per row, from ``draw_rows(slice)`` -> draws (rows,
    ``n_draws``) made a block of rows at a time (see :func:`row_blocks`)."""
    out = np.empty((n_rows, 2))
    for sl in row_blocks(n_rows, n_draws, width):
        out[sl] = equal_tailed(draw_rows(sl), prob)
    return out


def _design(X):
    return np.hstack([np.ones((X.shape[0], 1)), X])


def linear_moments(post, X, codes, is_new, with_var=True):
    """Posterior mean and variance (None unless ``with_var``) of ``a[g] + x @ b[g]``."""
    group_mean, group_cov, pop_mean, pop_cov, pop_var = post.moments
    mean = np.empty(X.shape[0])
    var = np.empty(X.shape[0]) if with_var else None
    seen = ~is_new
    if seen.all():  # the common case: no masking copies
        rows = {"seen": (slice(None), codes)}
    else:
        rows = {"seen": (seen, codes[seen]), "new": (is_new, None)}
    for kind, (mask, c) in rows.items():
        Xm = X[mask]
        if Xm.shape[0] == 0:
            continue
        if kind == "seen":
            coefs = group_mean[c]
            mean[mask] = coefs[:, 0] + np.einsum("ij,ij->i", Xm, coefs[:, 1:])
            if with_var:
                D = _design(Xm)
                var[mask] = np.einsum("ij,ijk,ik->i", D, group_cov[c], D)
        else:
            mean[mask] = pop_mean[0] + Xm @ pop_mean[1:]
            if with_var:
                D = _design(Xm)
                spread = np.diag(pop_var) if pop_var.ndim == 1 else pop_var  # 0.1.0: diagonal
                var[mask] = np.einsum("ij,jk,ik->i", D, pop_cov + spread, D)
    return mean, (None if var is None else np.maximum(var, 0.0))


def predictive_draws(post, X, codes, new_codes, draw_idx, rng, noise=True, new_normals=None):
    """Posterior predictive draws, shape (n_rows, len(draw_idx)); ``draw_idx``
    indexes the joint draws (:meth:`Posterior.joint`).

    ``codes`` index seen groups (ignored where ``new_codes >= 0``);
    ``new_codes`` number the distinct new groups 0..n_new-1 (-1 for seen rows):
    rows sharing a new code share one drawn group effect per draw.  Their
    standard normals (S, n_new, K + 1) come from ``rng``, or ``new_normals``.
    """
    n_rows = X.shape[0]
    n_s = len(draw_idx)
    D = _design(X)
    is_new = new_codes >= 0
    out = np.empty((n_rows, n_s))
    seen = ~is_new
    if seen.any():
        a = post.joint("group_intercept")[draw_idx]  # (S, G)
        b = post.joint("group_coef")[draw_idx]  # (S, G, K)
        c = codes[seen]
        coefs = np.concatenate([a[:, c][..., None], b[:, c, :]], axis=-1)  # (S, n, K+1)
        out[seen] = np.einsum("nk,snk->ns", D[seen], coefs)
    if is_new.any():
        n_new = int(new_codes.max()) + 1
        mu = np.column_stack([post.joint("intercept"), post.joint("coef")])[draw_idx]  # (S, K+1)
        sd, corr = post.group_sd_and_corr(joint=True)
        e = rng.standard_normal((n_s, n_new, mu.shape[1])) if new_normals is None else new_normals
        if post.group_corr is not None:  # correlated effects: e ~ N(0, R)
            e = e @ np.swapaxes(np.linalg.cholesky(corr[draw_idx]), -1, -2)
        effects = mu[:, None, :] + sd[draw_idx][:, None, :] * e
        nc = new_codes[is_new]
        out[is_new] = np.einsum("nk,snk->ns", D[is_new], effects[:, nc, :])
    if noise:
        out += of_posterior(post).sample_noise(post, draw_idx, n_rows, rng)
    return out


def predictive_interval(post, X, codes, new_codes, prob, rng):
    """Equal-tailed posterior predictive interval per row, shape (n_rows, 2)."""
    idx = np.arange(post.n_joint)

    def draw_rows(sl):
        return predictive_draws(post, X[sl], codes[sl], new_codes[sl], idx, rng)

    # the draws' (rows x draws x coefficients) design products are the largest block
    return interval_by_blocks(draw_rows, X.shape[0], len(idx), prob, width=X.shape[1] + 1)
