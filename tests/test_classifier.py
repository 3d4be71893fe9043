"""HierarchicalClassifier: the API, quasi-separation, several factors, persistence."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import skhier
from skhier import POPULATION, HierarchicalClassifier, make_group_scorer
from skhier.exceptions import MissingGroupsError
from tests.conftest import predict_in_fresh_process

# tiny runs: convergence is checked in the slow tests
pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
FAST = {"draws": 300, "tune": 200, "chains": 2, "random_state": 0}


def binary_data(seed=0, n_groups=30, n_rows=1500, sd_a=0.8, sd_b=0.3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n_rows)
    X = rng.normal(size=(n_rows, 2))
    a = -0.5 + sd_a * rng.normal(size=n_groups)
    b = np.array([0.8, -0.4]) + sd_b * rng.normal(size=(n_groups, 2))
    eta = a[g] + np.einsum("ij,ij->i", X, b[g])
    y = np.where(rng.random(n_rows) < expit(eta), "yes", "no")
    return X, y, g, {"a": a, "b": b, "eta": eta}


@pytest.fixture(scope="module")
def fitted():
    X, y, g, truth = binary_data()
    est = HierarchicalClassifier(**FAST).fit(X, y, groups=g)
    return est, X, y, g, truth


def test_pg_draws_have_the_polya_gamma_moments():
    from skhier._engines.gibbs.pg import pg_fill

    rng = np.random.default_rng(3)
    n = 200_000
    for c in (0.0, 1.0, 4.0, -7.0):
        out = np.empty(n)
        pg_fill(rng, np.full(n, c), out, np.ones(n, dtype=np.int64))
        z = abs(c)
        mean = 0.25 if z == 0 else np.tanh(z / 2) / (2 * z)
        var = 1 / 24 if z == 0 else (np.sinh(z) - z) / (4 * z**3 * np.cosh(z / 2) ** 2)
        assert abs(out.mean() - mean) < 5 * np.sqrt(var / n)
        assert abs(out.var() / var - 1) < 0.03


def test_pg_draws_with_several_trials_have_the_polya_gamma_moments():
    """PG(b, c): mean b tanh(c/2) / (2c), variance b times PG(1, c)'s."""
    from skhier._engines.gibbs.pg import pg_fill

    rng = np.random.default_rng(5)
    n = 50_000
    for b, c in ((3, 1.5), (12, -0.4)):
        out = np.empty(n)
        pg_fill(rng, np.full(n, c), out, np.full(n, b, dtype=np.int64))
        z = abs(c)
        mean = b * np.tanh(z / 2) / (2 * z)
        var = b * (np.sinh(z) - z) / (4 * z**3 * np.cosh(z / 2) ** 2)
        assert abs(out.mean() - mean) < 5 * np.sqrt(var / n)
        assert abs(out.var() / var - 1) < 0.05


