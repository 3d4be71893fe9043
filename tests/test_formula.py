"""Model formulas in lme4's syntax give the same posterior as the matrix interface."""

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold, cross_val_score

from skhier import (
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
)
from skhier._core.formula import parse
from skhier.datasets import load_sleepstudy
from skhier.exceptions import UnseenGroupWarning

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
KW = {"draws": 150, "tune": 150, "chains": 2, "random_state": 0}


@pytest.fixture(scope="module")
def sleep():
    return load_sleepstudy()


def _same(a, b):
    np.testing.assert_array_equal(a.posterior_.intercept, b.posterior_.intercept)
    np.testing.assert_array_equal(a.posterior_.coef, b.posterior_.coef)


@pytest.mark.parametrize(
    ("formula", "X_cols", "params"),
    [
        ("Reaction ~ Days + (Days | Subject)", ["Days"], {}),
        ("Reaction ~ Days + (Days || Subject)", ["Days"], {"correlated_effects": False}),
        ("Reaction ~ Days + (1 | Subject)", ["Days"], {"random_slopes": None}),
        ("Reaction ~ 1 + (1 | Subject)", None, {}),
    ],
)
def test_formula_fit_equals_the_matrix_fit(sleep, formula, X_cols, params):
    a = HierarchicalRegressor(formula=formula, **KW).fit(sleep)
    X = None if X_cols is None else sleep[X_cols]
    b = HierarchicalRegressor(**params, **KW).fit(X, sleep["Reaction"], groups=sleep["Subject"])
    _same(a, b)
    Xq = None if X_cols is None else sleep[X_cols].iloc[:5]
    np.testing.assert_array_equal(
        a.predict(sleep.iloc[:5]), b.predict(Xq, groups=sleep["Subject"][:5])
    )
    assert a.score(sleep) == pytest.approx(b.score(X, sleep["Reaction"], groups=sleep["Subject"]))


def test_several_factors_nested_and_combined():
    rng = np.random.default_rng(0)
    school = np.repeat(np.arange(8), 30)
    cls = np.tile(np.repeat(np.arange(3), 10), 8)  # class 0-2 numbered within schools
    x = rng.normal(size=len(school))
    y = (
        x
        + rng.normal(size=8)[school]
        + rng.normal(size=24)[school * 3 + cls]
        + rng.normal(size=len(x))
    )
    data = pd.DataFrame({"y": y, "x": x, "school": school, "cls": cls})
    kw = dict(random_slopes=None, **KW)
    a = HierarchicalRegressor(formula="y ~ x + (1 | school/cls)", **KW).fit(data)
    b = HierarchicalRegressor(nested=[("school", "cls")], **kw)
    b.fit(data[["x"]], y, groups=data[["school", "cls"]])
    _same(a, b)
    assert a.nesting_ == [("school", "cls")]
    c = HierarchicalRegressor(formula="y ~ x + (1 | school) + (1 | school:cls)", **KW).fit(data)
    assert c.factors_ == ("school", "school:cls") and c.nesting_ == [("school", "school:cls")]
    np.testing.assert_allclose(c.intercept_, a.intercept_, atol=0.3)


def test_categoricals_interactions_and_transforms_are_formulaics(sleep):
    data = sleep.assign(week=np.where(sleep["Days"] < 5, "first", "second"))
    est = HierarchicalRegressor(formula="Reaction ~ C(week) * Days + (Days | Subject)", **KW)
    est.fit(data)
    assert list(est.feature_names_in_) == ["C(week)[T.second]", "Days", "C(week)[T.second]:Days"]
    assert "mu_b[C(week)[T.second]:Days]" in est.summary().index
    pred = est.predict(data.iloc[[0, 9]])
    assert np.isfinite(pred).all()
    with pytest.raises(ValueError, match="cannot be encoded as at fit"):
        est.predict(data.iloc[:2].assign(week="third"))


def test_glms_and_one_sided_formulas(sleep):
    y = (sleep["Reaction"] > 300).astype(int)
    clf = HierarchicalClassifier(formula="~ Days + (1 | Subject)", **KW).fit(sleep, y)
    ref = HierarchicalClassifier(random_slopes=None, **KW)
    ref.fit(sleep[["Days"]], y, groups=sleep["Subject"])
    _same(clf, ref)
    proba = clf.predict_proba(sleep.iloc[:3])
    assert proba.shape == (3, 2)
    counts = sleep.assign(n=np.round(sleep["Reaction"] / 30).astype(int))
    pois = HierarchicalPoissonRegressor(formula="n ~ Days + (1 | Subject)", **KW).fit(counts)
    assert pois.predict(counts.iloc[:2]).shape == (2,)


