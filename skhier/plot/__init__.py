"""Plots of a fitted hierarchical model.

matplotlib is optional (``pip install "skhier[plot]"``) and imported only when a
plot is drawn.  Every function takes ``ax=None`` (a new figure) and returns the
matplotlib ``Axes`` it drew on, like ArviZ's plots.  For sampler diagnostics use
ArviZ on the posterior draws: ``az.plot_trace(est.idata_)``, ``az.plot_rank``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skhier.plot import _data as data
from skhier.plot._axes import axes_or_new as _axes
from skhier.plot._axes import group_axis as _group_axis
from skhier.plot._axes import legend_on_top as _legend_on_top
from skhier.plot._axes import log_size_axis as _log_size_axis
from skhier.plot._axes import series_name as _name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

from skhier.plot._predictive import plot_group_predictions, plot_ppc

__all__ = ["plot_forest", "plot_group_predictions", "plot_ppc", "plot_shrinkage"]


def plot_shrinkage(
    est,
    X: ArrayLike,
    y: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    effect: str | int = "intercept",
    exposure: ArrayLike | None = None,
    arrows: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Partial pooling, pictured: each group alone, all groups together, and the model.

    For every group with rows in ``X``, three estimates of one effect (the intercept or
    one feature's slope), against the group's number of rows (log scale; when every
    group has the same number of rows, the groups side by side instead, sorted by
    their no-pooling estimates):

    - *no pooling* (open circles): the group fitted alone, by ordinary least squares
      on an intercept and the same features (regressor), or by an unpenalized
      logistic / Poisson GLM with a continuity correction of half an observation
      (half a success and half a failure; half a count), so that a group whose
      outcomes are all 0 (or all 1) keeps a finite estimate: for the intercept alone
      that is ``logit((s + 0.5) / (n + 1))`` or ``log((s + 0.5) / exposure)``.
      Features constant within a group cannot be separated from its intercept: they
      enter at the complete-pooling slope.  Groups whose effect is not identified
      alone (too few rows, a feature separating the outcomes) have no circle;
    - *partial pooling* (filled dots and credible intervals): the model's posterior
      means ``est.group_intercept_`` (or ``est.group_coef_[:, k]``) and intervals;
    - *complete pooling* (dashed line): one unpenalized GLM fit to every row with
      groups ignored (``LinearRegression``, ``LogisticRegression`` without penalty,
      ``PoissonRegressor(alpha=0)``), and the population mean (dotted) that the
      groups shrink toward.

    Arrows go from each group's own estimate to the model's.  Small groups move far,
    large groups barely move, and all of them move less the larger the group SD
    (``sigma_a``, in the title) is: that is what the model learns from the spread of
    the groups.  On the log axis, groups of one size are spread a little sideways,
    in the order of their own estimates.  The legend names the population mean by
    its feature (``"population mean (Days slope)"``; ``x0``, ``x1``... when fit on an
    array).

    Parameters
    ----------
    est : fitted HierarchicalRegressor, HierarchicalClassifier or HierarchicalPoissonRegressor
        Fit with one grouping factor.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Usually the training rows (with the ``group_col`` column when that is set).
    y : array-like of shape (n_samples,)
    groups : array-like of shape (n_samples,), default=None
        Group labels of the rows (not needed with ``group_col``).
    effect : "intercept", str or int, default="intercept"
        The intercept, or the slope of a feature (name or index).
    exposure : array-like of shape (n_samples,), default=None
        Counts only: the exposure of each row, as for ``fit``.
    arrows : bool, default=True
        Draw arrows from no pooling to partial pooling.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skhier import HierarchicalRegressor
    >>> from skhier.datasets import load_sleepstudy
    >>> from skhier.plot import plot_shrinkage
    >>> df = load_sleepstudy()
    >>> est = HierarchicalRegressor(random_state=0)
    >>> est = est.fit(df[["Days"]], df["Reaction"], groups=df["Subject"])
    >>> ax = plot_shrinkage(est, df[["Days"]], df["Reaction"], groups=df["Subject"])
    >>> ax.get_xlabel()  # 10 rows per subject: subjects side by side, not a size axis
    'Subject (10 rows each), sorted by no-pooling estimate'
    """
    check_is_fitted(est)
    data.check_one_factor(est, "plot_shrinkage")
    features, names, labels = data.split_rows(est, X, groups)
    if labels is None:
        raise ValueError(
            "plot_shrinkage needs the group label of every row: pass `groups=` (or keep "
            "the `group_col` column in X)."
        )
    k = data.effect_index(est, effect, names)
    fam = data.family(est)
    yv = data.outcome(est, y, features.shape[0])
    offset = None if exposure is None else np.log(np.asarray(exposure, dtype=np.float64))
    pooled = data.complete_pooling(features, yv, fam, offset)
    codes = data.group_codes(est.groups_, labels)
    own = data.no_pooling(features, yv, codes, len(est.groups_), fam, pooled[1:], offset)
    if k < 0:
        mean, interval = est.group_intercept_, est.group_intercept_interval_
        population, sd = est.intercept_, est.group_intercept_sd_
    else:
        data.require_slope(est, est.random_slope_mask_, k, effect, names)
        mean, interval = est.group_coef_[:, k], est.group_coef_interval_[:, k]
        population, sd = est.coef_[k], est.group_coef_sd_[k]
    sizes = np.bincount(codes[codes >= 0], minlength=len(est.groups_))
    alone = own[:, k + 1]
    present = np.flatnonzero(sizes > 0)
    order = present[np.lexsort((np.where(np.isnan(alone), mean, alone)[present], sizes[present]))]
    same_size = len(np.unique(sizes[order])) == 1
    x = np.arange(len(order)) if same_size else data.dodge(sizes[order])

    ax = _axes(ax)
    prob = f"{est.interval_prob:.0%}"
    ax.vlines(x, *interval[order].T, color="C0", alpha=0.35, lw=2.5, label=f"{prob} interval")
    ax.plot(x, alone[order], "o", mfc="white", mec="C1", label="no pooling: each group alone")
    ax.plot(x, mean[order], "o", color="C0", ms=5, label="partial pooling: posterior mean")
    if arrows:
        for xi, a, b in zip(x, alone[order], mean[order], strict=True):
            if np.isfinite(a):
                ax.annotate(
                    "",
                    xy=(xi, b),
                    xytext=(xi, a),
                    arrowprops={"arrowstyle": "->", "color": "0.45", "lw": 0.8, "shrinkB": 3},
                )
    ax.axhline(pooled[k + 1], ls="--", color="C2", label="complete pooling: groups ignored")
    pop_label = f"population mean ({data.effect_name(k, names)})"
    ax.axhline(population, ls=":", color="k", label=pop_label)
    if same_size:  # a log axis of one size would stack every group on one tick
        group = data.group_name(est, groups)
        which = "no-pooling estimate" if np.isfinite(alone[order]).any() else "posterior mean"
        _group_axis(
            ax,
            [data.level_name(v) for v in np.asarray(est.groups_)[order]],
            f"{group} ({sizes[order[0]]} rows each), sorted by {which}",
        )
    else:
        _log_size_axis(ax, sizes[order])
    ax.set_ylabel(data.effect_label(est, k, names, _name(y)))
    kind = "intercepts" if k < 0 else f"slopes of {names[k]}"
    ax.set_title(f"Shrinkage of the group {kind} (group SD {sd:.3g})")
    _legend_on_top(ax, ncol=2)
    return ax


