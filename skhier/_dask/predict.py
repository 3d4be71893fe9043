"""Lazy prediction on Dask collections: the in-memory methods mapped over the
partitions, with what must hold across partitions decided once on the client.

* The fitted model is copied when the method is called (later refits do not
  change a lazy result) and shipped to each worker once (one key of the graph).
* Group labels are checked against ``unseen_groups`` on the client, from the
  distinct labels and their counts (one pass over the group column), so a
  warning or error reaches the caller as in memory, once, with whole-data counts.
* ``sample_y``'s columns are joint draws across partitions: every partition uses
  the same posterior draws, and a new group's effect in a column is drawn from a
  stream keyed by its label, so rows of one new group share it wherever they are.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np

from skhier._dask.frames import (
    _COLUMNS,
    ALIGNMENT_HELP,
    _series,
    _tree,
    is_dask,
    n_columns,
    row_blocks,
)
from skhier._util.seeds import generator


def lazy(est, method, X, groups, **kwargs):
    """``est.<method>`` over the partitions of ``X``: a lazy Dask Series or DataFrame
    for a Dask DataFrame, a Dask Array for an Array."""
    import dask
    from sklearn.utils.validation import check_is_fitted


    check_is_fitted(est)
    n_columns(X)  # a 2-D X (a Series is a common slip)
    _check_groups(est, X, groups)
    model = dask.delayed(_snapshot(est), pure=True)  # shipped to each worker once
    lazy_groups = groups if is_dask(groups) else None
    if lazy_groups is None:
        kwargs["groups"] = groups
    if not hasattr(X, "divisions"):
        return _lazy_array(model, method, X, lazy_groups, kwargs)
    frame = X
    if lazy_groups is not None:
        try:
            frame = X.assign(**{_COLUMNS[1]: _series(lazy_groups)})
        except (ValueError, NotImplementedError) as exc:
            raise ValueError(ALIGNMENT_HELP + f" ({exc})") from exc
    result = frame.map_partitions(
        _call_partition, model, method, kwargs, meta=_meta(method, kwargs)
    )
    if method == "predict" and kwargs.get("return_std"):
        return result["mean"], result["std"]
    return result


def _snapshot(est):
    """A copy of the fitted model for the workers, so a later refit does not change
    a lazy result.  ``unseen_groups`` was applied once, for all the rows, on the
    client (:func:`_check_groups`), so the copy predicts unseen labels from the
    population without warning again in every partition.  Setting that on the copy
    is thread-safe, where filtering warnings in each task is not (Dask runs
    partitions in threads)."""
    snapshot = copy.deepcopy(est)
    if snapshot.unseen_groups == "warn":
        snapshot.unseen_groups = "population"
    return snapshot


def sample_kwargs(est, n_samples, random_state):
    """``sample_y``'s draws, decided on the client: the posterior draws every
    partition uses, and the seeds of the noise and of new groups' effects."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    rng = generator(random_state)
    total = est.posterior_.n_joint
    draw_idx = rng.choice(total, size=n_samples, replace=n_samples > total)
    return {"draw_idx": draw_idx, "seed": int(rng.integers(2**62)), "n_samples": n_samples}


def _check_groups(est, X, groups):
    """Refuse in-memory labels for lazy rows; apply ``unseen_groups`` once, here,
    from the distinct labels (label combinations, with several factors) and their
    counts: one pass over the group columns."""
    from skhier._data.groups import POPULATION

    if groups is not None and groups is not POPULATION and not is_dask(groups):
        raise TypeError(
            f"X is a Dask collection but `groups` is a {type(groups).__name__}: pass groups "
            "as a Dask Series or Array with the same rows as X, skhier.POPULATION, or keep "
            "the labels in X with `group_col`."
        )
    labels = groups
    if groups is None and est.group_col is not None and hasattr(X, "columns"):
        columns = est.group_col if isinstance(est.group_col, (list, tuple)) else [est.group_col]
        present = [c for c in columns if c in X.columns]
        labels = None
        if present == list(columns):  # else each partition's in-memory call raises
            labels = X[columns[0]] if len(columns) == 1 else X[list(columns)]
    if not is_dask(labels) or est.unseen_groups == "population":
        return
    distinct, counts = _distinct_labels(labels)
    est.posterior_.prediction_codes(est, distinct, len(distinct), counts=counts)


