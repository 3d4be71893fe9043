"""Numbers behind :mod:`skhier.plot`: the rows a plot is given, no-pooling and
complete-pooling fits, densities.  Pure numpy (and pandas for labels); no matplotlib.

Everything here reads a fitted estimator through its public attributes only.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from skhier._classifier import HierarchicalClassifier
from skhier._data.groups import POPULATION, split_group_column
from skhier._poisson import HierarchicalPoissonRegressor

#: link-scale names of the effects, per family
LINK_SCALE = {"gaussian": None, "binomial": "log-odds", "poisson": "log rate"}


def family(est) -> str:
    """The outcome family of an estimator: "gaussian", "binomial" or "poisson"."""
    if isinstance(est, HierarchicalClassifier):
        return "binomial"
    if isinstance(est, HierarchicalPoissonRegressor):
        return "poisson"
    return "gaussian"


def check_one_factor(est, func):
    if hasattr(est, "factors_"):
        raise ValueError(
            f"{func} shows a model with one grouping factor; this one was fit with "
            f"several ({', '.join(map(str, est.factors_))}). Use plot_forest(est, "
            "factor=...) for each factor's effects, or fit one factor."
        )


@contextlib.contextmanager
def matrix_interface(est):
    """Within: ``est`` predicts from encoded features and group labels, as a model fit
    without a formula does (for grids built in the formula's encoded columns)."""
    encoding = est.__dict__.pop("formula_encoding_", None)
    try:
        yield
    finally:
        if encoding is not None:
            est.formula_encoding_ = encoding


def split_rows(est, X, groups):
    """``(features (n, p) float, feature names, labels or None)`` of the rows given.

    Labels come from ``groups`` or, when the estimator has ``group_col``, from that
    column of ``X`` (a 2-D array with one column per factor when several)."""
    encoding = getattr(est, "formula_encoding_", None)
    if encoding is not None:  # a formula model: its own encoding of the data
        from skhier._core.formula import encode_predict

        X, groups = encode_predict(encoding, X, groups)
        if isinstance(X, np.ndarray):  # an intercept only
            X = pd.DataFrame(X)
    group_col = None if encoding is not None else getattr(est, "group_col", None)
    labels = groups
    if group_col is not None and hasattr(X, "columns"):
        cols = [group_col] if isinstance(group_col, str) else list(group_col)
        if set(cols) <= set(X.columns):  # the estimator's own rule
            X, labels = split_group_column(X, groups, group_col)
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        names = X.columns if hasattr(X, "columns") else range(np.shape(X)[1])
        names = [str(n) if hasattr(X, "columns") else f"x{n}" for n in names]
    features = np.asarray(X, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"X must be 2-D (rows, features); got shape {features.shape}.")
    if labels is POPULATION:
        labels = None  # every row a new group: no labels to show
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]  # one factor given as a one-column frame
        if labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"`groups` has {labels.shape[0]} labels but X has {features.shape[0]} rows; "
                "pass one label per row."
            )
    return features, [str(n) for n in names], labels


def positive_class(est, y):
    """The label read as 1 for a binary outcome: ``classes_[1]`` (sorted labels of
    ``y`` when the estimator is not fitted)."""
    classes = getattr(est, "classes_", None)
    if classes is None:
        classes = np.unique(np.asarray(y))
    if len(classes) != 2:
        raise ValueError(f"y must have two labels for a classifier; got {len(classes)}.")
    return classes[1]