def plot_forest(
    est,
    *,
    effect: str | int = "intercept",
    sort: bool = True,
    factor: str | None = None,
    max_groups: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Forest plot: each group's effect with its credible interval.

    One row per group: the posterior mean (dot) and ``interval_prob`` credible
    interval (bar) of its intercept or of one feature's slope, with the population
    value as a vertical line.  With one grouping factor the effects are the groups'
    own intercepts / slopes (``est.group_intercept_``, ``est.group_coef_``) and the
    line is ``est.intercept_`` (``est.coef_[k]``).  With several factors they are the
    deviations of one factor's levels from the population
    (``est.group_effects_[factor]``), and the line is at 0.

    Parameters
    ----------
    est : fitted HierarchicalRegressor, HierarchicalClassifier or HierarchicalPoissonRegressor
    effect : "intercept", str or int, default="intercept"
        The intercept, or the slope of a feature (name or index).
    sort : bool, default=True
        Order the groups by their posterior mean (largest at the top); else by label.
    factor : str, default=None
        With several grouping factors, which one (``est.factors_``; the first when
        None).  Must be None for a model with one factor.
    max_groups : int, default=None
        Show at most this many groups: the most extreme half at each end when
        sorted, else the first ones.  All when None.
    ax : matplotlib Axes, default=None

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skhier import HierarchicalRegressor
    >>> from skhier.datasets import load_sleepstudy
    >>> from skhier.plot import plot_forest
    >>> df = load_sleepstudy()
    >>> est = HierarchicalRegressor(random_state=0)
    >>> est = est.fit(df[["Days"]], df["Reaction"], groups=df["Subject"])
    >>> ax = plot_forest(est, effect="Days", max_groups=10)
    >>> len(ax.get_yticks())
    10
    """
    check_is_fitted(est)
    k = data.effect_index(est, effect, data.feature_names(est))
    levels, mean, interval, ref, ref_label, text = data.forest_effects(est, k, factor, effect)
    if max_groups is not None and not (
        isinstance(max_groups, (int, np.integer)) and max_groups >= 1
    ):
        raise ValueError(f"`max_groups` must be a positive integer or None; got {max_groups!r}.")
    order = np.argsort(mean, kind="stable") if sort else np.arange(len(mean))
    shown = len(order)
    if max_groups is not None and max_groups < len(order):
        if sort:
            low = max_groups // 2
            order = np.r_[order[:low], order[len(order) - (max_groups - low) :]]
        else:
            order = order[:max_groups]
    pos = np.arange(len(order))
    ax = _axes(ax, figsize=(6.5, max(3.0, 0.25 * len(order) + 1.5)))
    prob = f"{est.interval_prob:.0%}"
    ax.hlines(pos, *interval[order].T, color="C0", lw=1.5, label=f"{prob} interval")
    ax.plot(mean[order], pos, "o", color="C0", ms=4, label="posterior mean")
    ax.axvline(ref, ls=":", color="k", label=ref_label)
    ax.set_yticks(pos, [data.level_name(level) for level in np.asarray(levels)[order]])
    ax.set_ylim(-0.7, len(order) - 0.3)
    ax.set_xlabel(text["xlabel"])
    ax.set_ylabel(text["ylabel"])
    note = ""
    if len(order) < shown and sort:
        note = f" ({len(order)} of {shown}, the most extreme)"
        ax.axhline(max_groups // 2 - 0.5, color="0.6", lw=0.8, ls=(0, (1, 3)))
    elif len(order) < shown:
        note = f" (the first {len(order)} of {shown})"
    ax.set_title(f"{text['title']}{note}")
    _legend_on_top(ax, ncol=3)
    return ax
