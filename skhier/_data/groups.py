"""Group labels <-> integer codes, validation and unseen-group detection."""

from __future__ import annotations

import difflib

import numpy as np
import pandas as pd

from skhier._util.warn import warn
from skhier.exceptions import (
    MissingGroupsError,
    NoGroupsWarning,
    UnseenGroupError,
    UnseenGroupWarning,
)


class _Population:
    """Sentinel for "no group effects": population-level predictions (one new,
    unseen group), or a fit with one group for all rows."""

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
#: drawn from the population (all rows share that one new group), or to ``fit`` to
#: fit one group on purpose (complete pooling, no warning; its line is the one
#: group's, ``group_intercept_[0]`` and ``group_coef_[0]``, and predictions with
#: ``groups=POPULATION`` or None use it).
POPULATION = _Population()


def refuse_column_name(groups, name: str = "groups") -> None:
    """Raise for a column name given as ``groups``: labels are data, one per row; a
    column of ``X`` is named with ``group_col``."""
    if isinstance(groups, str):
        raise ValueError(
            f"`{name}={groups!r}` is a string, but `{name}` takes the group labels "
            "themselves, one per row. To take them from a column of X, use "
            f"group_col={groups!r} (and leave `{name}` out), or pass the column itself, "
            f"e.g. {name}=X[{groups!r}]."
        )


def check_group_labels(groups, n_rows: int, name: str = "groups") -> np.ndarray:
    """Validate group labels and return them as a 1-D numpy array.

    Raises ``ValueError`` for a wrong length, a non 1-D input or missing labels
    (None / NaN / inf).
    """
    refuse_column_name(groups, name)
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
        if labels.dtype.kind in "US" and isinstance(groups, (list, tuple)):
            # numpy turns [0, 5, "new"] into strings; keep each label's own type
            if any(not isinstance(v, str) for v in groups):
                labels = np.empty(len(groups), dtype=object)
                labels[:] = groups
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
    """Take the ``group_col`` column(s) out of a pandas or Dask DataFrame ``X``;
    return ``(features, labels)``: a Series for one column, a DataFrame for several.

    The one rule for every fit and prediction method: ``groups`` and ``group_col``
    may both be given only when they agree (checked for in-memory data; Dask input
    takes one or the other), and ``groups=POPULATION`` needs no group column.
    """
    if isinstance(groups, str):
        refuse_column_name(groups)
    if group_col is None:
        return X, groups
    cols = [group_col] if isinstance(group_col, str) else list(group_col)
    if groups is POPULATION and not hasattr(X, "columns"):  # no group column needed
        return X, POPULATION
    if not hasattr(X, "columns"):
        raise TypeError(
            f"`group_col={group_col!r}` needs X to be a pandas DataFrame with that "
            f"column; got {type(X).__name__}. Pass a DataFrame, or set group_col=None "
            "and pass `groups=`."
        )
    if groups is POPULATION:
        return X.drop(columns=[c for c in cols if c in X.columns]), POPULATION
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise ValueError(
            f"`group_col={group_col!r}` is not a column of X (columns: {list(X.columns)}). "
            "Add the group column to X or fix `group_col`."
        )
    labels = X[cols[0]] if len(cols) == 1 else X[cols]
    if groups is not None:
        if type(X).__module__.partition(".")[0] == "dask":
            raise ValueError(
                f"Both `groups` and `group_col={group_col!r}` were given; with Dask input "
                "pass the group labels one way only."
            )
        given = np.asarray(groups, dtype=object).reshape(np.shape(labels))
        if not np.array_equal(np.asarray(labels, dtype=object), given):
            raise ValueError(
                f"Both `groups` and the column(s) `group_col={group_col!r}` were given and "
                "they disagree. Pass the group labels one way only."
            )
    return X.drop(columns=cols), labels


def prediction_codes(labels, n_rows, classes, unseen_policy, fit_with_groups=True, counts=None):
    """Codes of seen groups and of distinct new groups for a prediction method.

    Returns ``(codes, new_codes)``: ``codes`` index ``classes`` for seen rows;
    ``new_codes`` number the distinct unseen groups (-1 for seen rows).
    ``counts``: how many rows each label stands for (distinct labels), for the
    unseen-group policy's message.
    """
    if labels is POPULATION:
        if not fit_with_groups:  # the one group of a model fit without groups
            return np.zeros(n_rows, dtype=np.intp), np.full(n_rows, -1, dtype=np.intp)
        return np.zeros(n_rows, dtype=np.intp), np.zeros(n_rows, dtype=np.intp)
    if labels is not None and not fit_with_groups:
        check_group_labels(labels, n_rows)
        warn(
            "This model was fit without groups (one group: complete pooling), so the "
            "`groups` given for prediction are ignored. Refit with `groups=` to get "
            "group-level predictions, or predict without `groups`.",
            NoGroupsWarning,
        )
        labels = None
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
    if unseen.any():
        check_unseen(labels, unseen, classes, unseen_policy, counts=counts)
    return codes, new_group_codes(labels, unseen)


