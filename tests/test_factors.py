"""Several grouping factors: nested and crossed designs, the API and its checks."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import skhier
from skhier import POPULATION, HierarchicalRegressor
from skhier.exceptions import (
    MissingGroupsError,
    NestingWarning,
    UnseenGroupError,
    UnseenGroupWarning,
)
from tests.conftest import predict_in_fresh_process

FAST = {"draws": 300, "tune": 200, "chains": 2, "random_state": 0}


def nested_data(seed=0, n_schools=30, n_classes=4, n_rows=1200):
    """Pupils in classes 1..n_classes of every school (reused labels), one feature
    with a school-level random slope."""
    rng = np.random.default_rng(seed)
    school = rng.integers(0, n_schools, n_rows)
    klass = rng.integers(0, n_classes, n_rows)
    x = rng.normal(size=n_rows)
    a_s, b_s = rng.normal(0, 1.0, n_schools), rng.normal(0, 0.5, n_schools)
    a_c = rng.normal(0, 0.7, (n_schools, n_classes))
    y = 3 + 2 * x + a_s[school] + b_s[school] * x + a_c[school, klass] + rng.normal(0, 1, n_rows)
    groups = pd.DataFrame({"school": school, "class": klass})
    return x[:, None], y, groups


def crossed_data(seed=0, n_a=40, n_b=25, n_rows=1500, sd=(0.8, 0.5), noise=0.6):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n_a, n_rows), rng.integers(0, n_b, n_rows)
    X = rng.normal(size=(n_rows, 2))
    y = 1 + X @ [0.5, -1.0] + rng.normal(0, sd[0], n_a)[a] + rng.normal(0, sd[1], n_b)[b]
    y = y + rng.normal(0, noise, n_rows)
    return X, y, pd.DataFrame({"student": a, "lecturer": b})


@pytest.fixture(scope="module")
def nested_fit():
    X, y, g = nested_data()
    est = HierarchicalRegressor(
        nested=[("school", "class")], random_slopes={"school": "all"}, **FAST
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        est.fit(X, y, groups=g)
    return est, X, y, g


def test_nested_levels_are_combinations(nested_fit):
    est, X, y, g = nested_fit
    assert est.factors_ == ("school", "class")
    cls = est.group_effects_["class"]
    assert len(cls.levels) == len(g.drop_duplicates())  # (school, class) pairs
    assert cls.levels[0] == (0, 0)
    school = est.group_effects_["school"]
    assert school.random_slope_mask.tolist() == [True]
    assert cls.random_slope_mask.tolist() == [False]
    assert np.all(cls.coef == 0)
    assert abs(est.coef_[0] - 2) < 0.3


def test_undeclared_nesting_warns_and_crossed_declaration_silences():
    X, y, g = nested_data(n_rows=600)
    est = HierarchicalRegressor(random_slopes=None, draws=20, tune=20, chains=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        with pytest.warns(NestingWarning, match=r"nested=\[\('school', 'class'\)\]"):
            est.fit(X, y, groups=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NestingWarning)
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        est = HierarchicalRegressor(random_slopes=None, nested=False, draws=20, tune=20, chains=1)
        est.fit(X, y, groups=g)
    assert len(est.group_effects_["class"].levels) == 4  # crossed: labels as given


def test_crossed_recovers_sds_and_coefs():
    X, y, g = crossed_data()
    est = HierarchicalRegressor(random_slopes=None, nested=False, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)  # short chains
        est.fit(X, y, groups=g)
    sds = [est.group_effects_[f].intercept_sd for f in ("student", "lecturer")]
    assert abs(sds[0] - 0.8) < 0.25 and abs(sds[1] - 0.5) < 0.2
    assert abs(est.noise_sd_ - 0.6) < 0.05
    np.testing.assert_allclose(est.coef_, [0.5, -1.0], atol=0.05)
    assert est.convergence_["max_r_hat"] < 1.05


def test_predictions_per_factor(nested_fit):
    est, X, y, g = nested_fit
    mean = est.predict(X[:5], groups=g[:5])
    school = est.group_effects_["school"]
    cls = est.group_effects_["class"]
    s, c = g.school.to_numpy()[:5], g["class"].to_numpy()[:5]
    cidx = [list(cls.levels).index((a, b)) for a, b in zip(s, c, strict=True)]
    expected = (
        est.intercept_
        + X[:5, 0] * est.coef_[0]
        + school.intercept[s]
        + school.coef[s, 0] * X[:5, 0]
        + cls.intercept[cidx]
    )
    np.testing.assert_allclose(mean, expected, rtol=1e-10)
    # a seen school with a new class: the school's effect, the class from the population
    new = g[:1].assign(**{"class": [99]})
    with pytest.warns(UnseenGroupWarning, match="Factor 'class'"):
        m_new, sd_new = est.predict(X[:1], groups=new, return_std=True)
    np.testing.assert_allclose(
        m_new,
        est.intercept_
        + X[0, 0] * est.coef_[0]
        + school.intercept[s[0]]
        + school.coef[s[0], 0] * X[0, 0],
    )
    _, sd_seen = est.predict(X[:1], groups=g[:1], return_std=True)
    assert sd_new[0] > sd_seen[0]
    pop = est.predict(X[:3], groups=POPULATION)
    np.testing.assert_allclose(pop, est.intercept_ + X[:3, 0] * est.coef_[0])
    with pytest.raises(MissingGroupsError, match="school"):
        est.predict(X[:3])
    strict = pickle.loads(pickle.dumps(est)).set_params(unseen_groups="raise")
    with pytest.raises(UnseenGroupError, match="Factor 'class'"):
        strict.predict(X[:1], groups=new)


def test_interval_and_sample_y_shapes(nested_fit):
    est, X, y, g = nested_fit
    iv = est.predict_interval(X[:50], groups=g[:50], prob=0.9)
    assert iv.shape == (50, 2) and np.all(iv[:, 0] < iv[:, 1])
    inside = np.mean((y[:50] > iv[:, 0]) & (y[:50] < iv[:, 1]))
    assert 0.7 < inside <= 1.0
    draws = est.sample_y(X[:4], groups=POPULATION, n_samples=200, random_state=1)
    assert draws.shape == (4, 200)


def test_summary_and_idata(nested_fit):
    est = nested_fit[0]
    table = est.summary(group_level=True)
    rows = ["mu_a", "mu_b[x0]", "sigma_a[school]", "sigma_b[school, x0]", "sigma_a[class]"]
    rows += ["corr[school: intercept, x0]", "eps", "a[class=0/0]", "b[school=0, x0]"]
    assert set(rows) <= set(table.index)
    assert est.convergence_["method"] == "importance"  # nested Gaussian: no chains
    assert np.isnan(table.loc["sigma_a[school]", "r_hat"])
    assert table.loc["sigma_a[school]", "ess_bulk"] > 100
    idata = est.idata_
    assert idata.posterior["u[class]"].dims[2:] == ("class_level", "class_effect")
    assert idata.posterior.sizes["school_level"] == 30


def test_group_col_list_and_group_kfold_on_outer_factor():
    from sklearn.model_selection import GroupKFold, cross_val_score

    X, y, g = crossed_data(n_rows=400)
    frame = pd.DataFrame(X, columns=["x1", "x2"]).join(g)
    est = HierarchicalRegressor(
        group_col=["student", "lecturer"], nested=False, random_slopes=None,
        unseen_groups="population", draws=30, tune=30, chains=1, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        scores = cross_val_score(est, frame, y, groups=frame.student, cv=GroupKFold(3))
        est.fit(frame, y)
    assert np.all(np.isfinite(scores))
    assert est.n_features_in_ == 2
    np.testing.assert_allclose(est.predict(frame[:5]), est.predict(frame[:5]))


CROSSED = {"a": np.arange(60) % 6, "b": np.arange(60) % 5}


@pytest.mark.parametrize(
    ("groups", "kwargs", "error", "match"),
    [
        ({"a": [0] * 60, "b": np.arange(60) % 6}, {}, ValueError, "Factor 'a' has a single level"),
        ({"a": np.arange(60) % 6, "b": np.arange(60) % 6 + 10}, {}, ValueError, "identically"),
        (
            {"a": np.arange(60) % 6, "b": np.arange(60) % 12},
            {"nested": [("b", "a")]},
            ValueError,
            "reversed",
        ),
        (
            {"a": np.r_[np.nan, np.arange(59) % 6], "b": np.arange(60) % 5},
            {},
            ValueError,
            r"groups\['a'\]",
        ),
        (CROSSED, {"engine": "collapsed"}, ValueError, "(?i)gibbs"),
        (CROSSED, {"likelihood": "student_t", "engine": "augmented"}, ValueError, "one grouping"),
        (CROSSED, {"random_slopes": {"c": "all"}}, ValueError, "'c'"),
        (CROSSED, {"nested": [("a", "z")]}, ValueError, "'z'"),
    ],
)  # fmt: skip
def test_bad_factors_raise_naming_the_factor(groups, kwargs, error, match):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 1)), rng.normal(size=60)
    kwargs = {"nested": False, **kwargs}
    with pytest.raises(error, match=match):
        HierarchicalRegressor(draws=10, tune=10, chains=1, **kwargs).fit(
            X, y, groups=pd.DataFrame(groups)
        )


def test_refit_with_one_factor_forgets_the_factors(nested_fit):
    est, X, y, g = nested_fit
    est = pickle.loads(pickle.dumps(est))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        est.set_params(random_slopes=None).fit(X, y, groups=g.school)
    assert not hasattr(est, "factors_") and not hasattr(est, "group_effects_")
    assert est.predict(X[:2], groups=g.school[:2]).shape == (2,)


def test_gibbs_engine_agrees_with_collapsed_on_one_factor():
    from skhier.datasets import load_sleepstudy

    df = load_sleepstudy()
    X, y, g = df[["Days"]], df["Reaction"], df["Subject"]
    kw = {"draws": 1000, "tune": 300, "chains": 4, "random_state": 3}
    gibbs = HierarchicalRegressor(engine="gibbs", **kw).fit(X, y, groups=g)
    assert gibbs.convergence_["max_r_hat"] < 1.01
    coll = HierarchicalRegressor(**kw).fit(X, y, groups=g)
    assert gibbs.engine_ == "gibbs"
    for attr, tol in [("intercept_", 2.0), ("coef_", 0.5), ("group_intercept_sd_", 3.0),
                      ("noise_sd_", 0.8), ("group_coef_sd_", 0.6)]:  # fmt: skip
        np.testing.assert_allclose(getattr(gibbs, attr), getattr(coll, attr), atol=tol)
    np.testing.assert_allclose(gibbs.group_intercept_, coll.group_intercept_, atol=3.0)


def test_saved_model_predicts_in_a_fresh_process_without_numba(nested_fit, tmp_path):
    import textwrap

    import joblib
    import skops.io as sio

    est, X, y, g = nested_fit
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    skops_path = tmp_path / "model.skops"
    sio.dump(est, skops_path)
    loaded = sio.load(skops_path, trusted=sio.get_untrusted_types(file=skops_path))
    np.testing.assert_array_equal(
        loaded.predict(X[:20], groups=g[:20]), est.predict(X[:20], groups=g[:20])
    )
    g[:10].to_csv(tmp_path / "g.csv", index=False)
    np.save(tmp_path / "X.npy", X[:10])
    expected = est.predict(X[:10], groups=g[:10])
    code = textwrap.dedent(
        f"""
        import sys, joblib, numpy as np, pandas as pd
        est = joblib.load({str(path)!r})
        X = np.load({str(tmp_path / "X.npy")!r})
        g = pd.read_csv({str(tmp_path / "g.csv")!r})
        pred = est.predict(X, groups=g)
        est.predict_interval(X, groups=g)
        est.sample_y(X, groups=g, n_samples=2, random_state=0)
        """
    )
    pred, heavy = predict_in_fresh_process(code)
    np.testing.assert_allclose(pred, expected)
    assert heavy == "[]"


def test_routing_scorer_and_cross_val_predict_with_several_factors():
    import sklearn
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import KFold, cross_val_predict, cross_validate

    from skhier import make_group_scorer

    X, y, g = crossed_data(n_rows=300)
    kw = {"nested": False, "random_slopes": None, "draws": 30, "tune": 30, "chains": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        with sklearn.config_context(enable_metadata_routing=True):
            scorer = make_group_scorer(mean_squared_error, greater_is_better=False)
            res = cross_validate(
                HierarchicalRegressor(unseen_groups="population", **kw), X, y,
                params={"groups": g}, cv=KFold(3), scoring={"own": None, "mse": scorer},
            )  # fmt: skip
        frame = pd.DataFrame(X, columns=["x1", "x2"]).join(g)
        est = HierarchicalRegressor(
            group_col=["student", "lecturer"], unseen_groups="population", **kw
        )
        pred = cross_val_predict(est, frame, y, cv=KFold(3))
    assert np.all(np.isfinite(res["test_own"])) and np.all(res["test_mse"] < 0)
    assert pred.shape == y.shape and np.corrcoef(pred, y)[0, 1] > 0.5


def test_a_factor_with_two_levels_warns():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 1)), rng.normal(size=80)
    groups = pd.DataFrame({"sex": np.arange(80) % 2, "site": np.arange(80) % 8})
    est = HierarchicalRegressor(nested=False, draws=20, tune=20, chains=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        with pytest.warns(skhier.exceptions.FewGroupsWarning, match="Factor 'sex'"):
            est.fit(X, y, groups=groups)


def test_nesting_is_read_from_the_data_when_not_declared():
    """lme4 needs no declaration: pupils whose ids are unique across schools are
    nested in them; reused labels stay crossed (and warn); a factor holding two others
    keeps neither (nesting runs in chains)."""
    from skhier._data.factors import detect_nesting

    school = np.repeat(np.arange(6), 20)
    pupil = np.arange(120) // 2  # unique across schools: 2 rows per pupil
    cls = np.arange(120) // 10  # 12 classes, 2 per school
    assert detect_nesting([school, pupil]) == [-1, 0]
    assert detect_nesting([school, cls, pupil]) == [-1, 0, 1]  # a chain, innermost last
    reused = np.tile(np.arange(10), 12)  # label 1 in every school
    assert detect_nesting([school, reused]) == [-1, -1]
    crossed = np.tile(np.arange(4), 30)
    assert detect_nesting([school, crossed]) == [-1, -1]
    teacher = 4 * school + np.arange(120) % 4  # 4 per school, across both its classes
    assert detect_nesting([school, cls, teacher]) == [-1, -1, -1]

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 1))
    y = X[:, 0] + rng.normal(size=6)[school] + rng.normal(size=60)[pupil] + rng.normal(size=120)
    groups = pd.DataFrame({"school": school, "pupil": pupil})
    kw = dict(draws=100, tune=100, chains=2, random_state=0, random_slopes=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        est = HierarchicalRegressor(**kw).fit(X, y, groups=groups)
        assert est.nesting_ == [("school", "pupil")]
        assert HierarchicalRegressor(nested=False, **kw).fit(X, y, groups=groups).nesting_ == []


@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")  # tiny fits
def test_counts_and_student_t_noise_take_several_factors():
    """Both are fit by the explicit model (NUTS), reported per factor like the others."""
    from skhier import HierarchicalPoissonRegressor

    rng = np.random.default_rng(3)
    a, b = np.repeat(np.arange(6), 20), np.tile(np.arange(8), 15)
    x = rng.normal(size=120)
    groups = pd.DataFrame({"a": a, "b": b})
    kw = dict(draws=100, tune=100, chains=2, random_state=0, random_slopes=None, nested=False)
    counts = rng.poisson(np.exp(0.2 + 0.4 * x + 0.5 * rng.normal(size=6)[a]))
    est = HierarchicalPoissonRegressor(family="negative_binomial", **kw)
    est.fit(x[:, None], counts, groups=groups, exposure=np.full(120, 2.0))
    assert est.engine_ == "explicit" and est.factors_ == ("a", "b")
    assert {"sigma_a[a]", "sigma_a[b]", "dispersion"} <= set(est.summary().index)
    assert est.dispersion_ >= 0 and est.predict(x[:3, None], groups=groups[:3]).shape == (3,)
    y = x + rng.normal(size=6)[a] + rng.standard_t(3, size=120)
    t = HierarchicalRegressor(likelihood="student_t", **kw).fit(x[:, None], y, groups=groups)
    assert np.isfinite(t.noise_df_) and "nu" in t.summary().index
    draws = t.sample_y(x[:4, None], groups=groups[:4], n_samples=5, random_state=0)
    assert draws.shape == (4, 5)


def test_nested_importance_sampling_agrees_with_the_gibbs_sampler(monkeypatch):
    """Nested Gaussian models are fit by importance sampling of the variance
    parameters from their exact marginal (no chain); the Gibbs sampler, the fallback
    when the weights are unreliable, samples the same posterior."""
    from skhier._engines.gibbs import tree_importance

    X, y, g = nested_data(seed=3)
    kw = dict(nested=[("school", "class")], random_state=0, draws=1000, tune=500)
    est = HierarchicalRegressor(**kw).fit(X, y, groups=g)
    assert est.convergence_["method"] == "importance"
    assert est.convergence_["pareto_k"] < 0.7 and est.convergence_["min_ess_bulk"] > 400
    monkeypatch.setattr(tree_importance, "sample", lambda *a, **k: None)
    gibbs = HierarchicalRegressor(**kw).fit(X, y, groups=g)
    assert gibbs.convergence_["method"] == "gibbs"
    assert gibbs.convergence_["fallback"] == "the Laplace fit failed"
    a, b = est.summary(group_level=False), gibbs.summary(group_level=False)
    z = (a["mean"] - b["mean"]) / b["sd"]
    assert np.abs(z).max() < 0.25, z
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=0.2)
    # the group effects' exact moments agree too
    for name in ("school", "class"):
        ea, eb = est.group_effects_[name], gibbs.group_effects_[name]
        np.testing.assert_allclose(ea.intercept, eb.intercept, atol=0.1)
