"""numba kernel of the one-pass moment accumulation (see :mod:`skhier._dask.moments`):
per group, the row count, sums and cross products of ``[x, y]`` about a shift,
and the minimum and maximum of each feature.  Imported at fit time only."""

from __future__ import annotations

import numpy as np

from skhier._numba.linalg import _njit

#: rows per bucket that :func:`accumulate` aims for (a bucket's rows stay in cache)
BUCKET_ROWS = 4096


@_njit
def accumulate(codes, xt, y, shift, acc, abs_max, w, wg):
    """Add the rows of ``x = xt.T`` (``xt``: d, rows) and ``y`` (rows,) of groups
    ``codes`` into ``acc`` (G, 1 + k + k(k+1)/2 + 2d), ``k = d + 1``: per group the
    row count, the sums of ``v - shift`` (``v = [x, y]``), the upper triangle of
    their cross products (row-major), then the minimum and the maximum of each
    ``x - shift``.  ``abs_max`` (k,) keeps the largest ``|v|`` of each column.
    ``w`` (at least rows, k) and ``wg`` (at least rows) are scratch space.

    Adding row by row into ``acc`` touches a random group's memory for every row,
    which is slow once ``acc`` outgrows the caches.  Instead the rows are first
    copied into buckets of consecutive groups (a radix pass writing to a few
    streams), and each bucket, small enough to stay in cache, is sorted by group
    (a counting sort) into a column-major buffer whose per-group sums run in
    registers."""
    d, rows = xt.shape
    k = d + 1
    n_groups = acc.shape[0]
    for a in range(d):
        top = abs_max[a]
        for i in range(rows):
            top = max(top, abs(xt[a, i]))
        abs_max[a] = top
    top = abs_max[d]
    for i in range(rows):
        top = max(top, abs(y[i]))
    abs_max[d] = top
    wanted = min(max(rows // BUCKET_ROWS, 1), n_groups)
    bits = 0  # a bucket holds 2**bits consecutive groups
    while (n_groups + (1 << bits) - 1) >> bits > wanted:
        bits += 1
    span = 1 << bits
    n_buckets = (n_groups + span - 1) >> bits
    bstart = np.zeros(n_buckets + 1, dtype=np.intp)
    for i in range(rows):
        bstart[(codes[i] >> bits) + 1] += 1
    for b in range(n_buckets):
        bstart[b + 1] += bstart[b]
    pos = bstart[:-1].copy()
    # w: the rows, bucket by bucket, about the shift; wg: their group within the bucket
    for i in range(rows):
        c = codes[i]
        b = c >> bits
        p = pos[b]
        pos[b] = p + 1
        for a in range(d):
            w[p, a] = xt[a, i] - shift[a]
        w[p, d] = y[i] - shift[d]
        wg[p] = c - (b << bits)
    largest = 0
    for b in range(n_buckets):
        largest = max(largest, bstart[b + 1] - bstart[b])
    v = np.empty((k, largest))
    start = np.empty(span + 1, dtype=np.intp)
    cursor = np.empty(span, dtype=np.intp)
    for b in range(n_buckets):
        g0 = b << bits
        width = min(span, n_groups - g0)
        start[: width + 1] = 0
        for r in range(bstart[b], bstart[b + 1]):
            start[wg[r] + 1] += 1
        for j in range(width):
            start[j + 1] += start[j]
        cursor[:width] = start[:width]
        for r in range(bstart[b], bstart[b + 1]):
            q = cursor[wg[r]]
            cursor[wg[r]] = q + 1
            for a in range(k):
                v[a, q] = w[r, a]
        for j in range(width):
            m = start[j + 1] - start[j]
            if m > 0:
                _add_group(v[:, start[j] : start[j + 1]], acc[g0 + j], d)


@_njit
def _add_group(v, row, d):
    """Add one group's rows ``v`` (k, m; about the shift) into its ``acc`` row."""
    k, m = v.shape
    o_lo = 1 + k + k * (k + 1) // 2
    row[0] += m
    t = 1 + k
    for a in range(k):
        s = 0.0
        for r in range(m):
            s += v[a, r]
        row[1 + a] += s
        for b in range(a, k):
            s = 0.0
            for r in range(m):
                s += v[a, r] * v[b, r]
            row[t] += s
            t += 1
    for a in range(d):
        low, high = row[o_lo + a], row[o_lo + d + a]
        for r in range(m):
            low = min(low, v[a, r])
            high = max(high, v[a, r])
        row[o_lo + a], row[o_lo + d + a] = low, high


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
