"""Dask collections: the out-of-core fit's one pass and lazy prediction.

Nothing here imports Dask at module level (``import skhier`` never does): a
collection is recognised by its type's module, and Dask is imported only once
one has been passed in.

The fit reads every partition once on the workers; each partition becomes the
per-group moments of :mod:`skhier._moments` (a few numbers per group), which are
combined pairwise in a tree on the workers as well, so the client receives one
small result.  Prediction ships the fitted model to the workers once (one key of
the graph) and maps the in-memory method over the partitions.
"""

from __future__ import annotations

import numpy as np

#: the fan-in of the tree that combines the partitions' moments
SPLIT_EVERY = 8


def is_dask(obj) -> bool:
    """Whether ``obj`` is a Dask collection (DataFrame, Series or Array)."""
    return type(obj).__module__.partition(".")[0] == "dask" and hasattr(obj, "__dask_graph__")


def refuse(*objs, what="This method") -> None:
    """Raise a clear error when a Dask collection reaches code that needs the rows."""
    if any(is_dask(o) for o in objs):
        raise TypeError(
            f"{what} needs the rows in memory and got a Dask collection. Out of core, "
            "skhier fits HierarchicalRegressor with its collapsed engine (Gaussian noise, "
            "one grouping factor) and predicts lazily with predict, predict_interval, "
            "sample_y and score. Compute the data first (e.g. `X.compute()`, or a sample "
            "of it) to use this method."
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


def row_blocks(X, y=None, groups=None):
    """Delayed row blocks of ``X``, ``y`` and ``groups`` (None where not given),
    checked to be partitioned alike."""
    given = {"X": X, "y": y, "groups": groups}
    for name, obj in given.items():
        if name != "X" and obj is not None and not is_dask(obj):
            raise TypeError(
                f"X is a Dask collection but `{name}` is a {type(obj).__name__}: pass "
                f"`{name}` as a Dask collection partitioned like X (e.g. both columns of one "
                "Dask DataFrame), or put the group labels in X and set `group_col`."
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
    return [(blocks["X"][i], *(b[i] if b is not None else None for b in others)) for i in range(n)]


_COLUMNS = ("__skhier_y__", "__skhier_groups__")


def _frame_blocks(X, y, groups):
    """Row blocks of a Dask DataFrame X with Series y / groups, taken from one frame:
    Dask may partition column selections of the same source differently (it fuses
    small partitions when fewer columns are read), so X, y and groups are assigned
    to one frame and split again within each partition."""
    import dask

    extra = {n: _series(o) for n, o in zip(_COLUMNS, (y, groups), strict=True) if o is not None}
    try:
        frame = X.assign(**extra)
    except (ValueError, NotImplementedError) as exc:
        raise ValueError(
            "X, y and groups cannot be aligned row by row. Take them from one Dask "
            f"DataFrame (e.g. df[features], df['y'], df['group']). ({exc})"
        ) from exc
    split = dask.delayed(_split_frame, pure=True, nout=3)
    return [split(part, y is not None, groups is not None) for part in frame.to_delayed()]


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


def reduce_blocks(blocks, chunk, combine_many, **kwargs):
    """``combine_many`` over ``chunk(x, y, groups, **kwargs)`` of every row block,
    computed on the current Dask scheduler; the client receives the result only."""
    import dask

    parts = [dask.delayed(chunk, pure=True)(*b, **kwargs) for b in blocks]
    return _tree(parts, combine_many).compute()


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


# ------------------------------------------------------------------ prediction
def _call(est, method, x, g, kwargs):
    """The in-memory method on one block, as a pandas object for a DataFrame
    block (with its index) or a numpy array otherwise."""
    import pandas as pd

    kwargs = dict(kwargs)
    groups = g if g is not None else kwargs.pop("groups", None)
    out = getattr(est, method)(x, groups=groups, **kwargs)
    if not isinstance(x, pd.DataFrame):
        return np.column_stack(out) if isinstance(out, tuple) else out
    if isinstance(out, tuple):  # predict(return_std=True)
        return pd.DataFrame({"mean": out[0], "std": out[1]}, index=x.index)
    if out.ndim == 1:
        return pd.Series(out, index=x.index, name="prediction")
    columns = ["lower", "upper"] if method == "predict_interval" else range(out.shape[1])
    return pd.DataFrame(out, index=x.index, columns=columns)


def lazy(est, method, X, groups, seeds=None, **kwargs):
    """``est.<method>`` over the partitions of ``X``: a lazy Dask Series or DataFrame
    for a Dask DataFrame, a Dask Array for an Array.  ``seeds`` gives each block
    its own ``random_state`` (``sample_y``)."""
    import dask

    model = dask.delayed(est, pure=True)  # one key: shipped to each worker once
    lazy_groups = groups if is_dask(groups) else None
    if lazy_groups is None:
        kwargs["groups"] = groups
    if not hasattr(X, "divisions"):
        return _lazy_array(model, method, X, lazy_groups, seeds, kwargs)
    frame = X
    if lazy_groups is not None:
        try:
            frame = X.assign(**{_COLUMNS[1]: _series(lazy_groups)})
        except (ValueError, NotImplementedError) as exc:
            raise ValueError(
                "X and groups cannot be aligned row by row. Take them from one Dask "
                f"DataFrame, or name the group column with `group_col`. ({exc})"
            ) from exc
    result = frame.map_partitions(
        _call_partition, model, method, kwargs, seeds, meta=_meta(method, kwargs)
    )
    if method == "predict" and kwargs.get("return_std"):
        return result["mean"], result["std"]
    return result


def _series(obj):
    """A Dask Series (a one-column DataFrame's column) to align with a Dask DataFrame."""
    if not hasattr(obj, "divisions"):
        raise TypeError(
            "X is a Dask DataFrame: pass y and groups as Dask Series (e.g. columns of the "
            f"same DataFrame), not a {type(obj).__name__}."
        )
    if obj.ndim == 2 and len(obj.columns) != 1:
        raise ValueError(f"y and groups must be one column each; got {len(obj.columns)}.")
    return obj[obj.columns[0]] if obj.ndim == 2 else obj


def _call_partition(part, est, method, kwargs, seeds, partition_info=None):
    """One partition of :func:`lazy` (a DataFrame: the result keeps its index, and
    Dask keeps it aligned with every other column of X's source)."""
    g = None
    if _COLUMNS[1] in part.columns:
        g, part = part[_COLUMNS[1]], part.drop(columns=[_COLUMNS[1]])
    if seeds is not None:
        kwargs = {**kwargs, "random_state": seeds[partition_info["number"]]}
    return _call(est, method, part, g, kwargs)


def _meta(method, kwargs):
    import pandas as pd

    width = _width(method, kwargs)
    if width is None:
        return pd.Series([], dtype=float, name="prediction")
    if method == "sample_y":
        return pd.DataFrame(np.empty((0, width)))
    cols = ["mean", "std"] if method == "predict" else ["lower", "upper"]
    return pd.DataFrame({c: pd.Series([], dtype=float) for c in cols})


def _lazy_array(model, method, X, groups, seeds, kwargs):
    """:func:`lazy` for a Dask Array (blocks of known sizes, concatenated)."""
    import dask
    import dask.array as da

    sizes = X.chunks[0]
    if any(np.isnan(s) for s in sizes):
        raise ValueError(
            "X's row chunks have unknown sizes; call `X.compute_chunk_sizes()` first, "
            "or pass a Dask DataFrame."
        )
    width = _width(method, kwargs)
    arrays = []
    for i, (x, _, g) in enumerate(row_blocks(X, None, groups)):
        kw = dict(kwargs) if seeds is None else {**kwargs, "random_state": seeds[i]}
        part = dask.delayed(_call, pure=True)(model, method, x, g, kw)
        shape = (int(sizes[i]),) if width is None else (int(sizes[i]), width)
        arrays.append(da.from_delayed(part, shape=shape, dtype=float))
    result = da.concatenate(arrays, axis=0)
    if method == "predict" and width is not None:
        return result[:, 0], result[:, 1]
    return result


def r2_score(est, X, y, groups, sample_weight=None):
    """R^2 of ``est.predict`` over the partitions, from per-partition sums (the
    predictions never leave the workers)."""
    import dask

    if sample_weight is not None:
        raise ValueError(
            "score with Dask input does not take `sample_weight`; compute the predictions "
            "(est.predict(X).compute()) and use sklearn.metrics.r2_score with weights."
        )
    plain_groups = None if is_dask(groups) else groups
    blocks = row_blocks(X, y, groups if is_dask(groups) else None)
    model = dask.delayed(est, pure=True)
    parts = [
        dask.delayed(_score_part, pure=True)(model, x, yb, g, plain_groups) for x, yb, g in blocks
    ]
    n, _, m2, sse = _tree(parts, _add_scores).compute()
    if m2 == 0.0:  # constant y: scikit-learn's r2_score convention
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / m2


def _score_part(est, x, y, g, plain_groups):
    """(rows, mean of y, its sum of squares about that mean, squared error)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    pred = est.predict(x, groups=g if g is not None else plain_groups)
    if len(y) != len(pred):
        raise ValueError("X and y have partitions of different lengths; partition them alike.")
    mean = float(y.mean()) if len(y) else 0.0
    return len(y), mean, float(((y - mean) ** 2).sum()), float(((y - pred) ** 2).sum())


def _add_scores(*parts):
    """Chan et al.'s pairwise update of (n, mean, M2) plus the summed errors."""
    n, mean, m2, sse = parts[0]
    for nb, mb, m2b, sseb in parts[1:]:
        total = n + nb
        if nb:
            delta = mb - mean
            mean += delta * nb / total
            m2 += m2b + delta**2 * n * nb / total
        n, sse = total, sse + sseb
    return n, mean, m2, sse


def block_seeds(random_state, X):
    """One independent seed per row block (``sample_y``), from ``random_state``."""
    from sklearn.utils import check_random_state

    n_blocks = X.npartitions if hasattr(X, "divisions") else len(X.chunks[0])
    root = np.random.SeedSequence(int(check_random_state(random_state).randint(2**31 - 1)))
    return [int(s.generate_state(1)[0]) for s in root.spawn(n_blocks)]


def _width(method, kwargs):
    """Columns of a method's result per row (None: one value per row)."""
    if method == "predict":
        return 2 if kwargs.get("return_std") else None
    if method == "predict_interval":
        return 2
    return int(kwargs["n_samples"])
