"""HierarchicalRegressor: attributes, values, predictions and errors."""

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_posterior, fast_estimator
from sklearn.exceptions import NotFittedError

import skhier
from skhier import POPULATION, HierarchicalRegressor
from skhier.exceptions import (
    FewGroupsWarning,
    MissingGroupsError,
    UnseenGroupError,
    UnseenGroupWarning,
)

# Unit tests use tiny sampler settings; convergence warnings are tested on their own.
pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")


def test_fitted_attributes_shapes_and_consistency(fitted, sim_data):
    X, y, groups, truth = sim_data
    est = fitted
    G, K = 12, 2
    assert isinstance(est.intercept_, float)
    assert est.coef_.shape == (K,)
    assert est.groups_.tolist() == list(range(G))
    assert est.group_intercept_.shape == (G,)
    assert est.group_coef_.shape == (G, K)
    assert est.group_coef_sd_.shape == (K,)
    assert est.intercept_interval_.shape == (2,)
    assert est.coef_interval_.shape == (K, 2)
    assert est.group_intercept_interval_.shape == (G, 2)
    assert est.group_coef_interval_.shape == (G, K, 2)
    assert est.n_features_in_ == K
    # intervals bracket the means
    assert est.intercept_interval_[0] < est.intercept_ < est.intercept_interval_[1]
    assert np.all(est.group_coef_interval_[..., 0] < est.group_coef_)
    # attributes are the posterior means of the stored draws
    assert est.intercept_ == pytest.approx(est.posterior_.intercept.mean())
    assert est.convergence_["n_divergences"] == 0
    assert est.convergence_["max_r_hat"] < 1.05
    assert est.engine_ == "collapsed"


def test_estimates_recover_truth(fitted, sim_data):
    _, _, _, truth = sim_data
    est = fitted
    assert abs(est.intercept_ - truth["intercept"]) < 0.5
    np.testing.assert_allclose(est.coef_, truth["coef"], atol=0.35)
    assert 0.8 < est.noise_sd_ < 1.2
    # group effects are estimated much better than by chance
    assert np.corrcoef(est.group_intercept_, truth["group_intercept"])[0, 1] > 0.7


def test_shrinkage_small_groups_move_toward_population():
    """A 2-row group is pulled toward mu_a much more than 50-row groups, by the
    amount partial pooling predicts: 1 - n sigma_a^2 / (n sigma_a^2 + eps^2)."""
    rng = np.random.default_rng(3)
    sizes = np.r_[np.full(12, 50), 2]
    groups = np.repeat(np.arange(13), sizes)
    a = 0.5 * rng.standard_normal(13)
    a[-1] = 1.5  # a small group with an extreme mean
    y = a[groups] + rng.normal(0, 1, len(groups))
    X = rng.normal(size=(len(groups), 1))
    est = fast_estimator(random_slopes=None, draws=500, tune=500).fit(X, y, groups=groups)
    raw = (pd.Series(y - X[:, 0] * est.coef_[0]).groupby(groups).mean()).to_numpy()
    pull = (raw - est.group_intercept_) / (raw - est.intercept_)
    sa2, e2 = est.group_intercept_sd_**2, est.noise_sd_**2
    expected = e2 / (sizes * sa2 + e2)
    assert pull[-1] > 0.25
    assert np.median(pull[:-1]) < 0.15
    np.testing.assert_allclose(pull, expected, atol=0.12)


def test_sleepstudy_raw_units_close_to_lme4(sleepstudy):
    est = fast_estimator(draws=400, tune=400).fit(
        sleepstudy[["Days"]], sleepstudy["Reaction"], groups=sleepstudy["Subject"]
    )
    assert est.intercept_ == pytest.approx(251.4, abs=7)
    assert est.coef_[0] == pytest.approx(10.47, abs=1.6)
    assert est.noise_sd_ == pytest.approx(25.6, abs=2.5)
    assert 15 < est.group_intercept_sd_ < 40
    assert 3 < est.group_coef_sd_[0] < 10


