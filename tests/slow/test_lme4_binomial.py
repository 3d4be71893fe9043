"""Binomial outcomes with trials against lme4's glmer on its own ``cbpp`` data
(provenance and numbers: ``skhier/data/README.md``).  Fixed effects within half an
lme4 SE; the herd SD within 15% or lme4's value inside skhier's 90% interval; and
simulation-based coverage of the aggregated model."""

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalClassifier
from skhier.datasets import load_cbpp

pytestmark = [
    pytest.mark.slow,
    # a short run's ESS can fall below 400: the agreement and the coverage are tested
    pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning"),
]

#: lme4 1.1.31: glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
#: family = binomial): estimate and SE
GLMER = {
    "intercept": (-1.398343, 0.231214),
    "period2": (-0.991925, 0.303151),
    "period3": (-1.128216, 0.322830),
    "period4": (-1.579745, 0.422049),
}
HERD_SD = 0.642070


@pytest.mark.parametrize("engine", ["auto", "nuts"])
def test_cbpp_with_trials_agrees_with_glmer(engine):
    data = load_cbpp()
    X = pd.get_dummies(data["period"].astype(str), drop_first=True).astype(float)
    est = HierarchicalClassifier(
        random_slopes=None, interval_prob=0.9, random_state=0, engine=engine
    ).fit(X, data["incidence"], groups=data["herd"], trials=data["size"])
    got = [est.intercept_, *est.coef_]
    for value, (ref, se) in zip(got, GLMER.values(), strict=True):
        assert abs(value - ref) < 0.5 * se, (value, ref)
    row = est.summary(group_level=False).loc["sigma_a"]
    assert abs(row["mean"] - HERD_SD) < 0.15 * HERD_SD or row.iloc[2] < HERD_SD < row.iloc[3]
    assert est.convergence_["max_r_hat"] < 1.01


def test_binomial_trials_cover_the_truth():
    """Simulated binomial data from known parameters (20 groups, 1 to 30 trials per row):
    the 90% intervals of the slope and the group SD cover the truth in about 90% of
    data sets (binomial 95% band over 40 data sets)."""
    rng = np.random.default_rng(12)
    hits = {"slope": 0, "sd": 0}
    n_sets = 40
    for _ in range(n_sets):
        n, n_groups = 100, 20
        codes = rng.integers(0, n_groups, n)
        x = rng.normal(size=(n, 1))
        sd, slope = rng.uniform(0.3, 1.0), rng.normal(0, 0.7)
        eta = -0.3 + rng.normal(0, sd, n_groups)[codes] + slope * x[:, 0]
        trials = rng.integers(1, 31, n)
        successes = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
        est = HierarchicalClassifier(
            random_slopes=None, interval_prob=0.9, draws=500, tune=300, random_state=0
        ).fit(x, successes, groups=codes, trials=trials)
        lo, hi = est.coef_interval_[0]
        hits["slope"] += lo < slope < hi
        row = est.summary(group_level=False).loc["sigma_a"]
        hits["sd"] += row.iloc[2] < sd < row.iloc[3]
    for name, k in hits.items():
        assert 31 <= k <= 40, (name, k)  # binomial(40, 0.9): 95% in [32, 39]
