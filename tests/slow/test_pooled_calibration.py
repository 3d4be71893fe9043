"""Complete pooling is exact: simulation-based calibration of the pooled engine.

With ``standardize=False`` the priors act on the raw scale, so data sets can be
drawn from the prior itself: intercept ~ Normal(0, 10), slopes ~ Normal(0, 1.5),
noise SD ~ Exponential(mean 1).  Each true value's rank among its posterior draws
must then be uniform; the 50% and 90% central intervals must cover it that often.
"""

import numpy as np
import pytest

from skhier import POPULATION, HierarchicalRegressor

pytestmark = [
    pytest.mark.slow,
    # independent exact draws: a short run's r_hat can pass 1.01 by chance alone
    pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning"),
]


def test_pooled_gaussian_intervals_cover_at_their_level():
    rng = np.random.default_rng(0)
    n_sims, n, p = 200, 25, 2
    hits = {0.5: 0, 0.9: 0}
    ranks = []
    for sim in range(n_sims):
        beta = np.r_[rng.normal(0, 10.0), rng.normal(0, 1.5, size=p)]
        s = rng.exponential(1.0)
        X = rng.normal(size=(n, p))
        y = beta[0] + X @ beta[1:] + s * rng.normal(size=n)
        est = HierarchicalRegressor(standardize=False, draws=250, chains=4, random_state=sim)
        est.fit(X, y, groups=POPULATION)
        draws = np.column_stack([est.posterior_.flat("intercept"), est.posterior_.flat("coef"),
                                 est.posterior_.flat("noise_sd")])  # fmt: skip
        truth = np.r_[beta, s]
        ranks.append((draws < truth).mean(axis=0))
        for level in hits:
            lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
            hits[level] += ((lo < truth) & (truth < hi)).sum()
    total = n_sims * (p + 2)
    for level, count in hits.items():  # binomial SD of the rate: ~0.016 at 90%, 0.018 at 50%
        assert abs(count / total - level) < 0.05, (level, count / total)
    ranks = np.concatenate(ranks)
    counts = np.histogram(ranks, bins=10, range=(0, 1))[0]
    assert counts.min() > 0.6 * total / 10 and counts.max() < 1.4 * total / 10
