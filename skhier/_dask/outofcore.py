"""``HierarchicalRegressor.fit`` on Dask collections: one pass over the partitions
for the per-group moments (:mod:`skhier._dask.moments`), then the collapsed engine on
the small result, with the same checks, scaling, warnings and model as the
in-memory fit (which the tests compare it with)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

from skhier._dask import frames as _dask
from skhier._dask import moments as _moments
from skhier._data import checks as _checks
from skhier._data.groups import POPULATION, check_group_labels, split_group_column
from skhier._model.spec import Scaling

_NEEDS_ROWS = (
    "Out of core (Dask input), skhier fits the collapsed engine only: Gaussian noise "
    "and one grouping factor, whose fit needs per-group sums and no rows. "
)


def check_options(est) -> None:
    """Raise for a model option whose fit needs the rows in memory."""
    if est.likelihood != "normal":
        raise ValueError(
            _NEEDS_ROWS + f"likelihood={est.likelihood!r} needs the rows (its noise is not "
            "summarized by sums); use likelihood='normal', or compute the data (X.compute())."
        )
    from skhier._engines.registry import BY_NAME

    if est.engine != "auto" and not BY_NAME[est.engine].summarized:
        raise ValueError(
            _NEEDS_ROWS + f"engine={est.engine!r} samples from the rows; use engine='auto' "
            "or engine='collapsed' (the same posterior)."
        )
    group_col = est.group_col
    if isinstance(group_col, (list, tuple)) and len(group_col) > 1:
        raise ValueError(
            _NEEDS_ROWS + f"group_col={list(group_col)!r} names several grouping factors, "
            "whose Gibbs engine needs the rows; use one grouping factor."
        )


def model_inputs(est, X, y, groups):
    """:meth:`HierarchicalRegressor._model_inputs` for Dask collections: ``(spec,
    scaling, offset, stats)``, the sufficient statistics in place of the rows."""
    from skhier._engines.registry import select_engine

    if not _dask.is_dask(X):
        raise TypeError(
            f"`y` or `groups` is a Dask collection but X is a {type(X).__name__}: pass X "
            "as a Dask DataFrame or Array too (partitioned like them), or compute them."
        )
    if y is None:
        raise ValueError("fit needs `y`: pass the target as a Dask Series or Array.")
    check_options(est)
    lazy_groups = groups is None or groups is POPULATION or _dask.is_dask(groups)
    if est.group_col is None and not lazy_groups:
        _dask.row_blocks(X, None, groups)  # raises: groups must be a Dask collection too
    X, labels = split_group_column(X, groups, est.group_col)
    est._begin_fit(labels)
    n_features = _validate_columns(est, X)
    blocks = _dask.row_blocks(X, y, labels if _dask.is_dask(labels) else None)
    m = _dask.reduce_blocks(blocks, _block_moments, _combine, n_features=n_features)
    if m.n_obs == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    if est._fit_with_groups:
        est._set_groups(m.labels)
        slope_idx = est._design_from_level(n_features, _moments.group_level_features(m), m.n)
    else:
        est._set_groups(np.zeros(1, dtype=np.int64))
        slope_idx = est._design_from_level(n_features, None, None)
    if m.y_values is not None:
        _checks.warn_if_two_values(m.y_values)
    scaling: Scaling = _moments.scaling(m, est.standardize)
    est.parametrization_ = (
        _moments.parametrization(m, scaling)
        if est.parametrization == "auto"
        else est.parametrization
    )
    est.engine_ = select_engine(
        est.engine, est.inference, est.likelihood, int(est._fit_with_groups)
    )
    spec = est._spec(n_features, slope_idx, est.engine_, est.parametrization_)
    stats = _moments.sufficient_stats(m, spec.slope_idx, scaling)
    return spec, scaling, None, stats


def _validate_columns(est, X) -> int:
    """Set ``n_features_in_`` / ``feature_names_in_`` from X's columns; refuse
    non-numeric ones before any partition is read."""
    n_features = _dask.n_columns(X)
    meta = _dask.frame_meta(X)
    if meta is not None:
        bad = [c for c in meta.columns if meta[c].dtype.kind not in "biuf"]
        if bad:
            raise _checks.non_numeric_columns_error(meta, TypeError("not numeric"))
    empty = meta if meta is not None else np.empty((0, n_features))
    validate_data(est, empty, reset=True, ensure_min_samples=0, dtype=np.float64)
    return n_features


def _block_moments(x, y, g, n_features):
    """The moments of one partition, validated as ``fit`` validates in memory."""
    if hasattr(x, "columns"):  # name the columns with missing values
        missing = [str(c) for c in x.columns if x[c].isna().any()]
        if missing:
            raise ValueError(
                f"X has missing values (NaN) in column(s) {missing}. Drop or impute them "
                "first, e.g. ddf.dropna() or a SimpleImputer in a Pipeline fit in memory."
            )
    x = check_array(x, dtype=np.float64, ensure_min_samples=0, input_name="X")
    if x.shape[1] != n_features:
        raise ValueError(f"A partition of X has {x.shape[1]} columns, not {n_features}.")
    _checks.check_numeric_target(y)
    y = check_array(y, dtype=np.float64, ensure_2d=False, ensure_min_samples=0, input_name="y")
    y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"A partition of y has shape {y.shape} but its partition of X has {len(x)} rows: "
            "X and y must be partitioned alike (one target per row)."
        )
    if g is None:
        labels = np.zeros(len(x), dtype=np.int64)
    else:
        labels = check_group_labels(g, len(x))
    return _moments.partition_moments(x, y, labels)


def _combine(*parts):
    return _moments.combine_all(parts)