def test_population_and_new_groups(sleep):
    est = HierarchicalRegressor(formula="Reaction ~ Days + (Days | Subject)", **KW).fit(sleep)
    pop = est.predict(sleep.iloc[:2], groups=POPULATION)
    np.testing.assert_allclose(pop, est.intercept_ + sleep["Days"].iloc[:2] * est.coef_[0])
    new = sleep.iloc[:2].assign(Subject=999)
    with pytest.warns(UnseenGroupWarning):
        est.predict(new)
    with pytest.raises(ValueError, match="grouping columns are read from the data"):
        est.predict(sleep.iloc[:2], groups=sleep["Subject"].iloc[:2])


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("Reaction ~ Days + (0 + Days | Subject)", "removes the random intercept"),
        ("Reaction ~ 0 + Days + (1 | Subject)", "removes the fixed intercept"),
        ("Reaction ~ Days - 1 + (1 | Subject)", "removes the fixed intercept"),
        ("Reaction ~ Days + (1 | Subjct)", "did you mean 'Subject'"),
        ("Reaction ~ Dayz + (1 | Subject)", "Did you mean 'Days'"),
        ("Reaction ~ (Days | Subject)", "not a numeric column of the fixed part"),
        ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "two random-effect terms"),
        ("Reaction ~ Days + Days | Subject", "bar outside parentheses"),
        ("Reaction ~ Days", "no random-effect term"),
        ("Reaction + Days", "not a model formula"),
        ("Reaction ~ Days + (1 | Subject) + ar1(Days | Subject)", "correlation structure"),
        ("Reaction ~ Days + (1 | gr(Subject, by=Days))", "a factor is a column name"),
    ],
)
def test_what_skhier_cannot_fit_is_refused_naming_the_term(sleep, formula, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalRegressor(formula=formula, **KW).fit(sleep)


def test_formula_conflicts_are_refused(sleep):
    f = "Reaction ~ Days + (1 | Subject)"
    with pytest.raises(ValueError, match="must not be passed"):
        HierarchicalRegressor(formula=f, **KW).fit(sleep, groups=sleep["Subject"])
    with pytest.raises(ValueError, match="y was passed too"):
        HierarchicalRegressor(formula=f, **KW).fit(sleep, sleep["Reaction"])
    with pytest.raises(ValueError, match="sets random_slopes itself"):
        HierarchicalRegressor(formula=f, random_slopes=None, **KW).fit(sleep)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        HierarchicalRegressor(formula=f, **KW).fit(sleep.to_numpy())


def test_sklearn_workflows_with_a_formula(sleep):
    est = HierarchicalRegressor(formula="Reaction ~ Days + (1 | Subject)", **KW)
    assert clone(est).get_params()["formula"] == est.formula
    new_subjects = cross_val_score(
        est.set_params(unseen_groups="population"), sleep, cv=GroupKFold(3), groups=sleep["Subject"]
    )
    assert new_subjects.shape == (3,)
    grid = GridSearchCV(
        est,
        {"formula": ["Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)"]},
        cv=3,
    ).fit(sleep)
    assert grid.best_params_["formula"] == "Reaction ~ Days + (Days | Subject)"
    fitted = HierarchicalRegressor(formula="Reaction ~ Days + (Days | Subject)", **KW).fit(sleep)
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict(sleep.iloc[:4]), fitted.predict(sleep.iloc[:4]))


def test_parse_keeps_lme4_structure():
    f = parse("y ~ x + C(c) + (x | a/b) + (1 | d:e)")
    assert f.lhs == "y" and f.fixed == "x + C(c)"
    assert [t.factor for t in f.terms] == [("a", "b"), ("d", "e")]
    assert [t.combined for t in f.terms] == [False, True]
    assert f.terms[0].slopes == ("x",) and f.terms[1].slopes == ()


def test_importing_skhier_does_not_import_formulaic():
    code = "import sys, skhier; print('formulaic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plots_take_a_formula_model(sleep):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skhier.plot import plot_forest, plot_group_predictions, plot_ppc, plot_shrinkage

    est = HierarchicalRegressor(formula="Reaction ~ Days + (Days | Subject)", **KW).fit(sleep)
    assert plot_shrinkage(est, sleep, sleep["Reaction"]).get_xlabel().startswith("Subject")
    assert len(plot_ppc(est, sleep, sleep["Reaction"], n_draws=5, random_state=0).get_lines()) == 6
    assert plot_forest(est).get_title()
    ax = plot_group_predictions(est, sleep, feature="Days", n_groups=3)
    assert len(ax.get_lines()) == 3


