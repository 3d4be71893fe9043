"""skhier.plot: what each plot draws, checked against the estimators' attributes and
independent computations (least squares, scikit-learn GLMs, closed forms)."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
)

from skhier import (  # noqa: E402
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
)
from skhier.datasets import load_contraception, load_egsingle, load_sleepstudy  # noqa: E402
from skhier.exceptions import ConvergenceWarning  # noqa: E402
from skhier.plot import (  # noqa: E402
    plot_forest,
    plot_group_predictions,
    plot_ppc,
    plot_shrinkage,
)

TINY = {"draws": 100, "tune": 100, "chains": 2, "random_state": 0}


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny settings, shared fixture
        return est.fit(*args, **kwargs)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def sleep():
    df = load_sleepstudy()
    return df[["Days"]], df["Reaction"], df["Subject"]


@pytest.fixture(scope="module")
def reg(sleep):
    X, y, subject = sleep
    return _fit(HierarchicalRegressor(**TINY), X, y, groups=subject)


@pytest.fixture(scope="module")
def contraception():
    df = load_contraception()
    y = pd.Series(np.where(df["use"] == 1, "yes", "no"), name="use")  # labels, not 0/1
    return df[["urban"]], y, df["district"]


@pytest.fixture(scope="module")
def clf(contraception):
    X, y, district = contraception
    return _fit(HierarchicalClassifier(random_slopes=None, **TINY), X, y, groups=district)


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(1)
    sizes = np.array([2, 3, 4, 6, 8, 12, 16, 24, 32, 48])
    g = np.repeat(np.arange(10), sizes)
    x = rng.normal(size=g.size)
    x[g <= 1] = 0.0  # groups 0 and 1: x constant at 0 (their own fit: intercept only)
    y = rng.poisson(np.exp(rng.normal(0.7, 0.5, 10)[g] + 0.4 * x))
    y[g == 0] = 0  # a group with no counts at all
    return x[:, None], y, g


@pytest.fixture(scope="module")
def pois(counts):
    X, y, g = counts
    return _fit(HierarchicalPoissonRegressor(random_slopes=None, **TINY), X, y, groups=g)


def trapezoid(f, x):  # (numpy.trapezoid needs numpy 2)
    return np.sum((f[1:] + f[:-1]) * np.diff(x)) / 2


def _line(ax, label):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _labels(ax):
    return ax.get_legend_handles_labels()[1]


def _legend_covers_no_data(ax):
    """Every point, segment and band drawn in data units lies below the legend."""
    from matplotlib.collections import LineCollection, PathCollection

    ax.figure.canvas.draw()
    xy = [line.get_xydata() for line in ax.get_lines() if line.get_transform() == ax.transData]
    for c in ax.collections:
        if isinstance(c, LineCollection):
            xy += c.get_segments()
        elif isinstance(c, PathCollection):
            xy.append(c.get_offsets())
        else:
            xy += [path.vertices for path in c.get_paths()]
    xy = np.concatenate([np.asarray(a, dtype=float).reshape(-1, 2) for a in xy])
    top = ax.transData.transform(xy[np.isfinite(xy).all(1)])[:, 1].max()
    return top < ax.get_legend().get_window_extent().y0


def _plotted_order(values, attribute):
    """Indices into ``attribute`` of the plotted ``values`` (which must be its entries)."""
    order = [np.flatnonzero(attribute == v) for v in values]
    assert all(len(i) == 1 for i in order)
    return np.array([i[0] for i in order])


# ------------------------------------------------------------------ import
def test_importing_skhier_plot_does_not_import_matplotlib():
    code = "import sys, skhier, skhier.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_matplotlib_says_how_to_install(reg, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r'pip install "skhier\[plot\]"'):
        plot_forest(reg)


# --------------------------------------------------------------- shrinkage
def test_shrinkage_regressor_intercepts(reg, sleep):
    X, y, subject = sleep
    ax = plot_shrinkage(reg, X, y, groups=subject)
    partial = _line(ax, "partial pooling: posterior mean")
    alone = _line(ax, "no pooling: each group alone")
    order = _plotted_order(partial.get_ydata(), reg.group_intercept_)
    assert sorted(order) == list(range(18))
    # no pooling = each subject's own least-squares line, computed independently
    own = {g: np.polyfit(d["Days"], d["Reaction"], 1) for g, d in X.join(y).groupby(subject)}
    np.testing.assert_allclose(alone.get_ydata(), [own[reg.groups_[i]][1] for i in order])
    # all subjects have 10 rows: no axis of sizes (one tick) but the subjects side by
    # side, in the order of their own estimates, named on the ticks
    assert np.all(np.diff(alone.get_ydata()) >= 0)
    np.testing.assert_array_equal(partial.get_xdata(), np.arange(18))
    assert ax.get_xscale() == "linear"
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [str(g) for g in reg.groups_[order]]
    assert ax.get_xlabel() == "Subject (10 rows each), sorted by no-pooling estimate"
    intervals = np.array([seg[:, 1] for seg in ax.collections[0].get_segments()])
    np.testing.assert_allclose(intervals, reg.group_intercept_interval_[order])
    complete = _line(ax, "complete pooling: groups ignored").get_ydata()[0]
    assert complete == pytest.approx(LinearRegression().fit(X, y).intercept_)
    assert _line(ax, "population mean (intercept)").get_ydata()[0] == reg.intercept_
    assert len(ax.texts) == 18  # one arrow per subject
    assert ax.get_ylabel() == "intercept (Reaction at Days = 0)"
    assert f"{reg.group_intercept_sd_:.3g}" in ax.get_title()
    assert _legend(ax) == [
        "95% interval",
        "no pooling: each group alone",
        "partial pooling: posterior mean",
        "complete pooling: groups ignored",
        "population mean (intercept)",
    ]
    assert _legend_covers_no_data(ax)


def test_shrinkage_regressor_slopes_on_given_axes(reg, sleep):
    X, y, subject = sleep
    _, given = plt.subplots()
    ax = plot_shrinkage(reg, X, y, groups=subject, effect="Days", arrows=False, ax=given)
    assert ax is given
    partial = _line(ax, "partial pooling: posterior mean")
    order = _plotted_order(partial.get_ydata(), reg.group_coef_[:, 0])
    own = {g: np.polyfit(d["Days"], d["Reaction"], 1) for g, d in X.join(y).groupby(subject)}
    alone = _line(ax, "no pooling: each group alone").get_ydata()
    np.testing.assert_allclose(alone, [own[reg.groups_[i]][0] for i in order])
    complete = _line(ax, "complete pooling: groups ignored").get_ydata()[0]
    assert complete == pytest.approx(LinearRegression().fit(X, y).coef_[0])
    assert len(ax.texts) == 0
    assert ax.get_ylabel() == "slope of Days (Reaction per unit of Days)"
    assert "population mean (Days slope)" in _labels(ax)  # the feature, not coef_[0]
    assert _line(ax, "population mean (Days slope)").get_ydata()[0] == reg.coef_[0]


def test_unnamed_features_are_x0_x1_in_labels(sleep):
    X, y, subject = sleep
    est = _fit(HierarchicalRegressor(**TINY), X.to_numpy(), y.to_numpy(), groups=subject)
    ax = plot_shrinkage(est, X.to_numpy(), y.to_numpy(), groups=subject.to_numpy(), effect=0)
    assert "population mean (x0 slope)" in _labels(ax)
    assert ax.get_xlabel() == "group (10 rows each), sorted by no-pooling estimate"
    assert ax.get_ylabel() == "slope of x0 (y per unit of x0)"
    ax = plot_forest(est, effect=0)
    assert "population mean (x0 slope)" in _labels(ax)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("slope of x0 (per unit of x0)", "group")


def test_plots_read_group_col(sleep):
    X, y, subject = sleep
    Xg = X.assign(Subject=subject)
    est = _fit(HierarchicalRegressor(group_col="Subject", **TINY), Xg, y)
    ax = plot_shrinkage(est, Xg, y)
    partial = _line(ax, "partial pooling: posterior mean").get_ydata()
    assert sorted(_plotted_order(partial, est.group_intercept_)) == list(range(18))
    by_frame = plot_shrinkage(est, X, y, groups=subject.to_frame())  # one-column frame
    np.testing.assert_array_equal(
        _line(by_frame, "partial pooling: posterior mean").get_ydata(),
        _line(ax, "partial pooling: posterior mean").get_ydata(),
    )
    ax = plot_group_predictions(est, Xg, feature="Days", group_labels=[308])
    grid = pd.DataFrame({"Days": ax.get_lines()[0].get_xdata(), "Subject": 308})
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), est.predict(grid))
    ax = plot_ppc(est, Xg, y, n_draws=5, random_state=0)
    assert len(ax.get_lines()) == 6


def test_shrinkage_classifier(clf, contraception):
    X, y, district = contraception
    ax = plot_shrinkage(clf, X, y, groups=district)
    partial = _line(ax, "partial pooling: posterior mean")
    order = _plotted_order(partial.get_ydata(), clf.group_intercept_)
    alone = _line(ax, "no pooling: each group alone").get_ydata()
    sizes = district.value_counts().reindex(clf.groups_).to_numpy()
    assert np.all(np.diff(sizes[order]) >= 0)  # x axis: group size, as sizes differ
    assert (ax.get_xscale(), ax.get_xlabel()) == ("log", "rows in group (log scale)")
    assert _legend_covers_no_data(ax)
    assert np.all(np.isfinite(alone))  # districts with no (or only) users stay finite
    use = (y == "yes").to_numpy()
    rural = X.groupby(district)["urban"].max().reindex(clf.groups_).to_numpy() == 0
    assert rural.sum() >= 5
    for pos, g in enumerate(clf.groups_[order]):
        if rural[order[pos]]:  # urban = 0 on every row: logit((s + 0.5) / (n + 1))
            s, n = use[district == g].sum(), (district == g).sum()
            assert alone[pos] == pytest.approx(np.log((s + 0.5) / (n - s + 0.5)), rel=1e-6)
    complete = _line(ax, "complete pooling: groups ignored").get_ydata()[0]
    reference = LogisticRegression(C=np.inf).fit(X, use).intercept_[0]
    assert complete == pytest.approx(reference, abs=1e-3)
    assert ax.get_ylabel() == "intercept (log-odds at urban = 0)"


def test_shrinkage_counts(pois, counts):
    X, y, g = counts
    ax = plot_shrinkage(pois, X, pd.Series(y, name="visits"), groups=g)
    partial = _line(ax, "partial pooling: posterior mean")
    order = _plotted_order(partial.get_ydata(), pois.group_intercept_)
    np.testing.assert_array_equal(order, np.arange(10))  # groups were made in size order
    alone = _line(ax, "no pooling: each group alone").get_ydata()
    # x = 0 on every row of groups 0 and 1: log((s + 0.5) / n), finite with no counts
    assert alone[0] == pytest.approx(np.log(0.5 / 2))
    assert alone[1] == pytest.approx(np.log((y[g == 1].sum() + 0.5) / 3))
    complete = _line(ax, "complete pooling: groups ignored").get_ydata()[0]
    reference = PoissonRegressor(alpha=0, solver="newton-cholesky", tol=1e-10).fit(X, y)
    assert complete == pytest.approx(reference.intercept_, abs=1e-6)
    assert ax.get_ylabel() == "intercept (log rate at x0 = 0)"
    np.testing.assert_allclose(partial.get_xdata(), np.bincount(g))  # sizes all differ
    # exposure: rates per unit of exposure, so twice the exposure halves them
    ax = plot_shrinkage(pois, X, y, groups=g, exposure=np.full(len(y), 2.0))
    twice = _line(ax, "complete pooling: groups ignored").get_ydata()[0]
    assert twice == pytest.approx(complete - np.log(2))
    assert _line(ax, "no pooling: each group alone").get_ydata()[0] == pytest.approx(
        np.log(0.5 / 4)
    )


def test_shrinkage_errors(reg, sleep):
    X, y, subject = sleep
    with pytest.raises(ValueError, match="needs the group label"):
        plot_shrinkage(reg, X, y)
    with pytest.raises(ValueError, match="`effect` must be"):
        plot_shrinkage(reg, X, y, groups=subject, effect="Nights")
    no_slopes = _fit(HierarchicalRegressor(random_slopes=None, **TINY), X, y, groups=subject)
    with pytest.raises(ValueError, match="has no random slope"):
        plot_shrinkage(no_slopes, X, y, groups=subject, effect="Days")
    with pytest.raises(ValueError, match="has no random slope"):
        plot_forest(no_slopes, effect="Days")  # not one row per group of equal slopes
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="max_groups"):
            plot_forest(reg, max_groups=bad)


# ------------------------------------------------------------------ forest
def test_forest_sorted_with_population_line(reg):
    ax = plot_forest(reg)
    means = _line(ax, "posterior mean")
    np.testing.assert_array_equal(means.get_xdata(), np.sort(reg.group_intercept_))
    order = np.argsort(reg.group_intercept_, kind="stable")
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(g) for g in reg.groups_[order]]
    intervals = np.array([seg[:, 0] for seg in ax.collections[0].get_segments()])
    np.testing.assert_array_equal(intervals, reg.group_intercept_interval_[order])
    assert _line(ax, "population mean (intercept)").get_xdata()[0] == reg.intercept_
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("intercept (at Days = 0)", "group")
    assert ax.get_title() == "Group intercepts"
    assert _legend(ax) == ["95% interval", "posterior mean", "population mean (intercept)"]
    assert _legend_covers_no_data(ax)


def test_forest_slopes_unsorted_and_truncated(reg):
    ax = plot_forest(reg, effect="Days", sort=False, max_groups=5)
    np.testing.assert_array_equal(_line(ax, "posterior mean").get_xdata(), reg.group_coef_[:5, 0])
    assert ax.get_xlabel() == "slope of Days (per unit of Days)"
    assert _line(ax, "population mean (Days slope)").get_xdata()[0] == reg.coef_[0]
    ax = plot_forest(reg, effect=0, max_groups=5)  # the most extreme: 2 lowest, 3 highest
    slopes = np.sort(reg.group_coef_[:, 0])
    np.testing.assert_array_equal(
        _line(ax, "posterior mean").get_xdata(), np.r_[slopes[:2], slopes[-3:]]
    )
    assert "5 of 18" in ax.get_title()
    with pytest.raises(ValueError, match="several grouping factors; this one has one"):
        plot_forest(reg, factor="Subject")


def test_forest_of_each_factor():
    eg = load_egsingle()
    eg = eg[eg["schoolid"].isin(eg["schoolid"].unique()[:8])]
    est = HierarchicalRegressor(nested=[("schoolid", "childid")], random_slopes=None, **TINY)
    _fit(est, eg[["year"]], eg["math"], groups=eg[["schoolid", "childid"]])
    school = est.group_effects_["schoolid"]
    ax = plot_forest(est)  # the first factor
    means = _line(ax, "posterior mean").get_xdata()
    np.testing.assert_array_equal(means, np.sort(school.intercept))
    assert _line(ax, "population (deviation 0)").get_xdata()[0] == 0
    assert ax.get_xlabel() == "deviation from the population intercept"
    assert ax.get_title() == "Levels of schoolid"
    ax = plot_forest(est, factor="childid", max_groups=10)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 10 and all("/" in s for s in labels)  # "school/child"
    assert ax.get_ylabel() == "childid (labelled outer/inner)"
    np.testing.assert_array_equal(
        _line(ax, "posterior mean").get_xdata()[-5:],
        np.sort(est.group_effects_["childid"].intercept)[-5:],
    )
    with pytest.raises(ValueError, match="`factor` must be one of"):
        plot_forest(est, factor="classid")
    with pytest.raises(ValueError, match="several"):
        plot_shrinkage(est, eg[["year"]], eg["math"], groups=eg[["schoolid", "childid"]])


# --------------------------------------------------------------------- ppc


def test_ppc_continuous(reg, sleep):
    X, y, subject = sleep
    ax = plot_ppc(reg, X, y, groups=subject, n_draws=20, random_state=0)
    lines = ax.get_lines()
    assert len(lines) == 21
    grid = lines[0].get_xdata()
    draws = reg.sample_y(X, groups=subject, n_samples=20, random_state=0)
    for line, column in zip(lines[:20], draws.T, strict=True):  # each draw's density
        density = line.get_ydata()
        assert trapezoid(density, grid) == pytest.approx(1, abs=1e-3)
        assert trapezoid(grid * density, grid) == pytest.approx(column.mean(), rel=1e-3)
    observed = _line(ax, "observed").get_ydata()
    assert trapezoid(grid * observed, grid) == pytest.approx(y.mean(), rel=1e-3)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Reaction", "density")
    assert _legend(ax) == ["posterior predictive draws", "observed"]


def test_ppc_prior_on_unfitted_estimator(sleep):
    X, y, subject = sleep
    est = HierarchicalRegressor(random_state=0)
    ax = plot_ppc(est, X, y, groups=subject, kind="prior", n_draws=10, random_state=0)
    lines = ax.get_lines()
    assert len(lines) == 11
    idata = est.sample_prior_predictive(X, y, groups=subject, n_samples=10, random_state=0)
    draws = idata.prior_predictive["y"].values[0]
    grid = lines[0].get_xdata()
    means = [trapezoid(grid * line.get_ydata(), grid) for line in lines[:10]]
    inside = (draws.min(1) > grid[0]) & (draws.max(1) < grid[-1])  # (the grid is clipped)
    np.testing.assert_allclose(np.array(means)[inside], draws.mean(1)[inside], rtol=1e-2)
    assert "Prior predictive" in ax.get_title()
    assert _legend(ax)[0] == "prior predictive draws"
    with pytest.raises(ValueError, match="`kind` must be"):
        plot_ppc(est, X, y, groups=subject, kind="posterior_predictive")


def test_ppc_binary_per_group(clf, contraception):
    X, y, district = contraception
    ax = plot_ppc(clf, X, y, groups=district, n_draws=30, random_state=0)
    use = (y == "yes").astype(float)
    observed = use.groupby(district).mean().reindex(clf.groups_).to_numpy()
    order = np.argsort(observed, kind="stable")
    np.testing.assert_allclose(_line(ax, "observed").get_ydata(), observed[order])
    draws = clf.sample_y(X, groups=district, n_samples=30, random_state=0) == "yes"
    replicated = pd.DataFrame(draws).groupby(district.to_numpy()).mean().mean(axis=1)
    np.testing.assert_allclose(
        _line(ax, "posterior predictive: mean").get_ydata(),
        replicated.reindex(clf.groups_).to_numpy()[order],
    )
    assert len(ax.collections[0].get_segments()) == 60  # one interval per district
    assert ax.get_ylabel() == "proportion of use = yes"
    # no group labels (a new group for every row): one overall proportion
    ax = plot_ppc(clf, X, y, groups=POPULATION, n_draws=10, random_state=0)
    assert _line(ax, "observed").get_ydata() == pytest.approx([use.mean()])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all rows"]


def test_ppc_counts_rootogram(pois, counts):
    X, y, g = counts
    ax = plot_ppc(pois, X, y, groups=g, n_draws=30, random_state=0)
    bars = [p.get_height() for p in ax.patches]
    top = len(bars) - 1
    assert top >= y.max()
    np.testing.assert_array_equal(bars, np.bincount(y, minlength=top + 1))
    draws = np.minimum(pois.sample_y(X, groups=g, n_samples=30, random_state=0), top)
    mean = np.mean([np.bincount(d, minlength=top + 1) for d in draws.T], axis=0)
    np.testing.assert_allclose(_line(ax, "posterior predictive: mean").get_ydata(), mean)
    assert ax.get_yscale() == "function"
    assert ax.get_ylabel() == "rows with this count (square-root scale)"


# ------------------------------------------------------- group predictions
def test_group_predictions_regressor(reg, sleep):
    X, y, subject = sleep
    ax = plot_group_predictions(reg, X, groups=subject, feature="Days", y=y, n_groups=4)
    lines = ax.get_lines()
    assert len(lines) == 4
    assert len(ax.collections) == 8  # a band and the observed points per group
    shown = [line.get_label() for line in lines]
    assert _legend(ax) == shown
    for line, band in zip(lines, ax.collections[::2], strict=True):
        days = line.get_xdata()
        np.testing.assert_allclose(days, np.linspace(0, 9, 50))
        label = reg.groups_[[str(g) for g in reg.groups_].index(line.get_label())]
        grid, labels = pd.DataFrame({"Days": days}), np.repeat(label, len(days))
        np.testing.assert_allclose(line.get_ydata(), reg.predict(grid, groups=labels))
        lo, hi = reg.predict_interval(grid, groups=labels).T
        edge = band.get_paths()[0].vertices[:, 1]
        assert edge.min() == pytest.approx(lo.min()) and edge.max() == pytest.approx(hi.max())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Days", "Reaction")
    assert "95% predictive interval" in ax.get_title()


def test_group_predictions_chosen_groups_on_several_axes(reg, sleep):
    X, y, subject = sleep
    _, axes = plt.subplots(1, 2)
    out = plot_group_predictions(
        reg, X, groups=subject, feature=0, group_labels=[308, 309], band="mean", ax=axes
    )
    assert out is axes
    assert [ax.get_lines()[0].get_label() for ax in axes] == ["308", "309"]
    assert [ax.get_title() for ax in axes] == ["Subject 308", "Subject 309"]
    assert "interval of the mean" in axes[0].figure.get_suptitle()  # said once, above
    with pytest.raises(ValueError, match="not groups of the model"):
        plot_group_predictions(reg, X, groups=subject, group_labels=[1])


def test_group_predictions_classifier(clf, contraception):
    X, y, district = contraception
    ax = plot_group_predictions(clf, X, groups=district, feature="urban", n_groups=3, y=y)
    for line in ax.get_lines():
        label = clf.groups_[[str(g) for g in clf.groups_].index(line.get_label())]
        grid = pd.DataFrame({"urban": line.get_xdata()})
        proba = clf.predict_proba(grid, groups=np.repeat(label, len(grid)))[:, 1]
        np.testing.assert_allclose(line.get_ydata(), proba)
    assert ax.get_ylabel() == "P(use = yes)"
    points = ax.collections[1::2]
    heights = np.concatenate([c.get_offsets()[:, 1] for c in points])
    assert set(np.round(heights)) == {0.0, 1.0}  # observed outcomes, 1 for "yes"...
    inside = np.abs(heights - np.round(heights))  # ...drawn just inside [0, 1], jittered
    assert inside.min() >= 0.01 and inside.max() <= 0.06 and len(np.unique(inside)) > 10
    assert all(c.get_alpha() <= 0.4 and c.get_sizes()[0] <= 10 for c in points)
    assert all(band.get_alpha() <= 0.1 for band in ax.collections[::2])  # 3 groups overlap
    assert list(ax.get_xticks()) == [0.0, 1.0]  # a 0/1 feature: predicted at 0 and 1 only
    labels = [line.get_label() for line in ax.get_lines()]
    observed = {str(g): y[district == g] for g in clf.groups_}
    for c, label in zip(points, labels, strict=True):
        y_g = (observed[label] == clf.classes_[1]).astype(float).to_numpy()
        assert sorted(np.round(c.get_offsets()[:, 1])) == sorted(y_g)
    with pytest.raises(ValueError, match='`band` must be "mean"'):
        plot_group_predictions(clf, X, groups=district, band="predictive")


@pytest.mark.filterwarnings("ignore::skhier.exceptions.IdentifiabilityWarning")  # x = 0
def test_ppc_counts_reaching_far_are_binned():
    """Counts up to 100 (epilepsy's seizures): bars of several counts, at most 40,
    the x label says so, and the square-root axis has ticks from 0 up."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(12), 8)
    y = rng.poisson(np.exp(rng.normal(2.0, 1.0, 12)[g]))
    y[0] = 100
    est = _fit(
        HierarchicalPoissonRegressor(random_slopes=None, **TINY), np.zeros((96, 1)), y, groups=g
    )
    ax = plot_ppc(est, np.zeros((96, 1)), y, groups=g, n_draws=20)
    bars = ax.patches
    assert 10 <= len(bars) <= 41
    width = bars[1].get_x() - bars[0].get_x()
    assert width > 1 and f"bins of {round(width)}" in ax.get_xlabel()
    assert sum(b.get_height() for b in bars) == len(y)  # every row in one bar
    ticks = ax.get_yticks()
    assert ticks[0] == 0 and 1 in ticks and np.all(np.diff(ticks) > 0)
