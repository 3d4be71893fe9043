"""Group labels <-> integer codes, validation and unseen-group detection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .exceptions import MissingGroupsError, UnseenGroupError


class _Population:
    """Sentinel asking for population-level predictions (one new, unseen group)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "skhier.POPULATION"

    def __reduce__(self):
        return (_Population, ())


#: Pass ``groups=POPULATION`` to a prediction method to predict for a new group
#: drawn from the population (all rows share that one new group).
POPULATION = _Population()


def check_group_labels(groups, n_rows: int, name: str = "groups") -> np.ndarray:
    """Validate group labels and return them as a 1-D numpy array.

    Raises ``ValueError`` for a wrong length, a non 1-D input or missing labels
    (None / NaN / inf).
    """
    if isinstance(groups, pd.DataFrame):
        if groups.shape[1] != 1:
            raise ValueError(
                f"`{name}` must be one-dimensional (one label per row); got a "
                f"DataFrame with {groups.shape[1]} columns. Pass a single column."
            )
        groups = groups.iloc[:, 0]
    if isinstance(groups, (pd.Series, pd.Index, pd.Categorical)):
        labels = np.asarray(groups)  # category / extension dtypes -> their values
        if labels.dtype.kind not in "biuf":
            labels = labels.astype(object)
    else:
        labels = np.asarray(groups)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"`{name}` must be one-dimensional (one label per row); got an array "
            f"of shape {labels.shape}."
        )
    if labels.shape[0] != n_rows:
        raise ValueError(
            f"`{name}` has {labels.shape[0]} labels but X has {n_rows} rows; "
            f"pass exactly one group label per row of X."
        )
    missing = pd.isna(labels)
    if labels.dtype.kind == "f":
        missing = missing | ~np.isfinite(labels)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"`{name}` contains {int(missing.sum())} missing or non-finite labels "
            f"(first at row {first}); every row needs a group label. Drop those rows "
            f"or give them a label of their own."
        )
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)
    return labels


def _sort_key(label):
    return (type(label).__name__, label)


def unique_labels(labels: np.ndarray) -> np.ndarray:
    """Sorted unique labels (mixed types are sorted by type name, then value)."""
    try:
        return np.unique(labels)
    except TypeError:
        uniq = pd.unique(pd.Series(labels, dtype=object))
        out = np.empty(len(uniq), dtype=object)
        out[:] = sorted(uniq, key=_sort_key)
        return out


def encode(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Integer codes of ``labels`` in ``classes``; -1 for labels not in ``classes``."""
    if labels.dtype.kind in "iuf" and classes.dtype.kind in "iuf":
        # numeric labels: binary search in the sorted classes (no hashing of objects)
        idx = np.minimum(np.searchsorted(classes, labels), len(classes) - 1)
        return np.where(classes[idx] == labels, idx, -1).astype(np.intp)
    index = pd.Index(np.asarray(classes, dtype=object))
    return np.asarray(index.get_indexer(np.asarray(labels, dtype=object)), dtype=np.intp)


def new_group_codes(labels: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Codes 0..n_new-1 identifying distinct unseen labels (-1 for seen rows)."""
    out = np.full(labels.shape[0], -1, dtype=np.intp)
    if unseen.any():
        out[unseen], _ = pd.factorize(pd.Series(labels[unseen], dtype=object))
    return out


def split_group_column(X, groups, group_col):
    """Take the ``group_col`` column out of a pandas ``X``; return (features, labels)."""
    if group_col is None:
        return X, groups
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"`group_col={group_col!r}` needs X to be a pandas DataFrame with that "
            f"column; got {type(X).__name__}. Pass a DataFrame, or set group_col=None "
            "and pass `groups=`."
        )
    if group_col not in X.columns:
        raise ValueError(
            f"`group_col={group_col!r}` is not a column of X (columns: {list(X.columns)}). "
            "Add the group column to X or fix `group_col`."
        )
    labels = X[group_col]
    if groups is POPULATION:
        labels = POPULATION
    elif groups is not None:
        given = check_group_labels(groups, len(labels))
        if not np.array_equal(np.asarray(labels, dtype=object), given.astype(object)):
            raise ValueError(
                f"Both `groups` and the column `group_col={group_col!r}` were given and "
                "they disagree. Pass the group labels one way only."
            )
    return X.drop(columns=[group_col]), labels


def prediction_codes(labels, n_rows, classes, unseen_policy):
    """Codes of seen groups and of distinct new groups for a prediction method.

    Returns ``(codes, new_codes)``: ``codes`` index ``classes`` for seen rows;
    ``new_codes`` number the distinct unseen groups (-1 for seen rows).
    """
    if labels is POPULATION:
        return np.zeros(n_rows, dtype=np.intp), np.zeros(n_rows, dtype=np.intp)
    if labels is None:
        if len(classes) > 1:
            raise MissingGroupsError(
                f"This model was fit with {len(classes)} groups, so predictions need the "
                "group of each row: pass `groups=` (one label per row of X), or set "
                "`group_col` and keep that column in X. To predict for a new group drawn "
                "from the population, pass `groups=skhier.POPULATION`."
            )
        return np.zeros(n_rows, dtype=np.intp), np.full(n_rows, -1, dtype=np.intp)
    labels = check_group_labels(labels, n_rows)
    codes = encode(labels, classes)
    unseen = codes < 0
    if unseen.any() and unseen_policy == "raise":
        missing = pd.unique(pd.Series(labels[unseen], dtype=object))
        raise UnseenGroupError(
            f"{len(missing)} group label(s) were not seen in training (e.g. "
            f"{list(missing[:5])}) and unseen_groups='raise'. Use "
            "unseen_groups='population' to predict them from the population "
            "distribution, or pass `groups=skhier.POPULATION` explicitly."
        )
    return codes, new_group_codes(labels, unseen)
