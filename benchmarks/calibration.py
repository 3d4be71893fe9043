"""Simulation-based calibration and coverage studies (used by the slow tests in
``tests/slow/test_calibration.py`` and by ``benchmarks/validation_report.py``)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from skhier import HierarchicalRegressor

SBC_PRIORS = {
    "prior_intercept_sd": 2.0,
    "prior_coef_sd": 1.0,
    "prior_group_sd": 1.0,
    "prior_noise_sd": 1.0,
    "prior_corr_eta": 2.0,
}


def _prior_nu(rng):
    """``nu ~ Gamma(2, rate=0.1)`` restricted to ``nu > 1`` (by rejection)."""
    while True:
        nu = rng.gamma(2.0, 10.0)
        if nu > 1.0:
            return nu


def simulate_from_prior(rng, n_groups=8, n_per_group=6, correlated=False, likelihood="normal"):
    """Draw parameters from skhier's prior (standardize=False) and data given them.

    With two group effects the LKJ(eta) prior makes the correlation
    ``2 * Beta(eta, eta) - 1``.  ``likelihood="student_t"`` also draws ``nu``.
    """
    p = SBC_PRIORS
    eta = p["prior_corr_eta"]
    theta = {
        "intercept": rng.normal(0, p["prior_intercept_sd"]),
        "coef": rng.normal(0, p["prior_coef_sd"]),
        "group_intercept_sd": rng.exponential(p["prior_group_sd"]),
        "group_coef_sd": rng.exponential(p["prior_group_sd"]),
        "noise_sd": rng.exponential(p["prior_noise_sd"]),
        "group_corr": 2.0 * rng.beta(eta, eta) - 1.0 if correlated else 0.0,
    }
    groups = np.repeat(np.arange(n_groups), n_per_group)
    X = rng.normal(size=(len(groups), 1))
    r = theta["group_corr"]
    e = rng.standard_normal((2, n_groups))
    a = theta["intercept"] + theta["group_intercept_sd"] * e[0]
    b = theta["coef"] + theta["group_coef_sd"] * (r * e[0] + np.sqrt(1 - r**2) * e[1])
    theta["noise_df"] = _prior_nu(rng) if likelihood == "student_t" else np.inf
    y = a[groups] + b[groups] * X[:, 0] + theta["noise_sd"] * _noise(rng, theta, len(groups))
    theta["group_intercept"], theta["group_coef"] = a, b
    return X, y, groups, theta


def _noise(rng, theta, n):
    nu = theta["noise_df"]
    return rng.standard_normal(n) if np.isinf(nu) else rng.standard_t(nu, n)


def sbc_ranks(n_reps, seed, n_thin=99, correlated=False, likelihood="normal", inference="nuts"):
    """SBC rank of each true population parameter among ``n_thin`` posterior draws."""
    rng = np.random.default_rng(seed)
    names = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd"]
    names += ["group_corr"] if correlated else []
    names += ["noise_df"] if likelihood == "student_t" else []
    ranks = {n: [] for n in names}
    for r in range(n_reps):
        X, y, g, theta = simulate_from_prior(rng, correlated=correlated, likelihood=likelihood)
        est = _fit(X, y, g, r, correlated, likelihood, inference)
        idx = np.linspace(0, est.posterior_.n_draws - 1, n_thin).astype(int)
        for n in names:
            flat = est.posterior_.flat(n)[idx]
            draws = flat[:, 1, 0] if n == "group_corr" else flat.reshape(n_thin, -1)[:, 0]
            ranks[n].append(int(np.sum(draws < theta[n])))
    return {n: np.array(v) for n, v in ranks.items()}


def uniformity_pvalue(ranks, n_thin=99, n_bins=10):
    counts = np.histogram(ranks, bins=n_bins, range=(0, n_thin + 1))[0]
    return stats.chisquare(counts).pvalue


def coverage(
    n_reps, seed, probs=(0.5, 0.9), correlated=False, likelihood="normal", inference="nuts"
):
    """Fraction of true group effects / new observations inside the intervals."""
    rng = np.random.default_rng(seed)
    hits = {(k, p): [] for k in ("group_intercept", "group_coef", "prediction") for p in probs}
    for r in range(n_reps):
        X, y, g, theta = simulate_from_prior(
            rng, n_groups=10, n_per_group=8, correlated=correlated, likelihood=likelihood
        )
        est = _fit(X, y, g, r, correlated, likelihood, inference)
        # fresh observations of the same groups
        g_new = np.arange(10)
        X_new = rng.normal(size=(10, 1))
        y_new = (
            theta["group_intercept"]
            + theta["group_coef"] * X_new[:, 0]
            + theta["noise_sd"] * _noise(rng, theta, 10)
        )
        for p in probs:
            iv_a = est.posterior_.interval("group_intercept", p)
            iv_b = est.posterior_.interval("group_coef", p)[:, 0]
            iv_y = est.predict_interval(X_new, groups=g_new, prob=p)
            for key, iv, truth in [
                ("group_intercept", iv_a, theta["group_intercept"]),
                ("group_coef", iv_b, theta["group_coef"]),
                ("prediction", iv_y, y_new),
            ]:
                hits[(key, p)].extend((iv[:, 0] <= truth) & (truth <= iv[:, 1]))
    return {k: (np.mean(v), len(v)) for k, v in hits.items()}


def _fit(X, y, groups, seed, correlated=False, likelihood="normal", inference="nuts"):
    est = HierarchicalRegressor(
        likelihood=likelihood,
        inference=inference,
        correlated_effects=correlated,
        standardize=False,
        draws=500,
        tune=500,
        chains=2,
        random_state=seed,
        **SBC_PRIORS,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, groups=groups)