def _distinct_labels(labels):
    """Distinct labels (a frame of distinct combinations for several columns) and
    the rows each stands for."""
    if labels.ndim == 2 and hasattr(labels, "groupby"):  # several factors' columns
        combos = labels.groupby(list(labels.columns)).size().compute()
        return combos.index.to_frame(index=False), combos.to_numpy()
    if labels.ndim != 1:
        raise ValueError("`groups` must be one-dimensional: one label per row.")
    if hasattr(labels, "value_counts"):
        found = labels.value_counts().compute()
        distinct, counts = np.asarray(found.index), found.to_numpy()
    else:  # a Dask Array
        import dask
        import dask.array as da

        distinct, counts = dask.compute(*da.unique(labels, return_counts=True))
    distinct = distinct if distinct.dtype.kind in "biuf" else distinct.astype(object)
    return distinct, counts


def _call(est, method, x, g, kwargs):
    """The in-memory method on one block, as a pandas object for a DataFrame
    block (with its index) or a numpy array otherwise."""
    import pandas as pd

    kwargs = dict(kwargs)
    groups = kwargs.pop("groups", None)
    groups = g if g is not None else groups
    if len(x) == 0:
        out = _empty(method, kwargs)
    else:
        if method == "sample_y":
            out = _sample_block(est, x, groups, **kwargs)
        else:
            out = getattr(est, method)(x, groups=groups, **kwargs)
    if not isinstance(x, pd.DataFrame):
        return np.column_stack(out) if isinstance(out, tuple) else out
    if isinstance(out, tuple):  # predict(return_std=True)
        return pd.DataFrame({"mean": out[0], "std": out[1]}, index=x.index)
    if out.ndim == 1:
        return pd.Series(out, index=x.index, name="prediction")
    return pd.DataFrame(out, index=x.index, columns=_meta(method, kwargs).columns)


def _empty(method, kwargs):
    width = _width(method, kwargs)
    if method == "predict" and width is not None:
        return np.empty(0), np.empty(0)
    return np.empty(0) if width is None else np.empty((0, width))


def _sample_block(est, x, groups, draw_idx, seed, n_samples):
    """:meth:`sample_y` on one block with the client's draws (see the module): a new
    group's (level's) standard normals come from a stream keyed by its factor and
    label, so its rows share one effect per column across blocks."""
    from skhier._data.groups import split_group_column

    post = est.posterior_
    X, codes, new_codes = est._prepare(x, groups)
    noise_rng = np.random.default_rng([seed, _row_key(x)])
    normals = None
    if (new_codes >= 0).any():
        _, labels = split_group_column(x, groups, est.group_col)
        found = post.new_level_labels(est, labels, new_codes)
        normals = [
            _keyed_normals(seed, f, labs, (len(draw_idx), q))
            for f, (labs, q) in enumerate(zip(found, post.effect_sizes(), strict=True))
        ]
    return post.predictive_draws(X, codes, new_codes, draw_idx, noise_rng, new_normals=normals)


def _keyed_normals(seed, factor, labels, shape):
    """Standard normals ``shape`` per label, stacked on axis 1: each from a stream
    keyed by the factor and the label (the same in every block and process)."""
    if not labels:
        return np.empty((shape[0], 0, shape[1]))
    return np.stack(
        [np.random.default_rng([seed, factor, _label_key(lab)]).standard_normal(shape)
         for lab in labels],
        axis=1,
    )  # fmt: skip


