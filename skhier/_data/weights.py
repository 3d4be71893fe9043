"""Frequency weights (``fit(..., sample_weight=w)``) and binomial trials.

A row of weight ``w`` counts as ``w`` identical rows: the likelihood of the row is
raised to the power ``w``.  Every engine takes the weights as one array per row
(None: every row once) and uses them exactly: the Gaussian engines through
weighted sufficient statistics (least squares on rows scaled by ``sqrt(w)``, with
``sum(w)`` observations in the noise SD's likelihood), the others through weighted
log densities (or, for Pólya-Gamma augmentation, ``PG(w, eta)``).

Rows of weight 0 are removed before anything else, so they are exactly as if never
given (a group all of whose rows weigh 0 is not a group of the fit).

Binomial outcomes with trials are the same thing for a binary model: ``s`` successes
out of ``n`` trials is the proportion ``s / n`` with weight ``n`` (the log likelihood
``s eta - n log(1 + e^eta)``, without the binomial coefficient, which does not depend
on the parameters).
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd

from skhier._data.groups import POPULATION


def fit_weights(sample_weight, n_rows: int, what: str = "sample_weight"):
    """``sample_weight`` as a float array of ``n_rows`` non-negative finite values,
    or None when it is None or every weight is 1 (the unweighted fit, exactly)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64) if not isinstance(
        sample_weight, pd.Series | pd.DataFrame
    ) else sample_weight.to_numpy(dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n_rows, float(w))
    if w.ndim > 1 and 1 in w.shape:
        w = w.ravel()
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise ValueError(
            f"`{what}` must have one value per row: shape ({n_rows},); got shape {w.shape}."
        )
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(
            f"`{what}` must be finite and non-negative (a row of weight w counts as w "
            "identical rows; 0 leaves the row out)."
        )
    if not (w > 0).any():
        raise ValueError(f"Every `{what}` is zero: no row is left to fit.")
    return None if (w == 1.0).all() else w


def check_trials(trials, y, n_rows: int) -> np.ndarray:
    """``trials`` per row (positive integers, at least the successes ``y``)."""
    if isinstance(trials, Real) and not isinstance(trials, bool):
        trials = np.full(n_rows, float(trials))
    t = np.asarray(trials.to_numpy() if hasattr(trials, "to_numpy") else trials)
    if t.dtype.kind not in "iuf" or t.ndim != 1 or t.shape[0] != n_rows:
        raise ValueError(
            f"`trials` must be one positive whole number per row: shape ({n_rows},); got "
            f"{'shape ' + str(t.shape) if t.dtype.kind in 'iuf' else 'dtype ' + str(t.dtype)}."
        )
    t = t.astype(np.float64)
    if not (np.isfinite(t).all() and (t >= 1).all() and (t == np.round(t)).all()):
        raise ValueError("`trials` must be positive whole numbers (the trials of each row).")
    if not (np.isfinite(y).all() and (y >= 0).all() and (y == np.round(y)).all()):
        raise ValueError(
            "With `trials`, y is the number of successes of each row: whole numbers from 0 "
            "to that row's trials."
        )
    if (y > t).any():
        i = int(np.argmax(y > t))
        raise ValueError(
            f"y (successes) exceeds `trials` in {int((y > t).sum())} row(s), e.g. row {i}: "
            f"{y[i]:g} successes out of {t[i]:g} trials."
        )
    return t


def take_rows(keep: np.ndarray, value):
    """``value`` (X, y, groups, exposure...) restricted to the rows in ``keep``;
    None, :data:`POPULATION`, scalars and strings pass through."""
    if value is None or value is POPULATION or isinstance(value, str | Real):
        return value
    if isinstance(value, pd.DataFrame | pd.Series):
        return value.iloc[np.flatnonzero(keep)]
    if hasattr(value, "shape") and hasattr(value, "__getitem__") and not hasattr(value, "dask"):
        return value[keep] if np.ndim(value) > 0 else value
    arr = np.asarray(value, dtype=object)
    return value if arr.ndim == 0 else arr[keep]


def drop_unweighted(weights, *values):
    """``(weights, *values)`` without the rows of weight 0."""
    if weights is None or (weights > 0).all():
        return (weights, *values)
    keep = weights > 0
    return (weights[keep], *(take_rows(keep, v) for v in values))


def weighted_rows(weights, *arrays):
    """Each array's rows scaled by ``sqrt(weights)``: a Gaussian likelihood raised to
    the power ``w`` is least squares on the scaled rows."""
    if weights is None:
        return arrays
    root = np.sqrt(weights)
    return tuple(None if a is None else (a * root if a.ndim == 1 else a * root[:, None])
                 for a in arrays)  # fmt: skip


def n_observations(weights, n_rows: int) -> float:
    """How many observations the rows stand for (the noise SD's likelihood)."""
    return float(n_rows if weights is None else weights.sum())


def weights_kind(weights) -> str:
    """``"none"`` (every row once), ``"integer"`` (whole numbers) or ``"real"``."""
    if weights is None:
        return "none"
    return "integer" if (weights == np.round(weights)).all() else "real"
