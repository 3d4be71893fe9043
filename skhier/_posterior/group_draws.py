"""The group effects' draws reduced a block of groups at a time.

An engine's draws of the group effects (chains x draws x groups x effects) can be
far larger than the model needs: point predictions and ``return_std`` need only
each group's posterior mean and covariance, and reported intervals only two
quantiles.  :func:`reduce_group_draws` turns blocks of draws into exactly those
(computed from every draw) plus a bounded number of joint draws kept for
``sample_y``, ``predict_interval``, ``idata_`` and diagnostics on request, so
neither the fit nor the fitted model ever holds all of them at once.
"""

from __future__ import annotations

import numpy as np

#: ``store_draws="auto"``: keep every draw while the kept draws of the group
#: effects hold at most this many numbers (128 MB), else fewer but at least
#: ``AUTO_MIN_DRAWS`` of them
AUTO_ELEMENTS = 2**24
AUTO_MIN_DRAWS = 64
#: reductions of at most this many values (groups x effects x draws) run in numpy:
#: a small model's fit then never compiles the reduction kernel (seconds of numba's
#: one-time compilation, more than numpy's time for it at this size)
NUMPY_MAX_VALUES = 2**20


def kept_per_chain(store_draws, n_chains, n_draws, n_groups, n_effects):
    """Number of draws of each chain to keep for ``store_draws`` ("auto", "all" or
    an int: the total over the chains)."""
    if store_draws == "all":
        return n_draws
    if store_draws == "auto":
        total = n_chains * n_draws
        if total * n_groups * n_effects <= AUTO_ELEMENTS:
            return n_draws
        store_draws = max(AUTO_MIN_DRAWS, AUTO_ELEMENTS // (n_groups * n_effects))
    return int(min(n_draws, max(1, -(-int(store_draws) // n_chains))))


def kept_positions(n_draws, n_kept):
    """``n_kept`` positions spread evenly over a chain of ``n_draws`` (thinning)."""
    return np.floor(np.arange(n_kept) * (n_draws / n_kept)).astype(np.intp)


def full_blocks(u, max_bytes=32 * 2**20):
    """:func:`reduce_group_draws`' blocks from a full array ``u`` (C, D, G, q)."""
    flat = u.reshape((-1,) + u.shape[2:])
    chunk = max(1, int(max_bytes // (8 * flat.shape[0] * flat.shape[2])))
    for start in range(0, flat.shape[1], chunk):
        yield start, np.ascontiguousarray(flat[:, start : start + chunk].transpose(1, 2, 0))


def reduce_group_draws(blocks, intercept, coef, y_scale, slope_scale, slopes, kept, prob):
    """Moments, intervals and kept draws of ``[a[g], b[g]]`` in the user's units.

    Parameters
    ----------
    blocks : iterable of ``(start, u)``
        Standardized group effects ``u`` (c, q, S) of the groups ``start:start + c``
        for every draw (S = C * D; group-major), the intercept first.
    intercept : (C, D), coef : (C, D, K)
        Population draws in the user's units.
    y_scale, slope_scale : the scales of ``y`` and of the random-slope features.
    slopes : columns of ``coef`` with a random slope.
    kept : positions (within each chain) of the draws to keep.
    prob : mass of the equal-tailed intervals.

    Returns
    -------
    dict with ``mean`` (G, K + 1), ``cov`` (G, K + 1, K + 1), ``bounds``
    (G, K + 1, 2) and the kept draws ``group_intercept`` (C, D', G) and
    ``group_coef`` (C, D', G, K).
    """
    from concurrent.futures import ThreadPoolExecutor

    from skhier._numba.linalg import numba
    from skhier._numba.reduce import reduce_block

    n_chains, n_draws = intercept.shape
    k1 = coef.shape[-1] + 1
    pop = np.concatenate([intercept.reshape(1, -1), coef.reshape(n_chains * n_draws, k1 - 1).T])
    effect_col = np.full(k1, -1, dtype=np.int64)
    effect_col[np.r_[0, np.asarray(slopes, dtype=int) + 1]] = np.arange(len(slopes) + 1)
    scale = np.full(k1, float(y_scale))
    scale[np.asarray(slopes, dtype=int) + 1] /= np.asarray(slope_scale, dtype=float)
    flat_kept = (np.arange(n_chains)[:, None] * n_draws + kept).ravel()
    total = n_chains * n_draws
    virtual = (total - 1) * np.array([(1.0 - prob) / 2.0, (1.0 + prob) / 2.0])
    prev = np.minimum(np.floor(virtual), total - 1).astype(np.int64)
    gamma = virtual - prev
    parts = {"mean": [], "cov": [], "bounds": [], "kept": []}
    n_threads = numba.get_num_threads() if numba is not None else 1
    probs = [(1.0 - prob) / 2.0, (1.0 + prob) / 2.0]
    with ThreadPoolExecutor(n_threads) as pool:
        for _, u in blocks:
            c = u.shape[0]
            out = {
                "mean": np.empty((c, k1)),
                "cov": np.empty((c, k1, k1)),
                "bounds": np.empty((c, k1, 2)),
                "kept": np.empty((c, k1, len(flat_kept))),
            }

            if c * k1 * total <= NUMPY_MAX_VALUES:
                _reduce_small(u, pop, effect_col, scale, flat_kept, probs, out)
                for key, value in out.items():
                    parts[key].append(value)
                continue

            def run(sl, u=u, out=out):
                args = (u[sl], pop, effect_col, scale, flat_kept, prev, gamma)
                reduce_block(*args, *(out[k][sl] for k in ("mean", "cov", "bounds", "kept")))

            cuts = np.linspace(0, c, n_threads + 1).astype(int)
            list(pool.map(run, [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]))
            for key, value in out.items():
                parts[key].append(value)
    kept_vals = np.concatenate(parts["kept"])  # (G, K+1, C * D')
    kept_vals = kept_vals.reshape(kept_vals.shape[:2] + (n_chains, len(kept)))
    kept_vals = kept_vals.transpose(2, 3, 0, 1)
    return {
        "mean": np.concatenate(parts["mean"]),
        "cov": np.concatenate(parts["cov"]),
        "bounds": np.concatenate(parts["bounds"]),
        "group_intercept": np.ascontiguousarray(kept_vals[..., 0]),
        "group_coef": np.ascontiguousarray(kept_vals[..., 1:]),
    }


def _reduce_small(u, pop, effect_col, scale, flat_kept, probs, out):
    """:func:`skhier._numba.reduce.reduce_block` in numpy (the same numbers to
    rounding for finite draws; a NaN draw makes the interval NaN, as np.quantile
    does), for blocks small enough that compiling the kernel costs more."""
    vals = np.broadcast_to(pop, (u.shape[0],) + pop.shape).copy()  # (c, K+1, S)
    has = effect_col >= 0
    vals[:, has] += scale[has, None] * u[:, effect_col[has]]
    out["mean"][...] = vals.mean(axis=2)
    centred = vals - out["mean"][..., None]
    out["cov"][...] = centred @ centred.transpose(0, 2, 1) / max(vals.shape[2] - 1, 1)
    flat = vals.reshape(vals.shape[0] * vals.shape[1], vals.shape[2])
    out["bounds"][...] = row_quantiles(flat, probs).reshape(out["bounds"].shape)
    out["kept"][...] = vals[..., flat_kept]


def _group_moments(intercepts, coefs, chunk=32):
    """Per-group posterior means (G, K + 1) and covariances (G, K + 1, K + 1) of
    ``[a[g], b[g]]`` from the draws ``intercepts`` (S, G) and ``coefs`` (S, G, K):
    centred draws of a block of groups, then one BLAS product per group (a
    group's (S, K + 1) draws are a strided matrix of the block)."""
    n_draws, n_groups = intercepts.shape
    mean = np.concatenate([intercepts.mean(axis=0)[:, None], coefs.mean(axis=0)], -1)
    cov = np.empty((n_groups,) + mean.shape[1:] * 2)
    for start in range(0, n_groups, chunk):
        sl = slice(start, start + chunk)
        block = np.empty((n_draws,) + mean[sl].shape)
        block[..., 0] = intercepts[:, sl]
        block[..., 1:] = coefs[:, sl]
        block -= mean[sl]
        np.matmul(block.transpose(1, 2, 0), block.transpose(1, 0, 2), out=cov[sl])
    cov /= max(n_draws - 1, 1)
    return mean, cov


def quantiles(draws, probs, chunk=256):
    """``np.quantile(draws, probs, axis=0)`` (its default linear method) with the
    probabilities last: shape ``draws.shape[1:] + (len(probs),)``, the same numbers.
    Faster on many columns: contiguous transposed blocks (see :func:`row_quantiles`).
    """
    n = len(draws)
    cols = draws.reshape((n, -1))
    out = np.empty((cols.shape[1], len(probs)))
    for start in range(0, cols.shape[1], chunk):
        block = _transposed(cols[:, start : start + chunk])
        out[start : start + chunk] = row_quantiles(block, probs, overwrite=True)
    return out.reshape(draws.shape[1:] + (len(probs),))


def row_quantiles(rows, probs, overwrite=False):
    """``np.quantile(rows, probs, axis=1)`` with the probabilities last: (n, len(probs)).

    Each order statistic comes from a partition at one position (numpy's SIMD
    selection; a partition at several positions at once, as np.quantile does, is
    several times slower).  ``overwrite``: partition ``rows`` in place.
    """
    n = rows.shape[1]
    virtual = (n - 1) * np.asarray(probs, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    prev[virtual >= n - 1] = nxt[virtual >= n - 1] = -1  # np.quantile's conventions
    gamma = virtual - prev
    prev, nxt = prev.astype(np.intp) % n, nxt.astype(np.intp) % n
    block = rows if overwrite else rows.copy()
    lo = 0
    for k in np.unique(np.r_[prev, nxt]):  # later positions lie right of k
        block[:, lo:].partition(k - lo, axis=1)
        lo = k + 1
    res = np.empty((rows.shape[0], len(gamma)))
    for j, t in enumerate(gamma):  # numpy's lerp
        a, b = block[:, prev[j]], block[:, nxt[j]]
        res[:, j] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
    res[np.isnan(block).any(axis=1)] = np.nan
    return res


def _transposed(a, tile=16):
    """``a.T`` as a new C-contiguous array, a few columns at a time (much faster
    than numpy's direct transposing copy of a large array)."""
    out = np.empty(a.shape[::-1])
    for start in range(0, a.shape[1], tile):
        out[start : start + tile] = np.ascontiguousarray(a[:, start : start + tile]).T
    return out