def check_unseen(labels, unseen, classes, policy, factor=None, counts=None) -> None:
    """Raise or warn about labels not seen in training, as ``policy`` says
    (``factor``: the grouping factor's name, in models with several; ``counts``:
    rows per label when ``labels`` are distinct labels rather than one per row).

    Labels that would match a training label after a type conversion (the string
    ``"1"`` for the integer ``1``) are always an error.  Costs one pass over the
    unseen rows plus work on their distinct labels.
    """
    missing = pd.unique(labels[unseen])
    if counts is None:
        n_rows, n_unseen = len(labels), int(unseen.sum())
    else:
        n_rows, n_unseen = int(counts.sum()), int(counts[unseen].sum())
    examples = [_plain(v) for v in missing[:5]]
    where = "" if factor is None else f"Factor {factor!r}: "
    converted = _match_after_conversion(missing, classes)
    if converted is not None:
        raise TypeError(
            f"{where}Group labels {examples} were not seen in training, but {converted}. "
            "Pass group labels of the same type as in training."
        )
    if policy == "raise":
        raise UnseenGroupError(
            f"{where}{len(missing)} group label(s) were not seen in training (e.g. {examples}) "
            "and unseen_groups='raise'. Use unseen_groups='population' to predict them "
            "from the population distribution, or pass `groups=skhier.POPULATION` "
            "explicitly."
        )
    if policy != "warn":
        return
    given, trained = _kind(missing), _kind(classes[:1000])
    same_kind = given == trained or {given, trained} <= {"integer", "floating"}
    types = ("", "") if same_kind else (f", of type {given}", f", of type {trained}")
    what = (
        f"None of the {len(missing)} group label(s) given (e.g. {examples}{types[0]}) "
        f"matches a group seen in training (e.g. {[_plain(v) for v in classes[:3]]}"
        f"{types[1]})"
        if n_unseen == n_rows
        else f"{n_unseen} of {n_rows} rows have group labels not seen in training "
        f"({len(missing)} distinct, e.g. {examples}{types[0]})"
    )
    hints = _near_misses(missing[:5], classes)
    warn(
        f"{where}{what}; they are predicted from the population (one new group per label). "
        + (f"Did you mean {hints}? " if hints else "")
        + "If these are new groups on purpose (e.g. GroupKFold), set "
        "unseen_groups='population' (or pass groups=skhier.POPULATION for one new "
        "group); otherwise check the labels (typos, ids vs names, the wrong column). "
        "unseen_groups='raise' makes this an error.",
        UnseenGroupWarning,
    )


def _plain(value):
    """A label as a plain Python value, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _match_after_conversion(missing, classes):
    """Describe how unseen labels match training labels after a type change, or None."""
    missing = pd.Series(missing, dtype=object)
    if classes.dtype.kind in "iuf":
        strings = missing[missing.map(lambda v: isinstance(v, str))]
        numbers = pd.to_numeric(strings, errors="coerce").dropna().to_numpy()
        if len(numbers) and (encode(numbers, classes) >= 0).any():
            return (
                "they are strings of numbers and the model was fit on numeric labels: "
                "convert them, e.g. `groups.astype(int)`"
            )
        return None
    is_num = missing.map(
        lambda v: isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
    )
    numbers = missing[is_num].astype(str)
    if len(numbers) and pd.Index(classes.astype(str)).isin(numbers).any():
        return (
            "they are numbers and the model was fit on string labels: convert them, "
            "e.g. `groups.astype(str)`"
        )
    return None


def _kind(values) -> str:
    return pd.api.types.infer_dtype(values, skipna=False)


def _near_misses(examples, classes, max_classes=5000) -> str:
    """``'St Louis' -> 'ST LOUIS'`` suggestions for unseen string labels."""
    strings = [v for v in examples if isinstance(v, str)]
    if not strings or classes.dtype.kind != "O" or len(classes) > max_classes:
        return ""
    names = [c for c in classes if isinstance(c, str)]
    normal = {" ".join(c.lower().split()): c for c in names}
    out = []
    for label in strings:
        match = normal.get(" ".join(label.lower().split()))
        if match is None:
            close = difflib.get_close_matches(label, names, n=1, cutoff=0.75)
            match = close[0] if close else None
        if match is not None:  # as the user wrote them: str, not numpy's np.str_('...')
            out.append(f"{str(label)!r} -> {str(match)!r}")
    return ", ".join(out)
