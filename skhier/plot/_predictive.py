"""Plots of what a fitted model predicts: the posterior predictive check
(:func:`plot_ppc`) and the fitted lines of a few groups
(:func:`plot_group_predictions`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skhier.plot import _data as data
from skhier.plot import _draw as _plot_draw
from skhier.plot._axes import axes_or_new as _axes
from skhier.plot._axes import legend_on_top as _legend_on_top
from skhier.plot._axes import series_name as _name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike


def plot_ppc(
    est,
    X: ArrayLike,
    y: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    kind: str = "posterior",
    n_draws: int = 50,
    exposure: ArrayLike | None = None,
    random_state: int | np.random.RandomState | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Predictive check: the observed outcomes against outcomes replicated by the model.

    ``kind="posterior"`` replicates ``y`` from the fitted model
    (``est.sample_y(X, groups=groups, n_samples=n_draws, random_state=...)``);
    ``kind="prior"`` from the priors alone (``est.sample_prior_predictive``: the
    estimator need not be fitted), to see whether the priors allow the data.

    - continuous outcomes (regressor): the density of ``y`` (black) over the
      densities of ``n_draws`` replicated data sets (one thin line each; Gaussian
      kernels with the observed data's bandwidth);
    - binary outcomes (classifier): per group (the first factor when several), the
      observed proportion of ``classes_[1]`` (dot) and the replicated proportions'
      mean and ``interval_prob`` interval; groups sorted by the observed proportion;
      one overall proportion when there are no group labels;
    - counts: a rootogram: how many rows have each count, observed (bars) and
      replicated (mean and interval), on a square-root scale.

    Parameters
    ----------
    est : HierarchicalRegressor, HierarchicalClassifier or HierarchicalPoissonRegressor
        Fitted for ``kind="posterior"``.
    X : array-like or DataFrame of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        The observed outcomes.
    groups : array-like or DataFrame, default=None
        Group labels of the rows, as for ``predict`` (not needed with ``group_col``).
    kind : {"posterior", "prior"}, default="posterior"
    n_draws : int, default=50
        Number of replicated data sets.
    exposure : array-like of shape (n_samples,), default=None
        Counts only, as for ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seed of the replicated draws.
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
    >>> from skhier.plot import plot_ppc
    >>> df = load_sleepstudy()
    >>> X, y, subject = df[["Days"]], df["Reaction"], df["Subject"]
    >>> est = HierarchicalRegressor(random_state=0).fit(X, y, groups=subject)
    >>> ax = plot_ppc(est, X, y, groups=subject, n_draws=20, random_state=0)
    >>> len(ax.get_lines())  # 20 replicated densities and the observed one
    21
    """
    features, _, labels = data.split_rows(est, X, groups)
    observed = data.outcome(est, y, features.shape[0])
    reps, name = _plot_draw.replicated(est, X, y, groups, kind, n_draws, exposure, random_state)
    ax = _axes(ax)
    fam, prob, yname = data.family(est), est.interval_prob, _name(y)
    if fam == "gaussian":
        _plot_draw.ppc_continuous(ax, observed, reps, name, yname)
    elif fam == "binomial":
        ylabel = f"proportion of {yname} = {data.positive_class(est, y)}"
        group = data.group_name(est, groups)
        _plot_draw.ppc_binary(ax, observed, reps, labels, prob, name, ylabel, group)
    else:
        _plot_draw.ppc_counts(ax, observed, reps, prob, name, yname)
    ax.set_title(f"{name.capitalize()} check ({reps.shape[1]} replicated data sets)")
    if fam == "poisson":  # (a square-root axis) the long tail leaves room for it
        ax.legend(fontsize="small")
    else:
        _legend_on_top(ax, ncol=3)
    return ax


def plot_group_predictions(
    est,
    X: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    feature: str | int = 0,
    group_labels: ArrayLike | None = None,
    n_groups: int = 6,
    y: ArrayLike | None = None,
    band: str | None = None,
    prob: float | None = None,
    n_points: int = 50,
    ax: Axes | np.ndarray | None = None,
) -> Axes | np.ndarray:
    """Fitted curves of a few groups against one feature, with uncertainty bands.

    For each group: the posterior mean prediction (``est.predict``; for a classifier
    ``est.predict_proba`` of ``classes_[1]``) on a grid over the range of ``feature``
    in that group's rows (at its two values only for a 0/1 feature), the other
    features held at the group's means; a band; and the observed rows when ``y`` is
    given, small and see-through (0/1 outcomes moved slightly inside [0, 1], a 0/1
    feature jittered sideways, so that points do not hide each other).  Bands of
    several groups on one Axes overlap: for one panel per group pass an array of
    Axes (each titled by its group, the band described in the figure's title).

    Parameters
    ----------
    est : fitted HierarchicalRegressor, HierarchicalClassifier or HierarchicalPoissonRegressor
        Fit with one grouping factor.
    X : array-like or DataFrame of shape (n_samples, n_features)
    groups : array-like of shape (n_samples,), default=None
        Group labels of the rows (not needed with ``group_col``).
    feature : str or int, default=0
        The feature on the x axis (name or index).
    group_labels : sequence, default=None
        Which groups.  When None, ``n_groups`` groups evenly spread over the groups
        ordered by their number of rows, so that small and large groups both appear.
    n_groups : int, default=6
    y : array-like of shape (n_samples,), default=None
        Observed outcomes to draw as points (for a classifier: 1 for ``classes_[1]``).
    band : {"predictive", "mean"}, default=None
        ``"predictive"``: the posterior predictive interval of a new observation
        (``est.predict_interval``: noise included).  ``"mean"``: the credible
        interval of the mean (regressor: mean +- z * ``predict(return_std=True)``'s
        SD, a normal approximation; classifier: ``predict_proba_interval``; counts:
        ``predict_rate_interval``).  None: "predictive", or "mean" for a classifier
        (whose outcomes are 0/1).
    prob : float, default=None
        Probability of the band; the estimator's ``interval_prob`` when None.
    n_points : int, default=50
        Grid points per curve.
    ax : matplotlib Axes or array of Axes, default=None
        One Axes for every group, or one Axes per group.

    Returns
    -------
    ax : matplotlib Axes (or the array of Axes given)

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skhier import HierarchicalRegressor
    >>> from skhier.datasets import load_sleepstudy
    >>> from skhier.plot import plot_group_predictions
    >>> df = load_sleepstudy()
    >>> X, y, subject = df[["Days"]], df["Reaction"], df["Subject"]
    >>> est = HierarchicalRegressor(random_state=0).fit(X, y, groups=subject)
    >>> ax = plot_group_predictions(est, X, groups=subject, feature="Days", y=y, n_groups=4)
    >>> len(ax.get_lines())
    4
    """
    check_is_fitted(est)
    data.check_one_factor(est, "plot_group_predictions")
    axes = np.atleast_1d(ax if ax is not None else _axes(None)).ravel()
    _plot_draw.group_predictions(
        est, X, groups, feature, group_labels, n_groups, y, band, prob, n_points, axes
    )
    return ax if ax is not None else axes[0]
