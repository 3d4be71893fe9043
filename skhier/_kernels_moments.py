"""numba kernel of the one-pass moment accumulation (see :mod:`skhier._moments`):
per group, the row count, sums and cross products of ``[x, y]`` about a shift,
and the minimum and maximum of each feature.  Imported at fit time only."""

from __future__ import annotations

from ._kernels_linalg import _njit


@_njit
def accumulate(codes, v, n_features, n, s1, s2, lo, hi):
    """Add the rows ``v`` (rows, k) of groups ``codes`` to ``n`` (G,), ``s1`` (G, k),
    the upper triangle of ``s2`` (G, k, k) and, for the first ``n_features``
    columns, the running minimum ``lo`` and maximum ``hi`` (G, n_features)."""
    rows, k = v.shape
    for i in range(rows):
        g = codes[i]
        n[g] += 1.0
        for a in range(k):
            va = v[i, a]
            s1[g, a] += va
            for b in range(a, k):
                s2[g, a, b] += va * v[i, b]
        for a in range(n_features):
            va = v[i, a]
            if va < lo[g, a]:
                lo[g, a] = va
            if va > hi[g, a]:
                hi[g, a] = va
