"""Dask collections: the out-of-core fit's one pass and lazy prediction.

Nothing here imports Dask at module level (``import skhier`` never does): a
collection is recognised by its type's module, and Dask is imported only once
one has been passed in.

The fit reads every partition once on the workers; each partition becomes the
per-group moments of :mod:`skhier._dask.moments` (a few numbers per group), which are
combined pairwise in a tree on the workers as well, so the client receives one
small result.  Prediction ships the fitted model to the workers once (one key of
the graph) and maps the in-memory method over the partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

#: the fan-in of the tree that combines the partitions' moments
SPLIT_EVERY = 8


def is_dask(obj) -> bool:
    """Whether ``obj`` is a Dask collection (DataFrame, Series or Array)."""
    return type(obj).__module__.partition(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


def refuse(*objs, what="This method") -> None:
    """Raise a clear error when a Dask collection reaches code that needs the rows."""
    if any(is_dask(o) for o in objs):
        raise TypeError(
            f"{what} cannot take a Dask collection: the rows must be in memory. Out of core, "
            "skhier fits HierarchicalRegressor with its collapsed engine (Gaussian noise, "
            "one grouping factor) and predicts lazily with predict, predict_interval, "
            "sample_y and score. Compute the data first (e.g. `X.compute()`, or a sample "
            "of it) to use this method."
        )


def refuse_weights(sample_weight) -> None:
    """Out-of-core fits take no frequency weights (yet): say what to do instead."""
    if sample_weight is not None:
        raise ValueError(
            "fit with Dask input does not take `sample_weight`: the out-of-core fit sums "
            "unweighted rows. Repeat the rows (each as often as its weight), or compute "
            "the data and fit it in memory, where `sample_weight` is supported."
        )


def _blocks(obj, name):
    """One delayed object per row block of a Dask DataFrame, Series or Array."""
    if hasattr(obj, "divisions"):  # DataFrame / Series
        return list(obj.to_delayed())
    if obj.ndim == 2:
        obj = obj.rechunk({1: -1})
        return list(obj.to_delayed()[:, 0])
    if obj.ndim == 1:
        return list(obj.to_delayed())
    raise ValueError(f"`{name}` must be one- or two-dimensional; got {obj.ndim} dimensions.")


class RowBlocks(NamedTuple):
    """The row blocks of X, y and groups: per block a tuple of delayed objects, and
    the function (if any) that turns their values into ``(x, y, groups)``."""

    parts: list
    split: Callable | None = None

    def map(self, func, *args, **kwargs) -> list:
        """One delayed ``func(x, y, groups, *args, **kwargs)`` per block: a block is
        split inside the task that uses it (no task of its own)."""
        import dask

        call = dask.delayed(_apply, pure=True)
        return [call(func, self.split, part, args, kwargs, i) for i, part in enumerate(self.parts)]


def _apply(func, split, part, args, kwargs, index):
    x, y, groups = split(*part) if split is not None else part
    try:
        return func(x, y, groups, *args, **kwargs)
    except (ValueError, TypeError) as exc:  # bad data in one partition: say which
        try:
            named = type(exc)(f"Partition {index} of the Dask input: {exc}")
        except Exception:  # noqa: BLE001 - an exception type with another signature
            raise exc from None
        raise named from exc


def row_blocks(X, y=None, groups=None) -> RowBlocks:
    """The row blocks of ``X``, ``y`` and ``groups`` (None where not given),
    checked to be partitioned alike."""
    given = {"X": X, "y": y, "groups": groups}
    for name, obj in given.items():
        if name != "X" and obj is not None and not is_dask(obj):
            hint = ", or put the group labels in X and set `group_col`" if name == "groups" else ""
            raise TypeError(
                f"X is a Dask collection but `{name}` is a {type(obj).__name__}: pass "
                f"`{name}` as a Dask collection with the same rows as X (e.g. columns of one "
                f"Dask DataFrame){hint}."
            )
    if hasattr(X, "divisions") and any(hasattr(v, "divisions") for v in (y, groups)):
        return _frame_blocks(X, y, groups)
    blocks = {k: _blocks(v, k) if v is not None else None for k, v in given.items()}
    n = len(blocks["X"])
    for name in ("y", "groups"):
        if blocks[name] is not None and len(blocks[name]) != n:
            raise ValueError(
                f"X has {n} partitions but `{name}` has {len(blocks[name])}: they must be "
                "partitioned alike. Take them from one Dask DataFrame, or rechunk Dask "
                "arrays to the same row chunks."
            )
    others = (blocks["y"], blocks["groups"])
    return RowBlocks(
        [(blocks["X"][i], *(b[i] if b is not None else None for b in others)) for i in range(n)]
    )


_COLUMNS = ("__skhier_y__", "__skhier_groups__")
ALIGNMENT_HELP = (
    "Dask joins X, y and groups row by row on their index, which must therefore be the "
    "same rows and unique (Parquet files read separately restart their index at 0 in "
    "every file). Take them from one Dask DataFrame (df[features], df['y'], "
    "df['group']), or keep the group labels in X with `group_col`."
)


def _frame_blocks(X, y, groups):
    """Row blocks of a Dask DataFrame X with Series y / groups, taken from one frame:
    Dask may partition column selections of the same source differently (it fuses
    small partitions when fewer columns are read), so X, y and groups are assigned
    to one frame and split again within each partition."""
    extra = {n: _series(o) for n, o in zip(_COLUMNS, (y, groups), strict=True) if o is not None}
    try:
        frame = X.assign(**extra)
    except (ValueError, NotImplementedError) as exc:
        raise ValueError(ALIGNMENT_HELP + f" ({exc})") from exc
    split = partial(_split_frame, has_y=y is not None, has_groups=groups is not None)
    return RowBlocks([(part,) for part in frame.to_delayed()], split)


def _series(obj):
    """A Dask Series (a one-column DataFrame's column) to align with a Dask DataFrame."""
    if not hasattr(obj, "divisions"):
        raise TypeError(
            "X is a Dask DataFrame: pass y and groups as Dask Series (e.g. columns of the "
            f"same DataFrame), not a {type(obj).__name__}."
        )
    if obj.ndim == 2 and len(obj.columns) != 1:
        raise ValueError(
            f"y and groups must be one column each; got {len(obj.columns)}. Several "
            "grouping factors need the rows in memory (compute them first)."
        )
    return obj[obj.columns[0]] if obj.ndim == 2 else obj


def _split_frame(part, has_y, has_groups):
    """(x, y, groups) of one partition of :func:`_frame_blocks`' frame."""
    y = part[_COLUMNS[0]] if has_y else None
    groups = part[_COLUMNS[1]] if has_groups else None
    return part.drop(columns=[c for c in _COLUMNS if c in part.columns]), y, groups


def _tree(parts, func):
    """Reduce delayed ``parts`` with ``func`` (called on up to SPLIT_EVERY values)."""
    import dask

    while len(parts) > 1:
        parts = [
            dask.delayed(func, pure=True)(*parts[i : i + SPLIT_EVERY])
            for i in range(0, len(parts), SPLIT_EVERY)
        ]
    return parts[0]


def reduce_blocks(blocks: RowBlocks, chunk, combine_many, **kwargs):
    """``combine_many`` over ``chunk(x, y, groups, **kwargs)`` of every row block,
    computed on the current Dask scheduler; the client receives the result only."""
    try:
        return _tree(blocks.map(chunk, **kwargs), combine_many).compute()
    except ValueError as exc:
        if "duplicate labels" in str(exc):  # pandas' reindex inside Dask's alignment
            raise ValueError(ALIGNMENT_HELP + f" ({exc})") from exc
        raise


def frame_meta(X):
    """An empty pandas DataFrame with X's columns and dtypes (an Array: None)."""
    return X._meta if hasattr(X, "divisions") and X.ndim == 2 else None


def n_columns(X) -> int:
    if hasattr(X, "divisions"):
        if X.ndim != 2:
            raise ValueError("X must be two-dimensional: pass a Dask DataFrame, not a Series.")
        return len(X.columns)
    if X.ndim != 2:
        raise ValueError(f"X must be a two-dimensional Dask array; got {X.ndim} dimensions.")
    return int(X.shape[1])