def outcome(est, y, n_rows):
    """``y`` as floats (0/1 for a classifier: 1 means ``classes_[1]``)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(f"y must have shape ({n_rows},), one value per row; got {y.shape}.")
    if family(est) == "binomial":
        return (y == positive_class(est, y)).astype(np.float64)
    return y.astype(np.float64)


def effect_index(est, effect, names) -> int:
    """-1 for "intercept", else the index of a feature (by name or position)."""
    if isinstance(effect, str) and effect == "intercept":
        return -1
    if isinstance(effect, str) and effect in names:
        return names.index(effect)
    if isinstance(effect, (int, np.integer)) and 0 <= effect < len(names):
        return int(effect)
    raise ValueError(
        f'`effect` must be "intercept", a feature name ({names}) or a feature index; '
        f"got {effect!r}."
    )


def effect_label(est, k, names, yname=None):
    """Axis label of an effect with its unit: on the link scale, else per ``yname``
    (the outcome's name, unknown to a plot of the estimator alone)."""
    what = LINK_SCALE[family(est)] or yname
    if k < 0:
        at = ", ".join(f"{n} = 0" for n in names)
        at = "every feature = 0" if len(at) > 30 else at
        inside = " ".join(filter(None, [what, f"at {at}" if at else ""]))
        return f"intercept ({inside})" if inside else "intercept"
    return f"slope of {names[k]} ({what + ' ' if what else ''}per unit of {names[k]})"


def effect_name(k, names):
    """A short readable name of an effect: "intercept" or "Days slope"."""
    return "intercept" if k < 0 else f"{names[k]} slope"


def group_name(est, groups=None):
    """What the groups (the first factor's, when several) are called: the name of
    ``groups`` (a Series or frame), else the formula's or the estimator's ``group_col``,
    else "group"."""
    columns = getattr(groups, "columns", None)
    if columns is not None and len(columns) > 0:
        return str(columns[0])
    name = getattr(groups, "name", None)
    if name is not None:
        return str(name)
    col = getattr(est, "group_col", None) if groups is None else None
    encoding = getattr(est, "formula_encoding_", None)
    if groups is None and encoding is not None:  # the formula's (first) factor
        col = encoding.factor_names[0]
    col = col[0] if isinstance(col, (list, tuple)) and col else col
    return "group" if col is None else str(col)


# --------------------------------------------------------------- pooling fits
def _irls(D, y, offset, fam, correction):
    """Unpenalized GLM coefficients of ``y ~ D`` (canonical link), or None when they
    are not identified or do not converge.  ``correction`` adds half an observation at
    the mean row: half a success and half a failure (binomial), half a count with no
    exposure (Poisson), so groups whose outcomes are all 0 (or all 1) stay finite."""
    n, m = D.shape
    if np.linalg.matrix_rank(D) < m:
        return None
    if fam == "gaussian":
        return np.linalg.lstsq(D, y - offset, rcond=None)[0]
    d_bar, off_bar = D.mean(0), offset.mean()
    beta = np.zeros(m)
    mean = (y.sum() + 0.5) / (n + (fam == "binomial")) if correction else y.mean()
    beta[0] = (np.log(mean / (1 - mean)) if fam == "binomial" else np.log(mean)) - off_bar
    if not np.isfinite(beta[0]):
        return None  # no correction and all outcomes 0 (or 1): no finite estimate
    for _ in range(100):
        eta = D @ beta + offset
        if fam == "binomial":
            mu = 1.0 / (1.0 + np.exp(-eta))
            w = mu * (1.0 - mu)
        else:
            mu = w = np.exp(np.minimum(eta, 700.0))
        grad, hess = D.T @ (y - mu), (D * w[:, None]).T @ D
        if correction and fam == "binomial":
            p_bar = 1.0 / (1.0 + np.exp(-(d_bar @ beta + off_bar)))
            grad += d_bar * (0.5 - p_bar)
            hess += np.outer(d_bar, d_bar) * p_bar * (1.0 - p_bar)
        elif correction:
            grad += 0.5 * d_bar
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None
        beta = beta + step
        if np.max(np.abs(step)) < 1e-9 * (1.0 + np.max(np.abs(beta))):
            return beta if np.all(np.isfinite(beta)) else None
    return None  # a feature separates the outcomes: the estimate runs off to infinity


def complete_pooling(features, y, fam, offset=None):
    """``[intercept, coef...]`` of one GLM fit to every row, groups ignored."""
    offset = np.zeros(len(y)) if offset is None else offset
    D = np.column_stack([np.ones(len(y)), features])
    beta = _irls(D, y, offset, fam, correction=False)
    return np.full(D.shape[1], np.nan) if beta is None else beta


def no_pooling(features, y, codes, n_groups, fam, pooled_coef, offset=None):
    """``(n_groups, 1 + p)``: each group's own fit (NaN where not identified).

    Features constant within a group cannot be told apart from its intercept there:
    they enter at the complete-pooling coefficient ``pooled_coef`` (their own slope
    is NaN)."""
    offset = np.zeros(len(y)) if offset is None else offset
    out = np.full((n_groups, 1 + features.shape[1]), np.nan)
    for g in range(n_groups):
        rows = codes == g
        if not rows.any():
            continue
        Xg = features[rows]
        varying = np.ptp(Xg, axis=0) > 1e-12 * (1.0 + np.abs(Xg).max(0))
        off = offset[rows] + Xg[:, ~varying] @ np.nan_to_num(pooled_coef[~varying])
        D = np.column_stack([np.ones(rows.sum()), Xg[:, varying]])
        beta = _irls(D, y[rows], off, fam, correction=fam != "gaussian")
        if beta is not None:
            out[g, 0] = beta[0]
            out[g, 1:][varying] = beta[1:]
    return out


def group_codes(levels, labels):
    """Index of each row's label in ``levels`` (-1 when not there)."""
    return pd.Index(levels).get_indexer(pd.Index(labels))


def dodge(sizes, width=0.1):
    """x positions of groups sorted by size: tied sizes spread over at most ``+-width``
    decades (less when another size is near), in the order given (so the arrows of
    neighbours do not cross)."""
    x = np.asarray(sizes, dtype=np.float64).copy()
    unique = np.unique(sizes)
    gaps = np.diff(np.log10(unique))
    for i, s in enumerate(unique):
        at = np.flatnonzero(sizes == s)
        if len(at) > 1:
            near = min(gaps[i - 1] if i > 0 else np.inf, gaps[i] if i < len(gaps) else np.inf)
            spread = min(width, 0.35 * near) * min(1.0, (len(at) - 1) / 10)
            x[at] = s * 10 ** np.linspace(-spread, spread, len(at))
    return x


# ------------------------------------------------------------------ densities
def density(values, grid, bandwidth):
    """Gaussian kernel density of ``values`` on an even ``grid`` (binned: O(n + grid))."""
    step = grid[1] - grid[0]
    edges = np.r_[grid - step / 2, grid[-1] + step / 2]
    counts = np.histogram(values[np.isfinite(values)], bins=edges)[0].astype(np.float64)
    half = int(np.ceil(4 * bandwidth / step))
    u = np.arange(-half, half + 1) * step / bandwidth
    kernel = np.exp(-0.5 * u**2)
    smooth = np.convolve(counts, kernel / kernel.sum())[half : half + len(grid)]
    return smooth / (max(len(values), 1) * step)


def bandwidth(values):
    """Silverman's rule of thumb."""
    sd = np.std(values)
    iqr = np.subtract(*np.percentile(values, [75, 25])) / 1.34
    spread = min(sd, iqr) if iqr > 0 else sd
    return 0.9 * (spread if spread > 0 else 1.0) * len(values) ** -0.2


def forest_effects(est, k, factor, effect):
    """``(levels, means, intervals, reference, its label, texts)`` of a forest plot: the
    groups' effects (one factor), or one factor's deviations (several)."""
    names = feature_names(est)
    if hasattr(est, "factors_"):
        factor = est.factors_[0] if factor is None else factor
        if factor not in est.group_effects_:
            raise ValueError(f"`factor` must be one of {list(est.factors_)}; got {factor!r}.")
        fe = est.group_effects_[factor]
        if k >= 0:
            require_slope(est, fe.random_slope_mask, k, effect, names)
        levels = fe.levels
        mean = fe.intercept if k < 0 else fe.coef[:, k]
        interval = fe.intercept_interval if k < 0 else fe.coef_interval[:, k]
        ref, ref_label, group = 0.0, "population (deviation 0)", str(factor)
        if len(levels) and isinstance(levels[0], tuple):
            group += " (labelled outer/inner)"  # nested levels
        what = "intercept" if k < 0 else f"slope of {names[k]}"
        xlabel, title = f"deviation from the population {what}", f"Levels of {factor}"
    else:
        if factor is not None:
            raise ValueError(
                f"`factor={factor!r}` applies to models fit with several grouping factors; "
                "this one has one. Leave factor=None."
            )
        if k >= 0:
            require_slope(est, est.random_slope_mask_, k, effect, names)
        levels = est.groups_
        mean = est.group_intercept_ if k < 0 else est.group_coef_[:, k]
        interval = est.group_intercept_interval_ if k < 0 else est.group_coef_interval_[:, k]
        ref = est.intercept_ if k < 0 else est.coef_[k]
        ref_label = f"population mean ({effect_name(k, names)})"
        group, xlabel = group_name(est), effect_label(est, k, names)
        title = f"Group {'intercepts' if k < 0 else f'slopes of {names[k]}'}"
    text = {"xlabel": xlabel, "ylabel": group, "title": title}
    return levels, mean, interval, ref, ref_label, text


def feature_names(est):
    """``feature_names_in_``, else x0, x1..."""
    names = getattr(est, "feature_names_in_", None)
    return [f"x{i}" for i in range(est.n_features_in_)] if names is None else list(map(str, names))


def level_name(level) -> str:
    return "/".join(map(str, level)) if isinstance(level, tuple) else str(level)


def require_slope(est, mask, k, effect, names):
    """A feature's group effects exist only where it has a random slope."""
    if mask[k]:
        return
    level = getattr(est, "group_level_features_", None)
    why = (
        "it is constant within every group (a group-level predictor), so its slope "
        "cannot vary by group"
        if level is not None and level[k]
        else "it has no random slope in this model (`random_slopes`)"
    )
    raise ValueError(
        f"`effect={effect!r}`: every group has the population slope of {names[k]}: "
        f'{why}. Pick a feature with a random slope, or "intercept".'
    )
