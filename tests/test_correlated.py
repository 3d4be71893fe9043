"""Correlated group effects (lme4's ``(x | g)``): recovery, predictions, pipelines."""

import numpy as np
import pytest
from conftest import fast_estimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhier import POPULATION
from skhier._posterior.predict import predictive_draws

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")


def _simulate(rng, n_groups=40, n_per=15, corr=-0.7):
    """Intercepts and slopes with a strong negative correlation, x far from 0."""
    groups = np.repeat(np.arange(n_groups), n_per)
    X = rng.uniform(0.0, 10.0, size=(len(groups), 1))
    cov = np.array([[4.0, corr * 2.0 * 0.5], [corr * 2.0 * 0.5, 0.25]])
    effects = rng.multivariate_normal([10.0, 1.0], cov, size=n_groups)
    y = effects[groups, 0] + effects[groups, 1] * X[:, 0] + rng.normal(0, 1.0, len(groups))
    return X, y, groups


@pytest.fixture(scope="module")
def data():
    return _simulate(np.random.default_rng(11))


@pytest.fixture(scope="module")
def correlated(data):
    X, y, g = data
    return fast_estimator(draws=500, tune=500).fit(X, y, groups=g)


def test_correlation_is_recovered_with_intervals(correlated):
    r = correlated.group_corr_[1, 0]
    lo, hi = correlated.group_corr_interval_[1, 0]
    assert -0.95 < r < -0.35
    assert lo < r < hi and lo < -0.7 < hi
    np.testing.assert_allclose(np.diag(correlated.group_corr_), 1.0)
    assert correlated.group_corr_[0, 1] == correlated.group_corr_[1, 0]
    assert correlated.summary(group_level=False).loc["corr[intercept, x0]", "mean"] == r


def test_independent_model_is_one_option_away(data):
    X, y, g = data
    est = fast_estimator(correlated_effects=False).fit(X, y, groups=g)
    np.testing.assert_array_equal(est.group_corr_, np.eye(2))
    assert not any(i.startswith("corr[") for i in est.summary().index)


def test_correlations_of_features_without_random_slope_are_undefined(data):
    X, y, g = data
    X2 = np.column_stack([X, np.random.default_rng(0).normal(size=len(y))])
    est = fast_estimator(random_slopes=[0]).fit(X2, y, groups=g)
    assert est.group_corr_.shape == (3, 3)
    assert np.isnan(est.group_corr_[2, :]).all() and np.isnan(est.group_corr_[:, 2]).all()
    assert np.isfinite(est.group_corr_[:2, :2]).all()


def test_new_group_uncertainty_includes_the_covariance(correlated):
    """return_std of a new group (law of total variance with E[Sigma]) equals the
    spread of posterior predictive draws of its mean."""
    X = np.array([[0.0], [5.0], [10.0]])
    mean, std = correlated.predict(X, groups=POPULATION, return_std=True)
    post = correlated.posterior_
    rng = np.random.default_rng(0)
    draw_idx = rng.integers(0, post.n_draws, 60_000)
    new = np.zeros(3, dtype=np.intp)
    draws = predictive_draws(post, X, new, new, draw_idx, rng, noise=False)
    np.testing.assert_allclose(draws.mean(1), mean, atol=4 * std.max() / np.sqrt(60_000) * 3)
    np.testing.assert_allclose(draws.std(1), std, rtol=0.02)
    # the negative correlation makes a new group's line less uncertain at x = 10
    # than independent effects with the same SDs would
    sd_a, sd_b = correlated.group_intercept_sd_, correlated.group_coef_sd_[0]
    assert std[2] ** 2 < sd_a**2 + 100 * sd_b**2


def test_centring_features_describes_the_same_model(data):
    """With a full covariance, StandardScaler only reparametrizes the group effects:
    predictions agree up to Monte Carlo error and the prior's change of scale."""
    X, y, g = data
    direct = fast_estimator(draws=500, tune=500).fit(X, y, groups=g)
    pipe = make_pipeline(StandardScaler(), fast_estimator(draws=500, tune=500))
    pipe.fit(X, y, hierarchicalregressor__groups=g)
    mean, sd = direct.predict(X, groups=g, return_std=True)
    gap = np.abs(pipe.predict(X, groups=g) - mean) / sd
    # measured: median 0.012, max 0.055 posterior SDs (independent effects, which
    # change meaning when X is centred: median 0.10, max 0.49)
    assert np.median(gap) < 0.05
    assert np.max(gap) < 0.25
