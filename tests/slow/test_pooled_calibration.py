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


@pytest.mark.parametrize("kind", ["bernoulli", "binomial", "poisson"])
def test_pooled_glm_intervals_cover_at_their_level(kind):
    """Binary outcomes (Pólya-Gamma Gibbs; with trials, PG(n, .)) and counts
    (independence Metropolis), drawn from the raw-scale priors as written: intercept
    and slopes ~ Normal(0, 2.5), features of SD 0.3 to keep the rates moderate.  The
    0/1 outcomes go through ``trials=1``: the same model, and it takes data sets with
    one outcome only (which a classifier's labels refuse)."""
    from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor

    rng = np.random.default_rng(1)
    n_sims, n, p = 150, 40, 2
    hits = {0.5: 0, 0.9: 0}
    ranks = []
    for sim in range(n_sims):
        beta = rng.normal(0, 2.5, size=p + 1)
        X = 0.3 * rng.normal(size=(n, p))
        eta = beta[0] + X @ beta[1:]
        kw = dict(standardize=False, draws=250, chains=4, random_state=sim)
        if kind == "poisson":
            y = rng.poisson(np.exp(eta))
            est = HierarchicalPoissonRegressor(**kw).fit(X, y, groups=POPULATION)
        else:
            trials = rng.integers(1, 6, n) if kind == "binomial" else np.ones(n, dtype=int)
            y = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
            est = HierarchicalClassifier(**kw).fit(X, y, groups=POPULATION, trials=trials)
        draws = np.column_stack([est.posterior_.flat("intercept"), est.posterior_.flat("coef")])
        ranks.append((draws < beta).mean(axis=0))
        for level in hits:
            lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
            hits[level] += ((lo < beta) & (beta < hi)).sum()
    total = n_sims * (p + 1)
    for level, count in hits.items():  # binomial SD of the rate: ~0.014 at 90%, 0.024 at 50%
        assert abs(count / total - level) < 0.06, (level, count / total)
    counts = np.histogram(np.concatenate(ranks), bins=10, range=(0, 1))[0]
    assert counts.min() > 0.5 * total / 10 and counts.max() < 1.5 * total / 10, counts