@pytest.mark.parametrize("c", [0.0, 2.5, -8.0, 50.0])
def test_pg_draws_follow_the_series_representation(c):
    """The whole distribution, against an independent construction: PG(1, c) is
    sum_k g_k / (2 pi^2 ((k - 1/2)^2 + c^2 / (4 pi^2))) with g_k ~ Exp(1),
    truncated at 3,000 terms (the rest adds its mean, < 2e-5).  Both proposal
    regimes (|c| / 2 below and above 1 / 0.64) and the large-|c| branch are covered."""
    from scipy.stats import ks_2samp

    from skhier._engines.gibbs.pg import pg_fill

    n, terms = 20_000, 3_000
    rng = np.random.default_rng(11)
    out = np.empty(n)
    pg_fill(rng, np.full(n, c), out, np.ones(n, dtype=np.int64))
    k = np.arange(1, terms + 1) - 0.5
    weights = 1.0 / (2 * np.pi**2 * (k**2 + c**2 / (4 * np.pi**2)))
    rest = np.sum(1.0 / (2 * np.pi**2 * ((np.arange(terms + 1, 10**6) - 0.5) ** 2)))
    ref = np.concatenate(
        [rng.standard_exponential((2_000, terms)) @ weights for _ in range(n // 2_000)]
    )
    ref += rest  # (c^2 / 4 pi^2 is negligible next to k^2 there)
    assert ks_2samp(out, ref).pvalue > 1e-3


def test_fit_recovers_the_population(fitted):
    est, X, y, g, truth = fitted
    assert list(est.classes_) == ["no", "yes"]
    assert est.engine_ == "gibbs"
    lo, hi = est.coef_interval_.T
    assert np.all((lo < [0.8, -0.4]) & ([0.8, -0.4] < hi))
    assert 0.4 < est.group_intercept_sd_ < 1.3
    assert est.convergence_["max_r_hat"] < 1.05
    assert not hasattr(est, "noise_sd_")
    rows = est.summary(group_level=False).index
    assert "eps" not in rows and "sigma_a" in rows and "mu_b[x1]" in rows


def test_predictions_are_consistent(fitted):
    est, X, y, g, truth = fitted
    proba = est.predict_proba(X, groups=g)
    assert proba.shape == (len(y), 2) and np.allclose(proba.sum(1), 1)
    p1 = proba[:, 1]
    assert np.corrcoef(p1, expit(truth["eta"]))[0, 1] > 0.9
    lo, hi = est.predict_proba_interval(X[:50], groups=g[:50], prob=0.9).T
    assert np.all((lo <= p1[:50]) & (p1[:50] <= hi))
    # decision_function ranks as predict_proba does; predict_linear is the mean log-odds
    assert np.array_equal(np.argsort(est.decision_function(X, groups=g)), np.argsort(p1))
    eta = est.predict_linear(X, groups=g)
    assert np.corrcoef(eta, truth["eta"])[0, 1] > 0.9
    assert np.all(est.predict(X, groups=g) == np.where(p1 > 0.5, "yes", "no"))
    draws = est.sample_y(X[:20], groups=g[:20], n_samples=500, random_state=1)
    assert set(np.unique(draws)) <= {"no", "yes"}
    assert np.allclose((draws == "yes").mean(1), p1[:20], atol=0.1)
    assert 0.6 < est.score(X, y, groups=g) <= 1


def test_unseen_and_missing_groups(fitted):
    est, X, y, g, truth = fitted
    with pytest.raises(MissingGroupsError):
        est.predict_proba(X[:5])
    pop = est.predict_proba(X[:5], groups=POPULATION)[:, 1]
    with pytest.warns(skhier.exceptions.UnseenGroupWarning):
        new = est.predict_proba(X[:5], groups=np.full(5, 999))[:, 1]
    assert np.allclose(pop, new)
    # a new group's probability is averaged over its unknown effect: pulled toward 1/2
    assert np.all(
        np.abs(pop - 0.5) < np.abs(expit(est.predict_linear(X[:5], groups=POPULATION)) - 0.5) + 1e-9
    )


def test_labels_of_any_type_and_binary_only():
    X, y, g, _ = binary_data(n_rows=400, n_groups=10)
    for labels in ([False, True], [3, 7]):
        yy = np.where(y == "yes", labels[1], labels[0])
        est = HierarchicalClassifier(draws=50, tune=50, chains=1).fit(X, yy, groups=g)
        assert list(est.classes_) == labels
        assert set(est.predict(X, groups=g)) <= set(labels)
    with pytest.raises(ValueError, match="Only binary classification is supported"):
        HierarchicalClassifier().fit(X, np.arange(len(y)) % 3, groups=g)
    with pytest.raises(ValueError, match="only one class"):
        HierarchicalClassifier().fit(X, np.zeros(len(y)), groups=g)
    with pytest.raises(ValueError, match="engine"):
        HierarchicalClassifier(engine="collapsed").fit(X, y, groups=g)


def test_quasi_separation_gives_finite_shrunk_estimates():
    """Groups with only 0s or only 1s, and a feature that separates one group
    perfectly: finite, shrunk estimates (an unpenalized fit diverges)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    n_groups, n_per = 20, 15
    g = np.repeat(np.arange(n_groups), n_per)
    x = rng.normal(size=len(g))
    p = expit(-0.3 + 0.5 * rng.normal(size=n_groups)[g] + 0.7 * x)
    y = (rng.random(len(g)) < p).astype(int)
    y[g == 0] = 0  # all failures
    y[g == 1] = 1  # all successes
    y[g == 2] = (x[g == 2] > 0).astype(int)  # x separates group 2 perfectly
    est = HierarchicalClassifier(**FAST).fit(x[:, None], y, groups=g)
    a = est.group_intercept_
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(est.group_coef_))
    # shrunk: group 0's probability lies above 0, below the population's
    p0 = est.predict_proba(np.zeros((1, 1)), groups=[0])[0, 1]
    p1 = est.predict_proba(np.zeros((1, 1)), groups=[1])[0, 1]
    pop = est.predict_proba(np.zeros((1, 1)), groups=POPULATION)[0, 1]
    assert 0.005 < p0 < pop < p1 < 0.995
    assert abs(a[0] - est.intercept_) < 4 and abs(a[1] - est.intercept_) < 4
    # no pooling diverges: one-hot groups without penalty give a huge intercept
    onehot = np.eye(n_groups)[g]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=1e8, max_iter=5000).fit(np.column_stack([onehot, x]), y)
    assert abs(lr.coef_[0, 1] - lr.coef_[0, 0]) > 2 * abs(a[1] - a[0])


def test_several_factors_and_the_explicit_engine_agree_roughly():
    rng = np.random.default_rng(2)
    n = 1200
    groups = pd.DataFrame({"store": rng.integers(0, 25, n), "week": rng.integers(0, 12, n)})
    x = rng.normal(size=(n, 1))
    eta = (
        -0.2
        + 0.6 * x[:, 0]
        + rng.normal(0, 0.8, 25)[groups["store"]]
        + rng.normal(0, 0.4, 12)[groups["week"]]
    )
    y = (rng.random(n) < expit(eta)).astype(int)
    est = HierarchicalClassifier(nested=False, random_slopes=None, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skhier.exceptions.ConvergenceWarning)
        est.fit(x, y, groups=groups)
    assert est.factors_ == ("store", "week")
    assert "sigma_a[week]" in est.summary(group_level=False).index
    proba = est.predict_proba(x[:10], groups=groups[:10])
    assert proba.shape == (10, 2)
    assert 0.3 < est.coef_[0] < 0.9
    idata = est.idata_
    assert "eps" not in idata.posterior and "u[store]" in idata.posterior


def test_group_aware_scorers_in_cross_validation():
    import sklearn
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_validate

    X, y, g, _ = binary_data(n_rows=600, n_groups=12)
    scorers = {
        "neg_log_loss": make_group_scorer(
            log_loss, greater_is_better=False, response_method="predict_proba"
        ),
        "roc_auc": make_group_scorer(roc_auc_score, response_method="predict_proba"),
    }
    est = HierarchicalClassifier(draws=100, tune=100, chains=2, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cross_validate(est, X, y, cv=GroupKFold(3), scoring=scorers, params={"groups": g})
    assert np.all(res["test_neg_log_loss"] < 0) and np.all(res["test_roc_auc"] > 0.6)


def test_pickle_and_a_fresh_process_predict_without_the_sampler(fitted, tmp_path):
    est, X, y, g, _ = fitted
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(est))
    loaded = pickle.loads(path.read_bytes())
    assert np.allclose(
        loaded.predict_proba(X[:5], groups=g[:5]), est.predict_proba(X[:5], groups=g[:5])
    )
    code = (
        "import pickle, sys, numpy as np\n"
        f"est = pickle.load(open({str(path)!r}, 'rb'))\n"
        f"pred = est.predict_proba(np.array({X[:3].tolist()}), groups={g[:3].tolist()})[:, 1]\n"
    )
    pred, heavy = predict_in_fresh_process(code)
    assert np.allclose(pred, est.predict_proba(X[:3], groups=g[:3])[:, 1])
    assert heavy == "[]"


def test_skops_round_trip_trusts_only_skhier_types(fitted, tmp_path):
    import skops.io as sio

    est, X, y, g, _ = fitted
    path = tmp_path / "clf.skops"
    sio.dump(est, path)
    trusted = [
        "skhier._classifier.HierarchicalClassifier",
        "skhier._posterior.one_factor.Posterior",
    ]
    assert sorted(sio.get_untrusted_types(file=path)) == trusted
    loaded = sio.load(path, trusted=trusted)
    np.testing.assert_array_equal(
        loaded.predict_proba(X[:20], groups=g[:20]), est.predict_proba(X[:20], groups=g[:20])
    )
    np.testing.assert_array_equal(loaded.classes_, est.classes_)


def test_scorer_rejects_an_unknown_response_method():
    from sklearn.metrics import log_loss

    with pytest.raises(ValueError, match="response_method"):
        make_group_scorer(log_loss, response_method="predict_log_proba")
