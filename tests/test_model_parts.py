"""Model parts a mixed-model user reaches for first: an intercept-only model, group
labels named by mistake, a constant feature, and the uncertainty of a GLM's mean."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skhier import (
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
)
from skhier.datasets import load_sleepstudy
from skhier.exceptions import IdentifiabilityWarning

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")  # tiny fits
TINY = {"draws": 200, "tune": 200, "chains": 2, "random_state": 0}
NEW = {"unseen_groups": "population"}

# lme4's Dyestuff (Davies 1967): yield of dyestuff, 6 batches x 5 preparations
DYESTUFF = np.array([
    [1545, 1440, 1440, 1520, 1580], [1540, 1555, 1490, 1560, 1495],
    [1595, 1550, 1605, 1510, 1560], [1445, 1440, 1595, 1465, 1545],
    [1595, 1630, 1515, 1635, 1625], [1520, 1455, 1450, 1480, 1445],
], dtype=float)  # fmt: skip


@pytest.fixture(scope="module")
def dyestuff():
    return DYESTUFF.ravel(), np.repeat(list("ABCDEF"), 5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: HierarchicalRegressor(**NEW, **TINY),
        lambda: HierarchicalRegressor(likelihood="student_t", **NEW, **TINY),
        lambda: HierarchicalRegressor(engine="explicit", **NEW, **TINY),
    ],
    ids=["collapsed", "student_t", "explicit"],
)
def test_intercept_only_model_with_x_none(dyestuff, make):
    y, g = dyestuff
    est = make().fit(None, y, groups=g)
    assert est.n_features_in_ == 0 and est.coef_.shape == (0,)
    # lme4 (REML): intercept 1527.5 (SE 19.4), Batch SD 42.0, residual SD 49.5
    assert abs(est.intercept_ - 1527.5) < 2 * 19.4
    pred = est.predict(None, groups=["A", "E", "new"])
    assert pred.shape == (3,) and pred[1] > pred[0]
    assert est.predict_interval(None, groups=g[:2]).shape == (2, 2)
    assert est.sample_y(np.empty((4, 0)), groups=POPULATION, n_samples=3).shape == (4, 3)
    names = est.summary().index
    assert "mu_a" in names and not any(n.startswith("mu_b") for n in names)


def test_intercept_only_equals_a_frame_of_group_columns_only(dyestuff):
    y, g = dyestuff
    a = HierarchicalRegressor(**TINY).fit(None, y, groups=g)
    b = HierarchicalRegressor(group_col="batch", **TINY).fit(pd.DataFrame({"batch": g}), y)
    np.testing.assert_array_equal(a.posterior_.intercept, b.posterior_.intercept)
    np.testing.assert_array_equal(
        b.predict(pd.DataFrame({"batch": ["A"]})), a.predict(None, groups=["A"])
    )


def test_intercept_only_glms_and_several_factors():
    d = load_sleepstudy()
    y, g = d["Reaction"].to_numpy(), d["Subject"].to_numpy()
    clf = HierarchicalClassifier(**TINY).fit(None, (y > 300).astype(int), groups=g)
    assert clf.predict_proba(None, groups=g[:2]).shape == (2, 2)
    cnt = HierarchicalPoissonRegressor(**TINY).fit(None, np.round(y / 30), groups=g)
    assert cnt.predict(None, groups=g[:2]).shape == (2,)
    G = pd.DataFrame({"s": g, "d": d["Days"].to_numpy() % 3})
    several = HierarchicalRegressor(nested=False, **TINY).fit(None, y, groups=G)
    assert several.coef_.shape == (0,)
    assert several.predict(None, groups=G.iloc[:3]).shape == (3,)


def test_intercept_only_errors_name_the_fix(dyestuff):
    y, g = dyestuff
    with pytest.raises(ValueError, match="pass X=None"):
        HierarchicalRegressor(**TINY).fit(np.empty((len(y), 0)), y, groups=g)
    est = HierarchicalRegressor(**TINY).fit(None, y, groups=g)
    with pytest.raises(ValueError, match="X=np.empty"):
        est.predict(None, groups=POPULATION)


def test_a_column_name_as_groups_points_to_group_col():
    d = load_sleepstudy()
    est = HierarchicalRegressor(**TINY)
    with pytest.raises(ValueError, match="group_col='Subject'"):
        est.fit(d[["Days"]], d["Reaction"], groups="Subject")
    with pytest.raises(ValueError, match="group_col='Subject'"):
        HierarchicalClassifier(**TINY).fit(d[["Days"]], d["Reaction"] > 300, groups="Subject")


def test_a_constant_feature_is_named_as_confounded_with_the_intercept():
    d = load_sleepstudy()
    X = d[["Days"]].assign(one=1.0)
    with pytest.warns(IdentifiabilityWarning, match="'one' of X is constant"):
        HierarchicalRegressor(random_slopes=None, **TINY).fit(X, d["Reaction"], groups=d["Subject"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        HierarchicalRegressor(**TINY).fit(d[["Days"]], d["Reaction"], groups=d["Subject"])


def test_glm_return_std_is_the_posterior_sd_of_the_mean():
    d = load_sleepstudy()
    X, g = d[["Days"]], d["Subject"]
    yb = (d["Reaction"] > 300).astype(int)
    clf = HierarchicalClassifier(**NEW, **TINY).fit(X, yb, groups=g)
    proba, sd = clf.predict_proba(X.iloc[:3], groups=g.iloc[:3], return_std=True)
    np.testing.assert_array_equal(proba, clf.predict_proba(X.iloc[:3], groups=g.iloc[:3]))
    lo, hi = clf.predict_proba_interval(X.iloc[:3], groups=g.iloc[:3]).T
    assert np.all((sd > 0) & (sd < (hi - lo)))  # a 95% interval spans about 4 SDs
    _, sd_new = clf.predict_proba(X.iloc[:3], groups=["new"] * 3, return_std=True)
    assert np.all(sd_new > sd)  # a new group's probability is less certain
    yc = np.round(d["Reaction"] / 30).astype(int)
    cnt = HierarchicalPoissonRegressor(**TINY).fit(X, yc, groups=g)
    mean, sd = cnt.predict(X.iloc[:3], groups=g.iloc[:3], return_std=True)
    np.testing.assert_array_equal(mean, cnt.predict(X.iloc[:3], groups=g.iloc[:3]))
    # twice the exposure: twice the mean and twice its SD
    mean2, sd2 = cnt.predict(X.iloc[:3], groups=g.iloc[:3], exposure=2.0, return_std=True)
    np.testing.assert_allclose(mean2, 2 * mean, rtol=1e-12)
    np.testing.assert_allclose(sd2, 2 * sd, rtol=1e-12)


def test_a_group_sd_piled_up_at_zero_is_reported_singular():
    """lme4's isSingular: a random slope with no true spread is named in ``singular_``
    and in ``summary().attrs``; a real one is not."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(30), 20)
    x = rng.normal(size=600)
    y = 1 + rng.normal(size=30)[g] + 0.5 * x + rng.normal(size=600)
    est = HierarchicalRegressor(random_state=0).fit(x[:, None], y, groups=g)
    assert est.singular_ == ["sigma_b[x0]"]
    assert est.summary().attrs["singular"] == ["sigma_b[x0]"]
    d = load_sleepstudy()
    est = HierarchicalRegressor(random_state=0).fit(d[["Days"]], d["Reaction"], groups=d["Subject"])
    assert est.singular_ == []
    G = pd.DataFrame({"g": g, "h": np.tile(np.arange(10), 60)})  # h: no effect at all
    several = HierarchicalRegressor(random_slopes=None, nested=False, random_state=0)
    assert several.fit(x[:, None], y, groups=G).singular_ == ["sigma_a[h]"]
