"""Several grouping factors: labels <-> codes, declared nesting, and the checks.

A model with several factors gets its labels as a DataFrame (or 2-D array) with
one column per factor, or as several ``group_col`` columns of ``X``.  A factor
declared nested in another (``nested=[("school", "class")]``) has one level per
*combination* of its labels with its ancestors' (class 1 of school 1 is not
class 1 of school 2); its levels are tuples ``(school, class)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from skhier._data.groups import (
    POPULATION,
    check_group_labels,
    check_unseen,
    encode,
    unique_labels,
)
from skhier._util.warn import warn
from skhier.exceptions import FewGroupsWarning, MissingGroupsError, NestingWarning


@dataclass(frozen=True)
class FactorLayout:
    """What a fit learned about its factors: names, nesting and levels."""

    names: tuple[str, ...]
    parents: tuple[int, ...]  # index of the factor each is nested in (-1: none)
    levels: tuple[np.ndarray, ...]  # labels; tuples (outer, ..., inner) when nested

    def chain(self, f: int) -> list[int]:
        """Factor ``f`` and its ancestors, outermost first."""
        out = [f]
        while self.parents[out[0]] >= 0:
            out.insert(0, self.parents[out[0]])
        return out


def n_factors(groups, group_col) -> int:
    """How many grouping factors ``groups`` / ``group_col`` give (1 for 1-D)."""
    if isinstance(group_col, (list, tuple)):
        return len(group_col)
    if group_col is not None:
        return 1
    if isinstance(groups, pd.DataFrame):
        return groups.shape[1]
    if groups is None or groups is POPULATION or isinstance(groups, pd.Series):
        return 1
    shape = np.shape(groups)
    return shape[1] if len(shape) == 2 else 1


def label_frame(groups, n_rows, names=None) -> pd.DataFrame:
    """Several factors' labels as a DataFrame with one string-named column each."""
    if isinstance(groups, pd.DataFrame):
        frame = groups.copy()
        frame.columns = [str(c) for c in frame.columns]
    else:
        arr = np.asarray(groups, dtype=object)
        if arr.ndim != 2:
            raise ValueError(
                f"`groups` for several factors must be 2-D (one column per factor); got "
                f"shape {arr.shape}."
            )
        cols = names if names is not None else [f"factor{j}" for j in range(arr.shape[1])]
        if len(cols) != arr.shape[1]:
            raise ValueError(
                f"`groups` has {arr.shape[1]} columns but the model was fit with "
                f"{len(cols)} factors {list(cols)}; pass one column per factor."
            )
        frame = pd.DataFrame({c: arr[:, j] for j, c in enumerate(cols)})
    if frame.columns.duplicated().any():
        raise ValueError(f"`groups` has duplicated factor names: {list(frame.columns)}.")
    if len(frame) != n_rows:
        raise ValueError(
            f"`groups` has {len(frame)} rows but X has {n_rows}; pass one row of "
            "labels per row of X."
        )
    return frame


def resolve_nesting(nested, names) -> list[int]:
    """Parent index of each factor from ``nested`` (None/False: none; True: each
    column nested in the previous one; or ``(outer, inner)`` pairs of names)."""
    parents = [-1] * len(names)
    if nested is None or nested is False:
        return parents
    if nested is True:
        return [-1] + list(range(len(names) - 1))
    for pair in nested:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(
                f"`nested` must be True, False, None or a list of (outer, inner) pairs of "
                f"factor names; got the element {pair!r}."
            )
        outer, inner = (_index_of(name, names) for name in pair)
        if outer == inner:
            raise ValueError(f"`nested` pair {tuple(pair)!r} names one factor twice.")
        if parents[inner] >= 0 and parents[inner] != outer:
            raise ValueError(
                f"Factor {names[inner]!r} is declared nested in two factors "
                f"({names[parents[inner]]!r} and {names[outer]!r}); a factor has one parent."
            )
        parents[inner] = outer
    for f in range(len(names)):  # no cycles, and chains only
        seen, cur = {f}, parents[f]
        while cur >= 0:
            if cur in seen:
                raise ValueError(f"`nested` is circular around factor {names[f]!r}.")
            seen.add(cur)
            cur = parents[cur]
    children = [parents.count(f) for f in range(len(names))]
    if max(children) > 1:
        f = children.index(max(children))
        raise ValueError(
            f"Several factors are declared nested in {names[f]!r}; skhier nests factors "
            "in chains (outer -> inner): declare one of them nested in the other, or "
            "crossed."
        )
    return parents


