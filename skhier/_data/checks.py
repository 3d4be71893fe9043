"""Checks on the training data that catch likely mistakes before a fit.

Each check warns (through :func:`skhier._util.warn.warn`, at the user's line) with what
was found and what to do; none changes the data or the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import validate_data

from skhier._util.warn import warn
from skhier.exceptions import (
    BinaryTargetWarning,
    GroupIdFeatureWarning,
    IdentifiabilityWarning,
)


def non_numeric_columns_error(X, exc: Exception) -> ValueError:
    """The error for a feature that is not a number, pointing to ``group_col``."""
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c].dtype)]
        where = f"X has non-numeric column(s) {bad}"
        col = repr(bad[0]) if bad else "'<column>'"
    else:
        where = "X has non-numeric values"
        col = "'<column>'"
    return ValueError(
        f"{where} ({exc}). If a column holds the group labels, name it with "
        f"`group_col={col}` (it is then removed from the features), or pass it as "
        "`groups=` and drop it from X. Other categorical features need encoding first "
        "(e.g. OneHotEncoder in a Pipeline)."
    )


def warn_if_binary_target(y: np.ndarray, was_bool: bool) -> None:
    """A 0/1 (or boolean) target fitted with a Gaussian model."""
    if not was_bool and (len(y) < 3 or len(np.unique(y[:10_000])) > 2):
        return  # the first rows already show a third value: not binary
    warn_if_two_values(np.unique(y))


def warn_if_two_values(values) -> None:
    """:func:`warn_if_binary_target` given the distinct values of ``y``."""
    if len(values) != 2:
        return
    warn(
        f"y has only two distinct values ({values[0]:g} and {values[1]:g}): "
        "HierarchicalRegressor fits a Gaussian linear model, whose predictions and "
        "intervals are not probabilities and can fall outside that range. For a binary "
        "outcome use skhier.HierarchicalClassifier (hierarchical logistic regression).",
        BinaryTargetWarning,
    )


def group_level_features(X: np.ndarray, codes: np.ndarray, n_groups: int):
    """Which features are constant within every group (and not constant overall).

    Returns ``(mask, values)``: ``mask`` of shape (n_features,) and the per-group
    means of shape (n_groups, n_features).  Needs at least two groups with two or
    more rows; otherwise nothing is group-level.
    """
    sizes = np.bincount(codes, minlength=n_groups)
    k = X.shape[1]
    means = np.empty((n_groups, k))
    mask = np.zeros(k, dtype=bool)
    if np.count_nonzero(sizes >= 2) < 2 or X.shape[0] == 0:
        return mask, means
    for j in range(k):
        col = X[:, j]
        means[:, j] = np.bincount(codes, weights=col, minlength=n_groups) / np.maximum(sizes, 1)
        tol = 1e-9 * (1.0 + np.abs(col).max())
        within = np.abs(col - means[codes, j]).max() <= tol
        mask[j] = within and np.ptp(col) > tol
    return mask, means


def id_like_features(mask, means, classes) -> np.ndarray:
    """Group-level features that look like group ids (integers, one per group)."""
    n_groups = len(classes)
    out = np.zeros_like(mask)
    if n_groups < 5:
        return out
    numeric_labels = classes.dtype.kind in "iuf"
    for j in np.flatnonzero(mask):
        v = means[:, j]
        r = np.round(v)
        if not np.all(np.abs(v - r) < 1e-6) or len(np.unique(r)) != n_groups:
            continue  # not an integer code with one value per group
        equals_labels = numeric_labels and np.array_equal(r, classes.astype(np.float64))
        dense = r.max() - r.min() + 1 <= 2 * n_groups
        out[j] = equals_labels or dense
    return out


def warn_if_constant_features(X, feature_names) -> None:
    """Warn about feature columns with one value in every row: the model has its own
    intercept, which such a column cannot be told apart from."""
    if X.shape[0] < 2 or X.shape[1] == 0:
        return
    constant = np.flatnonzero((X == X[0]).all(axis=0))
    for j in constant:
        label = repr(feature_names[j]) if feature_names is not None else f"column {j}"
        warn(
            f"Feature {label} of X is constant (every row {X[0, j]:g}): the model has its "
            "own intercept (`intercept_`), which this column cannot be told apart from, so "
            "its coefficient follows its prior and `intercept_` takes the rest. Drop the "
            "column; for a model with an intercept only (lme4's `y ~ 1 + (1 | g)`) pass "
            "X=None.",
            IdentifiabilityWarning,
        )


def check_design(sizes, classes, level, slope_idx, feature_names) -> None:
    """Warn about group ids among the features and designs the data cannot identify.

    ``sizes`` are the rows per group and ``level`` is :func:`group_level_features`'
    result for the same data.
    """
    n_groups = len(classes)
    names = list(feature_names) if feature_names is not None else None

    def name(j):
        return repr(names[j]) if names is not None else f"column {j}"

    if n_groups >= 3 and sizes.max() == 1:
        warn(
            f"Every group has exactly one row ({n_groups} groups): the spread between "
            "groups (sigma_a) and the noise (eps) cannot be told apart, only their sum "
            "of squares is identified, so their posteriors follow the priors along a "
            "ridge (expect slow mixing and a high r_hat). If the rows are independent, "
            "fit without groups (groups=skhier.POPULATION); otherwise collect repeated "
            "rows per group, or set `prior_group_sd` / `prior_noise_sd` to what you know.",
            IdentifiabilityWarning,
        )
        return
    mask, means = level
    ids = id_like_features(mask, means, classes)
    for j in np.flatnonzero(ids):
        warn(
            f"Feature {name(j)} holds one integer per group, like a group id "
            f"({n_groups} groups): it is fitted as a numeric slope, which is meaningless "
            "for an id. Drop it from X (the group labels go in `groups=`, or name the "
            f"column with `group_col={name(j) if names is not None else '...'}`). If it is "
            "a genuine group-level predictor, ignore this warning.",
            GroupIdFeatureWarning,
        )
    slopes = np.zeros(len(mask), dtype=bool)
    slopes[list(slope_idx)] = True
    unidentified = np.flatnonzero(mask & slopes & ~ids)
    if len(unidentified):
        listed = ", ".join(name(j) for j in unidentified)
        keep = [names[j] if names is not None else j for j in np.flatnonzero(slopes & ~mask)]
        warn(
            f"Feature(s) {listed} are constant within every group (group-level "
            "predictors) but were given a random slope: a slope that varies by group cannot be "
            "estimated from a value that does not vary within the group, so its SD "
            "follows the prior and distorts the other group-level SDs. Give them a fixed "
            f"slope only: random_slopes={keep if keep else None}.",
            IdentifiabilityWarning,
        )


def check_numeric_target(y) -> bool:
    """Raise for a non-numeric ``y``; return whether it is boolean."""
    if y is None:
        return False  # validate_data raises scikit-learn's standard message
    arr = np.asarray(y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else y)
    if arr.dtype.kind not in "OUSV":
        return arr.dtype.kind == "b"  # numeric (or complex: validate_data rejects it)
    try:
        arr.astype(np.float64)
    except (TypeError, ValueError):
        values = pd.unique(pd.Series(arr.ravel(), dtype=object).dropna())
        hint = (
            f" It has two values ({', '.join(repr(str(v)) for v in values)}): for a binary "
            "outcome use skhier.HierarchicalClassifier."
            if len(values) == 2
            else ""
        )
        raise TypeError(
            f"`y` must be numeric; got values of dtype {arr.dtype} that cannot be "
            f"converted to float. Encode the target as numbers.{hint}"
        ) from None
    return False


def validated(est, X, y="no_validation", *, n_rows=None, **kwargs):
    """``validate_data`` whose error for a string column names ``group_col``.

    ``X=None`` is a model with an intercept only (lme4's ``y ~ 1 + (1 | g)``): no
    feature columns, ``n_rows`` rows (``len(y)`` when fitting).  X with no columns
    is also taken where it means the same: the group columns were its only ones
    (``group_col``), or a model fitted without features predicts.
    """
    reset = kwargs.get("reset", True)
    if X is None:
        if n_rows is None:
            if isinstance(y, str) or y is None:
                raise ValueError(
                    "X=None (a model with an intercept only) needs the rows' group labels "
                    "(`groups=`) to know how many rows to predict; for population-level "
                    "predictions pass X=np.empty((n_rows, 0)) with groups=POPULATION."
                )
            n_rows = len(y)
        X = np.empty((n_rows, 0))
        kwargs["ensure_min_features"] = 0
    elif getattr(est, "group_col", None) is not None or (
        not reset and getattr(est, "n_features_in_", None) == 0
    ):
        kwargs["ensure_min_features"] = 0
        if hasattr(X, "columns") and len(X.columns) == 0:  # pandas: no dtype to convert
            X = np.empty((len(X), 0))
    try:
        return validate_data(est, X, y, **kwargs)
    except ValueError as exc:
        if "could not convert" in str(exc) and "to float" in str(exc):
            raise non_numeric_columns_error(X, exc) from None
        if "0 feature(s)" in str(exc):
            raise ValueError(
                f"{exc} For a model with an intercept only (lme4's y ~ 1 + (1 | g)), pass "
                "X=None."
            ) from None
        raise
