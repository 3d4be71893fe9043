"""Simulation-based calibration and interval coverage of the models with several
grouping factors that the explicit PyMC engine fits: counts and Student-t noise
(two crossed factors).  Parameters are drawn from the estimator's own priors
(``standardize=False``, so the priors apply on the scale of the simulation) and the
data given them; the rank of each true value among 99 posterior draws must be
uniform (Talts et al. 2018), and the central 50% and 90% intervals must cover the
truth at those rates."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from skhier import HierarchicalPoissonRegressor, HierarchicalRegressor

pytestmark = pytest.mark.slow

N_REPS = 30
PRIORS = {"prior_intercept_sd": 1.0, "prior_coef_sd": 0.5, "prior_group_sd": 0.5}


def _nu(rng):
    """``nu ~ Gamma(2, rate=0.1)`` restricted to ``nu > 1`` (the estimator's prior)."""
    while True:
        nu = rng.gamma(2.0, 10.0)
        if nu > 1.0:
            return nu


def _replicate(rng, likelihood):
    n, n_a, n_b = 160, 10, 6
    a, b = rng.integers(0, n_a, n), rng.integers(0, n_b, n)
    theta = {
        "intercept": rng.normal(0, PRIORS["prior_intercept_sd"]),
        "slope": rng.normal(0, PRIORS["prior_coef_sd"]),
        "sd_a": rng.exponential(PRIORS["prior_group_sd"]),
        "sd_b": rng.exponential(PRIORS["prior_group_sd"]),
    }
    x = rng.normal(size=n)
    eta = theta["intercept"] + theta["slope"] * x
    eta = eta + rng.normal(0, theta["sd_a"], n_a)[a] + rng.normal(0, theta["sd_b"], n_b)[b]
    if likelihood == "poisson":
        y = rng.poisson(np.exp(eta))
        est = HierarchicalPoissonRegressor(**PRIORS)
    else:
        theta["noise_sd"], theta["noise_df"] = rng.exponential(1.0), _nu(rng)
        y = eta + theta["noise_sd"] * rng.standard_t(theta["noise_df"], n)
        est = HierarchicalRegressor(likelihood="student_t", prior_noise_sd=1.0, **PRIORS)
    est.set_params(nested=False, random_slopes=None, standardize=False, draws=300, tune=300,
                   chains=2)  # fmt: skip
    return x[:, None], y, pd.DataFrame({"a": a, "b": b}), theta, est


@pytest.fixture(scope="module", params=["poisson", "student_t"])
def ranks_and_coverage(request):
    likelihood = request.param
    rng = np.random.default_rng(31)
    ranks, covered = {}, {}
    for rep in range(N_REPS):
        X, y, groups, theta, est = _replicate(rng, likelihood)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short chains: calibration is the test
            est.set_params(random_state=rep).fit(X, y, groups=groups)
        assert est.engine_ == "explicit"
        post = est.posterior_
        draws = {
            "intercept": post.intercept.ravel(),
            "slope": post.coef[..., 0].ravel(),
            "sd_a": post.factors[0].sd[..., 0].ravel(),
            "sd_b": post.factors[1].sd[..., 0].ravel(),
        }
        if likelihood == "student_t":
            draws["noise_sd"], draws["noise_df"] = post.noise_sd.ravel(), post.noise_df.ravel()
        for name, d in draws.items():
            idx = np.linspace(0, len(d) - 1, 99).astype(int)
            ranks.setdefault(name, []).append(int(np.sum(d[idx] < theta[name])))
            for prob in (0.5, 0.9):
                lo, hi = np.quantile(d, [(1 - prob) / 2, (1 + prob) / 2])
                covered.setdefault((name, prob), []).append(lo <= theta[name] <= hi)
    return likelihood, ranks, covered


def test_sbc_ranks_are_uniform(ranks_and_coverage):
    likelihood, ranks, _ = ranks_and_coverage
    for name, r in ranks.items():
        counts = np.histogram(r, bins=6, range=(0, 100))[0]
        assert stats.chisquare(counts).pvalue > 0.001, (likelihood, name, counts)


def test_intervals_cover_at_their_level(ranks_and_coverage):
    likelihood, _, covered = ranks_and_coverage
    for (name, prob), hits in covered.items():
        se = np.sqrt(prob * (1 - prob) / len(hits))
        assert abs(np.mean(hits) - prob) < 4 * se, (likelihood, name, prob, np.mean(hits))