def test_predict_and_return_std(fitted, sim_data):
    X, y, groups, _ = sim_data
    mean = fitted.predict(X, groups=groups)
    mean2, std = fitted.predict(X, groups=groups, return_std=True)
    np.testing.assert_allclose(mean, mean2)
    assert mean.shape == std.shape == (len(y),)
    assert np.all(std > 0)
    # posterior mean prediction = group intercept + X @ group coefficients
    expected = fitted.group_intercept_[groups] + np.einsum(
        "ij,ij->i", X, fitted.group_coef_[groups]
    )
    np.testing.assert_allclose(mean, expected, rtol=1e-10)
    assert fitted.score(X, y, groups=groups) > 0.5


def test_unseen_groups_predict_from_population_with_wider_uncertainty(fitted, sim_data):
    X, _, groups, _ = sim_data
    with pytest.warns(UnseenGroupWarning, match="None of the 1 group label"):
        mean_new, std_new = fitted.predict(X[:5], groups=["new"] * 5, return_std=True)
    expected = fitted.intercept_ + X[:5] @ fitted.coef_
    np.testing.assert_allclose(mean_new, expected, rtol=1e-10)
    _, std_seen = fitted.predict(X[:5], groups=groups[:5], return_std=True)
    assert np.all(std_new > std_seen)
    np.testing.assert_allclose(fitted.predict(X[:5], groups=POPULATION), mean_new)


def test_missing_groups_is_an_error_that_explains(fitted, sim_data):
    X = sim_data[0]
    with pytest.raises(MissingGroupsError, match="groups=skhier.POPULATION"):
        fitted.predict(X)
    with pytest.raises(MissingGroupsError):
        fitted.score(X, sim_data[1])


def test_unseen_groups_raise_policy(sim_data):
    X, y, groups, _ = sim_data
    est = fast_estimator(unseen_groups="raise").fit(X, y, groups=groups)
    with pytest.raises(UnseenGroupError, match="999"):
        est.predict(X[:3], groups=[0, 999, 1])
    with pytest.raises(UnseenGroupError):
        est.predict_interval(X[:3], groups=[0, 999, 1])
    with pytest.raises(UnseenGroupError):
        est.sample_y(X[:3], groups=[0, 999, 1])
    assert est.predict(X[:3], groups=POPULATION).shape == (3,)  # explicit request wins


def test_predict_interval_covers_noise(fitted, sim_data):
    X, y, groups, _ = sim_data
    iv = fitted.predict_interval(X, groups=groups, prob=0.9)
    assert iv.shape == (len(y), 2)
    assert np.all(iv[:, 0] < iv[:, 1])
    coverage = np.mean((y >= iv[:, 0]) & (y <= iv[:, 1]))
    assert 0.82 < coverage < 0.97
    # width is about 2 * 1.645 * noise sd
    assert np.median(iv[:, 1] - iv[:, 0]) == pytest.approx(2 * 1.645 * fitted.noise_sd_, rel=0.2)
    np.testing.assert_array_equal(iv, fitted.predict_interval(X, groups=groups, prob=0.9))
    with pytest.raises(ValueError, match="prob"):
        fitted.predict_interval(X, groups=groups, prob=1.5)


def test_sample_y_shapes_and_shared_new_group_effect(fitted, sim_data):
    X, _, groups, _ = sim_data
    draws = fitted.sample_y(X[:4], groups=groups[:4], n_samples=7, random_state=0)
    assert draws.shape == (4, 7)
    np.testing.assert_array_equal(
        draws, fitted.sample_y(X[:4], groups=groups[:4], n_samples=7, random_state=0)
    )
    # two rows of one new group with identical X: their draws differ only by noise,
    # so they are strongly correlated across samples; rows of two new groups are not.
    x2 = np.zeros((4, 2))
    with pytest.warns(UnseenGroupWarning, match="3 group label"):
        d = fitted.sample_y(x2, groups=["n1", "n1", "n2", "n3"], n_samples=3000, random_state=1)
    same = np.corrcoef(d[0], d[1])[0, 1]
    other = np.corrcoef(d[2], d[3])[0, 1]
    sa2 = np.mean(fitted.posterior_.group_intercept_sd**2)
    eps2 = np.mean(fitted.posterior_.noise_sd**2)
    assert same == pytest.approx(sa2 / (sa2 + eps2), abs=0.08)
    assert abs(other) < 0.1


