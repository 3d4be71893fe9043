"""Calibration: interval coverage and simulation-based calibration (SBC).

A larger version of both, with a printed report, is
``python benchmarks/validation_report.py``.
"""

import numpy as np
import pytest
from scipy import stats

from skhier import HierarchicalRegressor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning"),
]

SBC_PRIORS = {"prior_intercept_sd": 2.0, "prior_coef_sd": 1.0, "prior_group_sd": 1.0,
              "prior_noise_sd": 1.0}


def simulate_from_prior(rng, n_groups=8, n_per_group=6):
    """Draw parameters from skhier's prior (standardize=False) and data given them."""
    p = SBC_PRIORS
    theta = {
        "intercept": rng.normal(0, p["prior_intercept_sd"]),
        "coef": rng.normal(0, p["prior_coef_sd"]),
        "group_intercept_sd": rng.exponential(p["prior_group_sd"]),
        "group_coef_sd": rng.exponential(p["prior_group_sd"]),
        "noise_sd": rng.exponential(p["prior_noise_sd"]),
    }
    groups = np.repeat(np.arange(n_groups), n_per_group)
    X = rng.normal(size=(len(groups), 1))
    a = theta["intercept"] + theta["group_intercept_sd"] * rng.standard_normal(n_groups)
    b = theta["coef"] + theta["group_coef_sd"] * rng.standard_normal(n_groups)
    y = a[groups] + b[groups] * X[:, 0] + theta["noise_sd"] * rng.standard_normal(len(groups))
    theta["group_intercept"], theta["group_coef"] = a, b
    return X, y, groups, theta


def sbc_ranks(n_reps, seed, n_thin=99):
    rng = np.random.default_rng(seed)
    names = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd"]
    ranks = {n: [] for n in names}
    for r in range(n_reps):
        X, y, g, theta = simulate_from_prior(rng)
        est = HierarchicalRegressor(standardize=False, draws=500, tune=500, chains=2,
                                    random_state=r, **SBC_PRIORS).fit(X, y, groups=g)
        idx = np.linspace(0, est.posterior_.n_draws - 1, n_thin).astype(int)
        for n in names:
            draws = est.posterior_.flat(n)[idx].reshape(n_thin, -1)[:, 0]
            ranks[n].append(int(np.sum(draws < theta[n])))
    return {n: np.array(v) for n, v in ranks.items()}


def uniformity_pvalue(ranks, n_thin=99, n_bins=10):
    counts = np.histogram(ranks, bins=n_bins, range=(0, n_thin + 1))[0]
    return stats.chisquare(counts).pvalue


def test_sbc_population_parameters_are_uniform():
    ranks = sbc_ranks(n_reps=120, seed=2024)
    for name, r in ranks.items():
        p = uniformity_pvalue(r)
        assert p > 0.001, (name, p, np.histogram(r, bins=10, range=(0, 100))[0])


def coverage(n_reps, seed, probs=(0.5, 0.9)):
    """Fraction of true group effects / new observations inside the intervals."""
    rng = np.random.default_rng(seed)
    hits = {(k, p): [] for k in ("group_intercept", "group_coef", "prediction") for p in probs}
    for r in range(n_reps):
        X, y, g, theta = simulate_from_prior(rng, n_groups=10, n_per_group=8)
        est = HierarchicalRegressor(standardize=False, draws=500, tune=500, chains=2,
                                    random_state=r, **SBC_PRIORS).fit(X, y, groups=g)
        # fresh observations of the same groups
        g_new = np.arange(10)
        X_new = rng.normal(size=(10, 1))
        y_new = (theta["group_intercept"] + theta["group_coef"] * X_new[:, 0]
                 + theta["noise_sd"] * rng.standard_normal(10))
        for p in probs:
            iv_a = est.posterior_.interval("group_intercept", p)
            iv_b = est.posterior_.interval("group_coef", p)[:, 0]
            iv_y = est.predict_interval(X_new, groups=g_new, prob=p)
            for key, iv, truth in [("group_intercept", iv_a, theta["group_intercept"]),
                                   ("group_coef", iv_b, theta["group_coef"]),
                                   ("prediction", iv_y, y_new)]:
                hits[(key, p)].extend((iv[:, 0] <= truth) & (truth <= iv[:, 1]))
    return {k: (np.mean(v), len(v)) for k, v in hits.items()}


def test_interval_coverage_is_nominal():
    for (name, prob), (rate, n) in coverage(n_reps=40, seed=7).items():
        se = np.sqrt(prob * (1 - prob) / n)
        # draws within one replication share hyperparameters: allow for that correlation
        assert abs(rate - prob) < 4 * se, (name, prob, rate, n)
