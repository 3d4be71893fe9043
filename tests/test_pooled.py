"""Complete pooling (a fit without groups) is the regression with no group effects,
with the estimator's priors: exact for Gaussian noise, and agreeing with the
maximum-likelihood fits of scikit-learn and statsmodels where the priors are weak."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, PoissonRegressor

from skhier import (
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
)
from skhier.exceptions import NoGroupsWarning


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    eta = 0.3 + X @ np.array([0.8, -0.5])
    return X, eta, rng


def _ols(X, y):
    F = np.column_stack([np.ones(len(y)), X])
    beta, rss = np.linalg.lstsq(F, y, rcond=None)[:2]
    cov = rss[0] / (len(y) - F.shape[1]) * np.linalg.inv(F.T @ F)
    return beta, np.sqrt(np.diag(cov)), np.sqrt(rss[0] / (len(y) - F.shape[1]))


def test_gaussian_pooling_is_the_bayesian_linear_regression(data):
    X, eta, rng = data
    y = eta + rng.normal(scale=0.7, size=len(eta))
    est = HierarchicalRegressor(random_state=0).fit(X, y, groups=POPULATION)
    assert est.engine_ == "pooled" and est._inference["method"] == "exact"
    beta, se, sigma = _ols(X, y)
    # weak priors, 400 rows: the posterior is the OLS sampling distribution
    np.testing.assert_allclose(np.r_[est.intercept_, est.coef_], beta, atol=0.1 * se.max())
    sd = est.summary().loc[["mu_a", "mu_b[x0]", "mu_b[x1]"], "sd"].to_numpy()
    np.testing.assert_allclose(sd, se, rtol=0.08)
    assert est.noise_sd_ == pytest.approx(sigma, rel=0.03)
    assert est.convergence_["max_r_hat"] < 1.01 and est.convergence_["min_ess_bulk"] > 3000


def test_no_group_parameters_and_population_predictions(data):
    X, eta, rng = data
    y = eta + rng.normal(scale=0.7, size=len(eta))
    est = HierarchicalRegressor(random_state=0).fit(X, y, groups=POPULATION)
    rows = est.summary().index.tolist()
    assert rows == ["mu_a", "mu_b[x0]", "mu_b[x1]", "eps"]
    assert est.group_intercept_sd_ == 0 and np.all(est.group_coef_sd_ == 0)
    np.testing.assert_allclose(est.predict(X[:5]), est.intercept_ + X[:5] @ est.coef_)
    with pytest.warns(NoGroupsWarning):  # labels at predict are ignored, and said so
        est.predict(X[:5], groups=np.arange(5))
    with pytest.warns(NoGroupsWarning):  # groups=None is the same model, with a warning
        none = HierarchicalRegressor(random_state=0).fit(X, y)
    np.testing.assert_array_equal(none.posterior_.coef, est.posterior_.coef)


def test_a_named_group_engine_is_refused_without_groups(data):
    X, eta, rng = data
    with pytest.raises(ValueError, match="complete pooling"):
        HierarchicalRegressor(engine="explicit").fit(X, eta, groups=POPULATION)


def test_binary_pooling_agrees_with_logistic_regression(data):
    X, eta, rng = data
    y = (rng.random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(int)
    est = HierarchicalClassifier(random_state=0).fit(X, y, groups=POPULATION)
    assert est._inference["method"] == "gibbs"
    mle = LogisticRegression(C=np.inf).fit(X, y)
    np.testing.assert_allclose(est.coef_, mle.coef_[0], atol=0.05)
    assert est.intercept_ == pytest.approx(mle.intercept_[0], abs=0.05)
    assert est.convergence_["max_r_hat"] < 1.01


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_pooling_agrees_with_poisson_regression(data, family):
    X, eta, rng = data
    y = rng.poisson(np.exp(eta))
    est = HierarchicalPoissonRegressor(family=family, random_state=0)
    est.fit(X, y, groups=POPULATION)
    mle = PoissonRegressor(alpha=0.0).fit(X, y)
    np.testing.assert_allclose(est.coef_, mle.coef_, atol=0.05)
    assert est.convergence_["max_r_hat"] < 1.01
    assert est.convergence_["min_ess_bulk"] > 400
    if family == "negative_binomial":  # Poisson data: the dispersion shrinks toward 0
        assert est.dispersion_ < 0.1


def test_student_t_pooling_resists_outliers(data):
    X, eta, rng = data
    y = eta + rng.normal(scale=0.5, size=len(eta))
    y[:8] += 40.0  # gross errors
    est = HierarchicalRegressor(likelihood="student_t", random_state=0)
    est.fit(X, y, groups=POPULATION)
    np.testing.assert_allclose(est.coef_, [0.8, -0.5], atol=0.1)
    assert est.noise_df_ < 10
    assert est.convergence_["max_r_hat"] < 1.01