def test_a_formula_model_saves_with_skops_as_plain_values(sleep, tmp_path):
    """The encoding is stored as plain values (levels, transform states): skops trusts
    it, and new data are encoded identically after loading, unseen levels refused."""
    from skhier import persistence

    data = sleep.assign(half=np.where(sleep["Days"] < 5, "a", "b"))
    formula = "Reaction ~ C(half) + center(Days) + (1 | Subject)"
    est = HierarchicalRegressor(formula=formula, **KW).fit(data)
    persistence.dump(est, tmp_path / "m.skops")
    loaded = persistence.load(tmp_path / "m.skops")
    np.testing.assert_array_equal(loaded.predict(data.iloc[:7]), est.predict(data.iloc[:7]))
    with pytest.raises(ValueError, match="cannot be encoded as at fit"):
        loaded.predict(data.iloc[:2].assign(half="c"))


def test_crossed_factors_and_counts_equal_the_matrix_fit():
    rng = np.random.default_rng(1)
    a, b = np.repeat(np.arange(10), 12), np.tile(np.arange(12), 10)
    x = rng.normal(size=120)
    data = pd.DataFrame({"x": x, "a": a, "b": b})
    data["y"] = x + rng.normal(size=10)[a] + rng.normal(size=12)[b] + rng.normal(size=120)
    f = HierarchicalRegressor(formula="y ~ x + (1 | a) + (1 | b)", **KW).fit(data)
    m = HierarchicalRegressor(random_slopes=None, nested=False, **KW)
    _same(f, m.fit(data[["x"]], data["y"], groups=data[["a", "b"]]))
    data["n"] = rng.poisson(np.exp(0.3 * x + rng.normal(scale=0.3, size=10)[a]))
    f = HierarchicalPoissonRegressor(formula="n ~ x + (x | a)", **KW).fit(data)
    m = HierarchicalPoissonRegressor(**KW).fit(data[["x"]], data["n"], groups=data["a"])
    _same(f, m)


def test_to_pymc_and_pipelines_with_a_formula(sleep):
    from sklearn.pipeline import make_pipeline

    formula = "Reaction ~ Days + (Days | Subject)"
    model = HierarchicalRegressor(formula=formula).to_pymc(sleep)
    ref = HierarchicalRegressor().to_pymc(
        sleep[["Days"]], sleep["Reaction"], groups=sleep["Subject"]
    )
    assert sorted(model.named_vars) == sorted(ref.named_vars)
    pooled = HierarchicalRegressor().to_pymc(sleep[["Days"]], sleep["Reaction"], groups=POPULATION)
    assert not {"sigma_a", "a", "u", "tau"} & set(pooled.named_vars)  # no group effects
    pipe = make_pipeline(HierarchicalRegressor(formula=formula, **KW)).fit(sleep)
    np.testing.assert_array_equal(pipe.predict(sleep.head()), pipe[-1].predict(sleep.head()))


def test_a_group_id_in_the_fixed_part_warns_as_in_the_matrix_interface(sleep):
    from skhier.exceptions import GroupIdFeatureWarning

    with pytest.warns(GroupIdFeatureWarning):
        HierarchicalRegressor(formula="Reaction ~ Days + Subject + (1 | Subject)", **KW).fit(sleep)


def test_dask_dataframes_fit_and_predict_by_formula(sleep):
    dd = pytest.importorskip("dask.dataframe")
    data = sleep.assign(half=np.where(sleep["Days"] < 5, "a", "b"))
    lazy = dd.from_pandas(data, npartitions=3)
    formula = "Reaction ~ Days + C(half) + (Days | Subject)"
    kw = dict(inference="laplace", **KW)
    a = HierarchicalRegressor(formula=formula, **kw).fit(lazy)
    b = HierarchicalRegressor(formula=formula, **kw).fit(data)
    assert list(a.feature_names_in_) == list(b.feature_names_in_)
    np.testing.assert_allclose(a.posterior_.coef, b.posterior_.coef, rtol=1e-6, atol=1e-8)
    pred = a.predict(lazy).compute().to_numpy()
    np.testing.assert_allclose(pred, b.predict(data), rtol=1e-8)
    with pytest.raises(ValueError, match="stateful transform"):
        HierarchicalRegressor(formula="Reaction ~ center(Days) + (1 | Subject)", **kw).fit(lazy)


def test_nesting_that_is_not_a_chain_is_refused():
    rng = np.random.default_rng(2)
    data = pd.DataFrame(
        {"y": rng.normal(size=60), "x": rng.normal(size=60), "a": np.repeat(np.arange(3), 20),
         "b": np.tile(np.arange(4), 15), "c": np.tile(np.arange(5), 12)}
    )  # fmt: skip
    with pytest.raises(ValueError, match="nested in 'a'.*chains"):
        HierarchicalRegressor(formula="y ~ x + (1 | a/b) + (1 | a/c)", **KW).fit(data)
