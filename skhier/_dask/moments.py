"""Per-group moments: everything a fit of the collapsed model needs, from one pass
over the rows that can be split anywhere and summed.

The collapsed engine needs the per-group cross products of the *standardized*
design (:class:`~skhier._engines.collapsed.reference.SufficientStats`), and the standardization
needs the means and SDs of the columns: a second pass.  Both come instead from
the per-group moments of ``v = [x, y]`` about a shift ``c``,

    n_g,   s1_g = sum (v - c),   s2_g = sum (v - c)(v - c)',

since every standardized column is an affine map of ``v``: with ``a = [1, v - c]``
and ``T`` the matrix of those maps, the cross products are ``T (sum a a') T'``.
Each piece of the data (a partition of a Dask DataFrame, a chunk of a file) gets
the moments about its own mean, and :func:`combine_all` moves the sets to their
common mean before adding them (Chan, Golub & LeVeque's pairwise update, done per
group), so nothing is summed about a far-away origin and the result matches the
in-memory computation to rounding.  The per-group minimum and maximum of each
feature come along for the group-level-predictor check, and the distinct values
of ``y`` (up to two) for the binary-target warning.

Pure numpy plus one numba kernel; nothing here knows about Dask.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from skhier._data.groups import encode, unique_labels
from skhier._engines.collapsed.reference import SufficientStats
from skhier._model.spec import Scaling, parametrization_rule


@dataclass(frozen=True)
class Moments:
    """Per-group moments of ``[x, y]`` (``k = n_features + 1`` columns) about ``shift``.

    The per-group numbers live in one contiguous array ``acc`` (a row per group:
    the count, the sums, the packed cross products, the minima and the maxima),
    so that a partition's moments travel between processes as one buffer."""

    labels: np.ndarray  # (G,) sorted group labels
    shift: np.ndarray  # (k,)
    acc: np.ndarray  # (G, width(k)): [n, s1, s2, lo, hi] of each group
    abs_max: np.ndarray  # (k,) largest |value| of each column
    y_values: tuple | None  # the distinct values of y when there are at most two

    @staticmethod
    def empty(labels, shift) -> Moments:
        """Zero counts and sums, and minima / maxima that any value replaces."""
        k = len(shift)
        d = k - 1
        acc = np.zeros((len(labels), _width(k)))
        acc[:, _width(k) - 2 * d : _width(k) - d] = np.inf
        acc[:, _width(k) - d :] = -np.inf
        return Moments(labels, shift, acc, np.zeros(k), ())

    @property
    def n(self) -> np.ndarray:  # (G,) rows
        return self.acc[:, 0]

    @property
    def s1(self) -> np.ndarray:  # (G, k) sums of v - shift
        return self.acc[:, 1 : 1 + len(self.shift)]

    @property
    def s2(self) -> np.ndarray:  # (G, k(k+1)/2) cross products of v - shift, packed by rows
        k = len(self.shift)
        return self.acc[:, 1 + k : 1 + k + k * (k + 1) // 2]

    @property
    def lo(self) -> np.ndarray:  # (G, n_features) per-group minimum of x - shift
        d = self.n_features
        return self.acc[:, self.acc.shape[1] - 2 * d : self.acc.shape[1] - d]

    @property
    def hi(self) -> np.ndarray:  # (G, n_features) per-group maximum of x - shift
        return self.acc[:, self.acc.shape[1] - self.n_features :]

    @property
    def n_obs(self) -> int:
        return int(self.n.sum())

    @property
    def n_features(self) -> int:
        return self.shift.shape[0] - 1

    def cross_products(self) -> np.ndarray:
        """``s2`` as full symmetric matrices (G, k, k)."""
        k = len(self.shift)
        iu = np.triu_indices(k)
        out = np.empty((len(self.n), k, k))
        out[:, iu[0], iu[1]] = self.s2
        out[:, iu[1], iu[0]] = self.s2
        return out

    def squares(self) -> np.ndarray:
        """The diagonal of ``s2`` (G, k): each column's sum of squares."""
        k = len(self.shift)
        rows = np.arange(k)
        return self.s2[:, rows * k - rows * (rows - 1) // 2]


def partition_moments(X, y, labels) -> Moments:
    """The moments of one piece of the data (validated float arrays; any labels)."""
    from skhier._dask.moments_kernels import accumulate

    classes, codes = _factorize(labels)
    rows = X.shape[0]
    shift = np.r_[X.mean(axis=0), y.mean()] if rows else np.zeros(X.shape[1] + 1)
    m = Moments.empty(classes, shift)
    xt = np.ascontiguousarray(X.T, dtype=np.float64)  # free for pandas' column blocks
    w, wg = _scratch(rows, len(shift))
    y = np.ascontiguousarray(y, dtype=np.float64)
    accumulate(codes, xt, y, shift, m.acc, m.abs_max, w, wg)
    y_values = ()
    if rows:
        low, high = float(y.min()), float(y.max())
        two = low == high or np.count_nonzero((y != low) & (y != high)) == 0
        y_values = ((low,) if low == high else (low, high)) if two else None
    return replace(m, y_values=y_values)


_SCRATCH = threading.local()
_SCRATCH_KEEP = 64 * 2**20  # bytes of scratch space a thread keeps between calls


def _scratch(rows: int, k: int):
    """Scratch space for :func:`accumulate`, kept between the calls of a thread:
    fresh memory costs a page fault per 4 KiB, which is a quarter of a partition's
    time where ``malloc`` returns freed memory to the system at once (as Dask's
    worker processes are configured to).  A thread keeps at most 64 MiB (a
    partition of 1M rows and 7 columns) for its lifetime; larger partitions get
    fresh space each time."""
    w, wg = getattr(_SCRATCH, "arrays", (np.empty((0, 0)), np.empty(0, dtype=np.intp)))
    if w.shape[0] < rows or w.shape[1] != k:
        w, wg = np.empty((rows, k)), np.empty(rows, dtype=np.intp)
        if w.nbytes + wg.nbytes <= _SCRATCH_KEEP:
            _SCRATCH.arrays = (w, wg)
    return w, wg


def _width(k: int) -> int:
    """Numbers per group in :attr:`Moments.acc` for ``k`` columns."""
    return 1 + k + k * (k + 1) // 2 + 2 * (k - 1)


def _factorize(labels):
    """Sorted unique labels and each row's code, by hashing (no sort of the rows);
    integer labels in a range not much wider than the rows by a lookup table."""
    import pandas as pd

    if labels.dtype.kind in "iu" and len(labels):
        low, high = int(labels.min()), int(labels.max())
        if high - low <= 4 * len(labels) + 1024:
            # offsets in 64 bits (int8 / int16 arithmetic would wrap around)
            wide = labels.astype(np.uint64 if labels.dtype.kind == "u" else np.int64, copy=False)
            offset = (wide - wide.dtype.type(low)).astype(np.intp)
            present = np.zeros(high - low + 1, dtype=bool)
            present[offset] = True
            rank = np.cumsum(present, dtype=np.intp) - 1
            codes = np.ascontiguousarray(rank[offset])
            classes = np.empty(int(rank[-1]) + 1, dtype=labels.dtype)
            classes[codes] = labels  # each label's own value (no arithmetic)
            return classes, codes
    codes, uniques = pd.factorize(labels)
    uniques = np.asarray(uniques, dtype=labels.dtype if labels.dtype.kind in "biuf" else object)
    classes = unique_labels(uniques)
    rank = encode(uniques, classes)
    return classes, np.ascontiguousarray(rank[codes], dtype=np.intp)


def combine_all(parts) -> Moments:
    """The moments of the union of any number of pieces: each is moved to their
    common mean as it is added, group by group (matched by label)."""
    from skhier._dask.moments_kernels import add_moments

    parts = list(parts)
    filled = [p for p in parts if p.n_obs > 0]
    if len(filled) <= 1:
        return filled[0] if filled else parts[0]
    d = filled[0].n_features
    if any(p.n_features != d for p in filled):
        raise ValueError(
            "Two pieces of the data have different numbers of features; every partition "
            "must have the same columns."
        )
    counts = np.array([p.n_obs for p in filled], dtype=np.float64)
    shift = (counts @ np.array([p.shift for p in filled])) / counts.sum()
    kinds = [_label_kinds(p.labels) for p in filled if len(p.labels)]
    if len(set().union(*kinds)) > 1 and all(len(k) == 1 for k in kinds):
        raise TypeError(
            "The group labels are numbers in some pieces of the data (partitions) and "
            "strings or other objects in others, so 1 and '1' would be different groups. "
            "Give the group column one dtype everywhere, e.g. ddf['g'].astype(str)."
        )
    first = filled[0].labels
    same = all(len(p.labels) == len(first) and np.array_equal(p.labels, first) for p in filled)
    labels = (
        first if same else unique_labels(np.concatenate([_as_labels(p.labels) for p in filled]))
    )
    total = Moments.empty(labels, shift)
    values = set()
    for part in filled:
        idx = np.arange(len(labels)) if same else encode(_as_labels(part.labels), labels)
        add_moments(
            np.ascontiguousarray(idx, dtype=np.intp), part.shift - shift,
            part.n, part.s1, part.s2, part.lo, part.hi,
            total.n, total.s1, total.s2, total.lo, total.hi,
        )  # fmt: skip
        values = None if values is None or part.y_values is None else values | set(part.y_values)
    values = tuple(sorted(values)) if values is not None and len(values) <= 2 else None
    abs_max = np.max([p.abs_max for p in filled], axis=0)
    return replace(total, abs_max=abs_max, y_values=values)


def _label_kinds(labels):
    """``{"number"}``, ``{"string"}`` or both: what a piece's (unique) labels are."""
    if labels.dtype.kind in "biuf":
        return {"number"}
    return {"string" if isinstance(v, str) else "number" for v in labels}


def _as_labels(labels):
    """Labels as an array that concatenates without coercing types (ints and
    strings together stay objects)."""
    return labels if labels.dtype.kind in "biuf" else labels.astype(object)


def scaling(m: Moments, standardize: bool) -> Scaling:
    """:meth:`Scaling.fit` of the data the moments summarize."""
    d = m.n_features
    if not standardize:
        return Scaling(np.zeros(d), np.ones(d), 0.0, 1.0)
    mean_dev = m.s1.sum(axis=0) / m.n_obs
    var = m.squares().sum(axis=0) / m.n_obs - mean_dev**2
    sd = np.sqrt(np.maximum(var, 0.0))
    mean = m.shift + mean_dev
    sd = np.where(sd > 1e-12 * (1.0 + m.abs_max), sd, 1.0)
    return Scaling(mean[:d], sd[:d], float(mean[d]), float(sd[d]))


def group_level_features(m: Moments):
    """:func:`skhier._data.checks.group_level_features` from the moments: a feature is
    group-level when no row is farther than the tolerance from its group's mean."""
    d = m.n_features
    means_dev = m.s1[:, :d] / np.maximum(m.n, 1)[:, None]
    means = m.shift[:d] + means_dev
    mask = np.zeros(d, dtype=bool)
    if np.count_nonzero(m.n >= 2) < 2 or m.n_obs == 0:
        return mask, means
    tol = 1e-9 * (1.0 + m.abs_max[:d])
    within = np.maximum(m.hi - means_dev, means_dev - m.lo).max(axis=0) <= tol
    spread = m.hi.max(axis=0) - m.lo.min(axis=0) > tol
    return within & spread, means


def parametrization(m: Moments, scale: Scaling) -> str:
    """:func:`skhier._model.spec.choose_parametrization` from the moments."""
    d = m.n_features
    ys = scale.y_scale
    sums = (m.s1[:, d] + m.n * (m.shift[d] - scale.y_mean)) / ys
    n = np.maximum(m.n, 1)
    within = float(np.sum(m.squares()[:, d] - m.s1[:, d] ** 2 / n)) / ys**2
    return parametrization_rule(m.n, sums, max(within, 0.0), m.n_obs, float(sums.sum() / m.n_obs))


def sufficient_stats(m: Moments, slope_idx, scale: Scaling) -> SufficientStats:
    """The collapsed engine's statistics of ``design(X, y, spec, scale)``."""
    d = m.n_features
    slopes = list(slope_idx)
    p, q = d + 1, 1 + len(slopes)
    xs, c = scale.x_scale, m.shift
    t = np.zeros((q + p + 1, d + 2))  # rows [Z, F, y] as maps of a = [1, v - shift]
    t[0, 0] = 1.0
    for r, j in enumerate(slopes, start=1):  # Z_j = x_j / sd_j
        t[r, 0], t[r, 1 + j] = c[j] / xs[j], 1.0 / xs[j]
    t[q, 0] = 1.0
    for j in range(d):  # F_j = (x_j - mean_j) / sd_j
        t[q + 1 + j, 0] = (c[j] - scale.x_mean[j]) / xs[j]
        t[q + 1 + j, 1 + j] = 1.0 / xs[j]
    t[-1, 0], t[-1, -1] = (c[d] - scale.y_mean) / scale.y_scale, 1.0 / scale.y_scale
    aug = np.empty((len(m.n), d + 2, d + 2))
    aug[:, 0, 0] = m.n
    aug[:, 0, 1:] = m.s1
    aug[:, 1:, 0] = m.s1
    aug[:, 1:, 1:] = m.cross_products()
    big = t @ aug @ t.T
    return SufficientStats(
        n=m.n.astype(np.float64),
        zz=np.ascontiguousarray(big[:, :q, :q]),
        zw=np.ascontiguousarray(big[:, :q, q:]),
        ww=big[:, q:, q:].sum(axis=0),
    )