def _index_of(name, names):
    key = str(name) if not isinstance(name, (int, np.integer)) else name
    if isinstance(key, (int, np.integer)) and 0 <= key < len(names):
        return int(key)
    if key in names:
        return names.index(key)
    raise ValueError(f"`nested` names factor {name!r}, which is not among {list(names)}.")


def fit_factors(frame: pd.DataFrame, nested) -> tuple[FactorLayout, np.ndarray]:
    """Validate several factors' labels; return their layout and codes (rows, factors)."""
    names = list(frame.columns)
    raw = [check_group_labels(frame[c], len(frame), name=f"groups[{c!r}]") for c in names]
    parents = resolve_nesting(nested, names) if nested is not None else detect_nesting(raw)
    codes, levels = [], []
    for f in range(len(names)):
        chain = _chain(parents, f)
        if len(chain) == 1:
            lev = unique_labels(raw[f])
            codes.append(encode(raw[f], lev))
        else:
            keys = pd.MultiIndex.from_arrays([raw[c] for c in chain])
            code, uniq = pd.factorize(keys, sort=_sortable(keys))
            lev = np.empty(len(uniq), dtype=object)
            lev[:] = list(uniq)
            codes.append(code.astype(np.intp))
        levels.append(lev)
    codes = np.column_stack(codes)
    _check_factors(names, parents, raw, codes, levels, nested)
    return FactorLayout(tuple(names), tuple(parents), tuple(levels)), codes


def detect_nesting(raw) -> list[int]:
    """Parent index of each factor as the data show it (``nested=None``), as lme4
    needs no declaration: factor ``b`` is nested in ``a`` when every level of ``b``
    occurs with one level of ``a`` only (``a`` having fewer levels); of several such
    ``a``, the one with the most levels (pupils in classes in schools: pupils in
    classes).  Nesting runs in chains, so a factor found to hold several others
    keeps none of them (they stay crossed)."""
    codes = [encode(r, unique_labels(r)) for r in raw]
    sizes = [int(c.max()) + 1 if len(c) else 0 for c in codes]
    parents = [-1] * len(raw)
    for inner in range(len(raw)):
        for outer in range(len(raw)):
            if sizes[outer] < 2 or sizes[outer] >= sizes[inner]:
                continue
            if _n_cells(codes[outer], codes[inner]) == sizes[inner] and (
                parents[inner] < 0 or sizes[outer] > sizes[parents[inner]]
            ):
                parents[inner] = outer
    for f in range(len(raw)):
        if parents.count(f) > 1:
            parents = [-1 if p == f else p for p in parents]
    return parents


def _chain(parents, f):
    out = [f]
    while parents[out[0]] >= 0:
        out.insert(0, parents[out[0]])
    return out


def _sortable(keys) -> bool:
    try:
        keys[:2].sort_values()
        return True
    except TypeError:
        return False


def _n_cells(a, b) -> int:
    return len(np.unique(a.astype(np.int64) * (int(b.max()) + 1) + b))


def _check_factors(names, parents, raw, codes, levels, nested) -> None:
    n_fac = len(names)
    for f in range(n_fac):
        if len(levels[f]) < 2:
            raise ValueError(
                f"Factor {names[f]!r} has a single level: it cannot vary, so it cannot "
                "have group effects. Drop that column from `groups`."
            )
        if len(levels[f]) < 3:
            warn(
                f"Factor {names[f]!r} has only {len(levels[f])} levels: its SDs cannot be "
                "learned from fewer than 3 and follow their prior. Consider a tighter "
                f"`prior_group_sd`, or {names[f]!r} as a feature (a fixed effect) instead.",
                FewGroupsWarning,
            )
    for inner, outer in enumerate(parents):
        if outer < 0:
            continue
        if len(levels[inner]) == len(levels[outer]):
            raise ValueError(
                f"Factor {names[inner]!r} is declared nested in {names[outer]!r}, but each "
                f"level of {names[outer]!r} holds one level of {names[inner]!r}: the "
                "declaration looks reversed (did you mean "
                f"({names[inner]!r}, {names[outer]!r})?), or {names[inner]!r} adds "
                "nothing to it."
            )
        own = encode(raw[inner], unique_labels(raw[inner]))
        spans = pd.Series(codes[:, outer]).groupby(own).nunique()
        n_span = int((spans > 1).sum())
        if 0 < n_span <= 0.1 * len(spans):
            warn(
                f"Factor {names[inner]!r} is declared nested in {names[outer]!r}; most of "
                f"its labels belong to one level of {names[outer]!r}, but {n_span} appear "
                f"in several (e.g. {spans.index[spans > 1][0]!r} - index in the sorted "
                "labels). They are treated as different groups in each; if that is a data "
                "error, fix the labels.",
                NestingWarning,
            )
    for a in range(n_fac):
        for b in range(a + 1, n_fac):
            na, nb = len(levels[a]), len(levels[b])
            if na == nb and _n_cells(codes[:, a], codes[:, b]) == na:
                raise ValueError(
                    f"Factors {names[a]!r} and {names[b]!r} group the rows identically "
                    "(one is a relabelling of the other), so their effects cannot be told "
                    "apart. Drop one of them."
                )
    if nested is None and n_fac > 1:
        _warn_undeclared_nesting(names, codes, levels)