def test_label_types_and_order_do_not_change_results(sim_data):
    X, y, groups, _ = sim_data
    a = fast_estimator().fit(X, y, groups=groups)
    str_labels = np.array([f"g{g:02d}" for g in groups])
    b = fast_estimator().fit(X, y, groups=pd.Categorical(str_labels))
    np.testing.assert_allclose(a.group_intercept_, b.group_intercept_)
    perm = np.random.default_rng(0).permutation(len(y))
    c = fast_estimator().fit(X[perm], y[perm], groups=str_labels[perm])
    # row order only changes float rounding in the sufficient statistics
    assert_same_posterior(b, c, X, str_labels)
    assert list(c.groups_) == sorted(set(str_labels))


def test_mixed_type_labels(sim_data):
    X, y, groups, _ = sim_data
    labels = np.array([g if g % 2 else f"s{g}" for g in groups], dtype=object)
    est = fast_estimator().fit(X, y, groups=labels)
    assert len(est.groups_) == 12
    assert est.predict(X[:3], groups=labels[:3]).shape == (3,)


def test_same_random_state_same_posterior(sim_data):
    X, y, groups, _ = sim_data
    a = fast_estimator(random_state=42).fit(X, y, groups=groups)
    b = fast_estimator(random_state=42).fit(X, y, groups=groups)
    np.testing.assert_array_equal(a.posterior_.group_coef, b.posterior_.group_coef)
    c = fast_estimator(random_state=43).fit(X, y, groups=groups)
    assert not np.array_equal(a.posterior_.intercept, c.posterior_.intercept)


def test_random_slopes_options(sim_data):
    X, y, groups, _ = sim_data
    df = pd.DataFrame(X, columns=["u", "v"])
    none = fast_estimator(random_slopes=None).fit(df, y, groups=groups)
    assert np.all(none.group_coef_sd_ == 0)
    np.testing.assert_allclose(none.group_coef_, np.tile(none.coef_, (12, 1)))
    by_name = fast_estimator(random_slopes=["v"]).fit(df, y, groups=groups)
    by_index = fast_estimator(random_slopes=[1]).fit(df, y, groups=groups)
    assert by_name.group_coef_sd_[0] == 0 and by_name.group_coef_sd_[1] > 0
    np.testing.assert_allclose(by_name.group_coef_, by_index.group_coef_)
    with pytest.raises(ValueError, match="random_slopes"):
        fast_estimator(random_slopes=["w"]).fit(df, y, groups=groups)
    with pytest.raises(ValueError, match="out of range"):
        fast_estimator(random_slopes=[5]).fit(X, y, groups=groups)


def test_summary_table(fitted):
    table = fitted.summary()
    assert list(table.columns) == ["mean", "sd", "2.5%", "97.5%", "r_hat", "ess_bulk"]
    assert {"mu_a", "mu_b[x0]", "sigma_a", "sigma_b[x1]", "eps", "a[3]", "b[3, x1]"} <= set(
        table.index
    )
    # mu_a, mu_b, sigma_a, sigma_b, 3 correlations, eps, a, b
    assert len(table) == 1 + 2 + 1 + 2 + 3 + 1 + 12 + 24
    assert {"corr[intercept, x0]", "corr[intercept, x1]", "corr[x0, x1]"} <= set(table.index)
    assert table.loc["corr[x0, x1]", "mean"] == pytest.approx(fitted.group_corr_[2, 1])
    assert table.loc["mu_a", "mean"] == pytest.approx(fitted.intercept_)
    assert len(fitted.summary(group_level=False)) == 7 + 3
    idata = fitted.idata_
    assert idata.posterior["b"].dims == ("chain", "draw", "group", "feature")


def test_single_group_without_groups_is_bayesian_regression(sim_data):
    X, y, _, _ = sim_data
    est = fast_estimator().fit(X, y, groups=POPULATION)
    assert len(est.groups_) == 1
    assert est.predict(X[:3]).shape == (3,)


