"""numba kernel reducing a block of group-effect draws (see
:func:`skhier._posterior.group_draws.reduce_group_draws`): one pass per group over its
draws gives the values in the user's units, their mean and covariance, the kept
draws and two quantiles - instead of numpy's many passes over a block several
times the cache.  Imported at fit time only (prediction never needs numba)."""

from __future__ import annotations

import numpy as np

from skhier._numba.linalg import _njit


@_njit
def _sift_down(heap, i, m):
    """Restore the max-heap property of ``heap[:m]`` below position ``i``."""
    v = heap[i]
    while True:
        c = 2 * i + 1
        if c >= m:
            break
        if c + 1 < m and heap[c + 1] > heap[c]:
            c += 1
        if heap[c] <= v:
            break
        heap[i] = heap[c]
        i = c
    heap[i] = v


@_njit
def _order_pair(row, k, sign, heap):
    """Order statistics ``k`` and ``k + 1`` (0-based, ascending) of ``sign * row``,
    times ``sign``: the ``k + 2`` smallest values kept in a max-heap, one pass
    (a tail's few order statistics cost far less than a selection)."""
    n = row.shape[0]
    m = k + 2
    if m > n or k < 0:  # fewer draws than needed (n <= 2): insertion sort
        for i in range(n):
            v = sign * row[i]
            j = i
            while j > 0 and heap[j - 1] > v:
                heap[j] = heap[j - 1]
                j -= 1
            heap[j] = v
        return sign * heap[k % n], sign * heap[min(k + 1, n - 1)]
    for i in range(m):
        heap[i] = sign * row[i]
    for i in range(m // 2 - 1, -1, -1):
        _sift_down(heap, i, m)
    for i in range(m, n):
        v = sign * row[i]
        if v < heap[0]:
            heap[0] = v
            _sift_down(heap, 0, m)
    second = heap[1] if m == 2 else max(heap[1], heap[2])
    return sign * second, sign * heap[0]


@_njit
def _lerp(a, b, gamma):
    """numpy's linear interpolation (np.quantile's default method)."""
    if gamma >= 0.5:
        return b - (b - a) * (1.0 - gamma)
    return a + (b - a) * gamma


@_njit
def reduce_block(u, pop, effect_col, scale, flat_kept, prev, gamma, mean, cov, bounds, kept):
    """Reduce the draws ``u`` (c, q, S) of a block of groups.

    ``pop`` (K+1, S): population values in the user's units; effect ``e`` of a
    group is ``pop[e] + scale[e] * u[:, effect_col[e]]`` (``effect_col[e] < 0``:
    no group effect).  Fills ``mean`` (c, K+1), ``cov`` (c, K+1, K+1), ``bounds``
    (c, K+1, 2) at the order statistics ``prev`` (2,) with weights ``gamma``, and
    ``kept`` (c, K+1, len(flat_kept)).
    """
    n_groups, n_draws = u.shape[0], u.shape[2]
    k1 = pop.shape[0]
    row = np.empty((k1, n_draws))
    m = np.empty(k1)
    heap = np.empty(n_draws + 2)
    for g in range(n_groups):
        for e in range(k1):
            j = effect_col[e]
            acc = 0.0
            if j >= 0:
                sc = scale[e]
                for d in range(n_draws):
                    v = pop[e, d] + sc * u[g, j, d]
                    row[e, d] = v
                    acc += v
            else:
                for d in range(n_draws):
                    row[e, d] = pop[e, d]
                    acc += pop[e, d]
            m[e] = acc / n_draws
            mean[g, e] = m[e]
        for e in range(k1):
            for f in range(e + 1):
                acc = 0.0
                for d in range(n_draws):
                    acc += (row[e, d] - m[e]) * (row[f, d] - m[f])
                cov[g, e, f] = cov[g, f, e] = acc / max(n_draws - 1, 1)
            for t in range(flat_kept.shape[0]):
                kept[g, e, t] = row[e, flat_kept[t]]
            a, b = _order_pair(row[e], prev[0], 1.0, heap)
            bounds[g, e, 0] = _lerp(a, b, gamma[0])
            hi, lo = _order_pair(row[e], n_draws - 2 - prev[1], -1.0, heap)
            bounds[g, e, 1] = _lerp(lo, hi, gamma[1])