def _warn_undeclared_nesting(names, codes, levels) -> None:
    """Warn when a factor looks nested in another with reused labels (class 1..k
    in every school) while no nesting was declared."""
    for inner in range(len(names)):
        for outer in range(len(names)):
            n_in, n_out = len(levels[inner]), len(levels[outer])
            if inner == outer or n_in >= n_out:
                continue
            cells = _n_cells(codes[:, outer], codes[:, inner])
            per_outer = pd.Series(codes[:, inner]).groupby(codes[:, outer]).nunique().max()
            if cells >= 2 * n_in and n_in <= 1.5 * per_outer:
                warn(
                    f"The labels of factor {names[inner]!r} repeat across the levels of "
                    f"{names[outer]!r} (its {n_in} labels appear in {cells} combinations): "
                    f"if {names[inner]!r} is nested in {names[outer]!r} (label 1 in one "
                    f"{names[outer]!r} is not label 1 in another), declare "
                    f"nested=[({names[outer]!r}, {names[inner]!r})]; if the factors are "
                    "crossed, pass nested=False to say so.",
                    NestingWarning,
                )
                return


def prediction_factor_codes(labels, layout: FactorLayout, n_rows, policy, names=None, counts=None):
    """Codes (rows, factors) of seen levels and of distinct new levels per factor.

    ``POPULATION``: every factor new (one new level each).  Each factor follows
    the unseen-group ``policy`` on its own.  ``counts``: how many rows each row of
    ``labels`` stands for (distinct label combinations), for the policy's message.
    """
    n_fac = len(layout.names)
    if labels is POPULATION:
        return np.full((n_rows, n_fac), -1, dtype=np.intp), np.zeros((n_rows, n_fac), np.intp)
    if labels is None:
        raise MissingGroupsError(
            f"This model was fit with {n_fac} grouping factors {list(layout.names)}, so "
            "predictions need each row's labels: pass `groups=` (a DataFrame with those "
            "columns), or set `group_col` and keep the columns in X. To predict for new "
            "groups of every factor, pass `groups=skhier.POPULATION`."
        )
    frame = label_frame(labels, n_rows, names=list(layout.names))
    missing = [c for c in layout.names if c not in frame.columns]
    if missing:
        raise ValueError(
            f"`groups` lacks the factor(s) {missing}; the model was fit with "
            f"{list(layout.names)}. Pass one column per factor, named as in training."
        )
    raw = [check_group_labels(frame[c], n_rows, name=f"groups[{c!r}]") for c in layout.names]
    codes = np.empty((n_rows, n_fac), dtype=np.intp)
    new = np.full((n_rows, n_fac), -1, dtype=np.intp)
    for f, name in enumerate(layout.names):
        chain = layout.chain(f)
        if len(chain) == 1:
            codes[:, f] = encode(raw[f], layout.levels[f])
            key = raw[f]
        else:
            index = pd.MultiIndex.from_tuples(list(layout.levels[f]))
            keys = pd.MultiIndex.from_arrays([raw[c] for c in chain])
            codes[:, f] = index.get_indexer(keys)
            key = np.empty(n_rows, dtype=object)
            key[:] = list(keys)
        unseen = codes[:, f] < 0
        if unseen.any():
            check_unseen(key, unseen, layout.levels[f], policy, factor=name, counts=counts)
            new[unseen, f], _ = pd.factorize(pd.Series(key[unseen], dtype=object))
    return codes, new