def test_two_groups_warn(sim_data):
    X, y, groups, _ = sim_data
    with pytest.warns(FewGroupsWarning, match="3 groups"):
        fast_estimator().fit(X, y, groups=groups % 2)


def test_group_col_dataframe_path(sim_data):
    X, y, groups, _ = sim_data
    df = pd.DataFrame(X, columns=["u", "v"]).assign(store=[f"s{g}" for g in groups])
    est = fast_estimator(group_col="store").fit(df, y)
    assert list(est.feature_names_in_) == ["u", "v"]
    ref = fast_estimator().fit(df[["u", "v"]], y, groups=df["store"])
    np.testing.assert_allclose(est.predict(df), ref.predict(df[["u", "v"]], groups=df["store"]))
    with pytest.raises(ValueError, match="group_col='shop'"):
        fast_estimator(group_col="shop").fit(df, y)
    with pytest.raises(TypeError, match="DataFrame"):
        fast_estimator(group_col="store").fit(X, y)
    with pytest.raises(ValueError, match="disagree"):
        fast_estimator(group_col="store").fit(df, y, groups=np.zeros(len(y)))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"X": "nan"}, "NaN"),
        ({"X": "inf"}, "infinity"),
        ({"y": "nan"}, "NaN"),
        ({"groups": "nan"}, "groups"),
        ({"groups": "short"}, "groups"),
        ({"y": "short"}, "inconsistent"),
    ],
)
def test_bad_input_errors_name_the_problem(sim_data, bad, match):
    X, y, groups, _ = sim_data
    X, y, groups = X.copy(), y.copy(), groups.astype(float)
    kind = next(iter(bad.values()))
    target = next(iter(bad))
    if kind == "nan":
        {"X": X, "y": y, "groups": groups}[target].flat[3] = np.nan
    elif kind == "inf":
        X[2, 0] = np.inf
    elif kind == "short" and target == "groups":
        groups = groups[:-1]
    else:
        y = y[:-1]
    with pytest.raises(ValueError, match=match):
        fast_estimator().fit(X, y, groups=groups)


def test_non_numeric_y_is_type_error(sim_data):
    X, _, groups, _ = sim_data
    with pytest.raises(TypeError, match="`y` must be numeric"):
        fast_estimator().fit(X, np.array(["a"] * len(X)), groups=groups)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        HierarchicalRegressor().predict(np.zeros((2, 1)))


def test_explicit_feature_mismatch_at_predict(fitted):
    with pytest.raises(ValueError, match="features"):
        fitted.predict(np.zeros((2, 3)), groups=[0, 1])


def test_public_api():
    assert set(skhier.__all__) == {
        "HierarchicalRegressor",
        "HierarchicalClassifier",
        "HierarchicalPoissonRegressor",
        "POPULATION",
        "make_group_scorer",
        "precompile",
    }
    assert repr(POPULATION) == "skhier.POPULATION"


def test_laplace_inference_is_close_to_nuts(fitted, sim_data):
    X, y, groups, _ = sim_data
    lap = HierarchicalRegressor(inference="laplace", random_state=0).fit(X, y, groups=groups)
    post, ref = lap.posterior_, fitted.posterior_
    for name in ("intercept", "coef", "noise_sd", "group_intercept"):
        diff = np.abs(post.mean(name) - ref.mean(name))
        assert np.all(diff < 0.5 * ref.flat(name).std(axis=0)), name
    assert lap.convergence_["n_divergences"] == 0
    with pytest.raises(ValueError, match="collapsed"):
        HierarchicalRegressor(inference="laplace", engine="explicit").fit(X, y, groups=groups)


def test_default_engine_does_not_use_pytensor(tmp_path):
    """PyTensor (and its BLAS warning) is only for engine='explicit'."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from skhier import HierarchicalRegressor; "
        "X = np.random.default_rng(0).normal(size=(40, 1)); g = np.arange(40) % 4; "
        "HierarchicalRegressor(draws=50, tune=50, chains=1).fit(X, X[:, 0], groups=g); "
        "print([m for m in ('pytensor', 'pymc') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
