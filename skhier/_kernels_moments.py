"""numba kernel of the one-pass moment accumulation (see :mod:`skhier._moments`):
per group, the row count, sums and cross products of ``[x, y]`` about a shift,
and the minimum and maximum of each feature.  Imported at fit time only."""

from __future__ import annotations

import numpy as np

from ._kernels_linalg import _njit


@_njit
def accumulate(codes, x, y, shift, acc, abs_max):
    """Add the rows of ``x`` (rows, d) and ``y`` (rows,) of groups ``codes`` into
    ``acc`` (G, 1 + k + k(k+1)/2 + 2d), ``k = d + 1``: per group the row count,
    the sums of ``v - shift`` (``v = [x, y]``), the upper triangle of their cross
    products (row-major), then the minimum and the maximum of each ``x - shift``
    (one contiguous row per group: a row touches one group's memory only).
    ``abs_max`` (k,) keeps the largest ``|v|`` of each column."""
    rows, d = x.shape
    k = d + 1
    o_s2 = 1 + k
    o_lo = o_s2 + k * (k + 1) // 2
    o_hi = o_lo + d
    v = np.empty(k)
    for i in range(rows):
        g = codes[i]
        row = acc[g]
        for a in range(d):
            raw = x[i, a]
            if abs(raw) > abs_max[a]:
                abs_max[a] = abs(raw)
            v[a] = raw - shift[a]
        if abs(y[i]) > abs_max[d]:
            abs_max[d] = abs(y[i])
        v[d] = y[i] - shift[d]
        row[0] += 1.0
        t = o_s2
        for a in range(k):
            va = v[a]
            row[1 + a] += va
            for b in range(a, k):
                row[t] += va * v[b]
                t += 1
        for a in range(d):
            if v[a] < row[o_lo + a]:
                row[o_lo + a] = v[a]
            if v[a] > row[o_hi + a]:
                row[o_hi + a] = v[a]


@_njit
def add_moments(idx, delta, n, s1, s2, lo, hi, to_n, to_s1, to_s2, to_lo, to_hi):
    """Add one piece's moments (``n`` .. ``hi``, about a shift ``c``) into group
    ``idx[g]`` of the totals (about ``c - delta``), moving them on the way:
    ``s1 + n delta``, ``s2 + s1 delta' + delta s1' + n delta delta'`` (packed)."""
    n_groups, k = s1.shape
    d = lo.shape[1]
    for g in range(n_groups):
        t = idx[g]
        ng = n[g]
        to_n[t] += ng
        for a in range(k):
            to_s1[t, a] += s1[g, a] + ng * delta[a]
        c = 0
        for a in range(k):
            for b in range(a, k):
                to_s2[t, c] += (
                    s2[g, c] + s1[g, a] * delta[b] + s1[g, b] * delta[a] + ng * delta[a] * delta[b]
                )
                c += 1
        for a in range(d):
            low, high = lo[g, a] + delta[a], hi[g, a] + delta[a]
            if low < to_lo[t, a]:
                to_lo[t, a] = low
            if high > to_hi[t, a]:
                to_hi[t, a] = high