def _label_key(label) -> int:
    """A stable 63-bit key of a group label (the same in every process)."""
    digest = hashlib.blake2b(repr(label).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _row_key(x) -> int:
    """A key of a block's rows for its noise stream (its first index value, else its
    length), so blocks draw different noise."""
    index = getattr(x, "index", None)
    first = index[0] if index is not None and len(index) else len(x)
    return _label_key(("rows", repr(first), len(x)))


def _call_block(x, _y, g, est, method, kwargs):
    """:func:`_call` in the argument order of :meth:`RowBlocks.map`."""
    return _call(est, method, x, g, kwargs)


def _call_partition(part, est, method, kwargs):
    """One partition of :func:`lazy` (a DataFrame: the result keeps its index, and
    Dask keeps it aligned with every other column of X's source)."""
    g = None
    if _COLUMNS[1] in part.columns:
        g, part = part[_COLUMNS[1]], part.drop(columns=[_COLUMNS[1]])
    return _call(est, method, part, g, kwargs)


def _meta(method, kwargs):
    import pandas as pd

    width = _width(method, kwargs)
    if width is None:
        return pd.Series([], dtype=float, name="prediction")
    if method == "sample_y":
        cols = [f"sample_{i}" for i in range(width)]
    else:
        cols = ["mean", "std"] if method == "predict" else ["lower", "upper"]
    return pd.DataFrame({c: pd.Series([], dtype=float) for c in cols})


def _lazy_array(model, method, X, groups, kwargs):
    """:func:`lazy` for a Dask Array (blocks of known sizes, concatenated)."""
    import dask.array as da

    sizes = X.chunks[0]
    if any(np.isnan(s) for s in sizes):
        raise ValueError(
            "X's row chunks have unknown sizes; call `X.compute_chunk_sizes()` first, "
            "or pass a Dask DataFrame."
        )
    width = _width(method, kwargs)
    arrays = []
    parts = row_blocks(X, None, groups).map(_call_block, model, method, kwargs)
    for i, part in enumerate(parts):
        shape = (int(sizes[i]),) if width is None else (int(sizes[i]), width)
        arrays.append(da.from_delayed(part, shape=shape, dtype=float))
    result = da.concatenate(arrays, axis=0)
    if method == "predict" and width is not None:
        return result[:, 0], result[:, 1]
    return result


def _width(method, kwargs):
    """Columns of a method's result per row (None: one value per row)."""
    if method == "predict":
        return 2 if kwargs.get("return_std") else None
    if method == "predict_interval":
        return 2
    return int(kwargs["n_samples"])


# ----------------------------------------------------------------------- score
def r2_score(est, X, y, groups, sample_weight=None):
    """R^2 of ``est.predict`` over the partitions, from per-partition sums (the
    predictions never leave the workers)."""
    import dask
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est)
    if sample_weight is not None:
        raise ValueError(
            "score with Dask input does not take `sample_weight`; compute the predictions "
            "(est.predict(X).compute()) and use sklearn.metrics.r2_score with weights."
        )
    if y is None:
        raise ValueError("score needs `y`: pass the target as a Dask Series or Array.")
    _check_groups(est, X, groups)
    plain_groups = None if is_dask(groups) else groups
    blocks = row_blocks(X, y, groups if is_dask(groups) else None)
    model = dask.delayed(_snapshot(est), pure=True)
    parts = blocks.map(_score_part, model, plain_groups)
    n, _, m2, sse = _tree(parts, _add_scores).compute()
    if n < 2:
        return float("nan")  # scikit-learn's r2_score is undefined for one sample
    if m2 == 0.0:  # constant y: scikit-learn's r2_score convention
        return 1.0 if sse == 0.0 else 0.0
    return 1.0 - sse / m2


def _score_part(x, y, g, est, plain_groups):
    """(rows, mean of y, its sum of squares about that mean, squared error)."""
    from sklearn.utils import check_array

    y = check_array(y, dtype=np.float64, ensure_2d=False, ensure_min_samples=0, input_name="y")
    y = y.ravel()
    if len(y) != len(x):
        raise ValueError(f"A partition of y has {len(y)} rows but X's has {len(x)}.")
    if len(y) == 0:
        return 0, 0.0, 0.0, 0.0
    pred = _call(est, "predict", x, g if g is not None else None, {"groups": plain_groups})
    pred = np.asarray(pred, dtype=np.float64)
    mean = float(y.mean())
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
