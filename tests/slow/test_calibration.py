"""Calibration: interval coverage and simulation-based calibration (SBC).

A larger version of both, with a printed report, is
``python benchmarks/validation_report.py``.
"""

import numpy as np
import pytest

from benchmarks.calibration import coverage, sbc_ranks, uniformity_pvalue

pytestmark = pytest.mark.slow


# importance sampling (with its NUTS fallback when k_hat > 0.7) as inference="auto"
# runs it with many groups; calibrated here on few groups, its hardest case
CASES = [
    (False, "normal", "nuts"),
    (True, "normal", "nuts"),
    (True, "student_t", "nuts"),
    (True, "normal", "importance"),
]


@pytest.mark.parametrize(("correlated", "likelihood", "inference"), CASES)
def test_sbc_population_parameters_are_uniform(correlated, likelihood, inference):
    ranks = sbc_ranks(
        n_reps=120, seed=2024, correlated=correlated, likelihood=likelihood, inference=inference
    )
    for name, r in ranks.items():
        p = uniformity_pvalue(r)
        assert p > 0.001, (name, p, np.histogram(r, bins=10, range=(0, 100))[0])


@pytest.mark.parametrize(("correlated", "likelihood", "inference"), CASES)
def test_interval_coverage_is_nominal(correlated, likelihood, inference):
    results = coverage(
        n_reps=40, seed=7, correlated=correlated, likelihood=likelihood, inference=inference
    )
    for (name, prob), (rate, n) in results.items():
        se = np.sqrt(prob * (1 - prob) / n)
        # draws within one replication share hyperparameters: allow for that correlation
        assert abs(rate - prob) < 4 * se, (name, prob, rate, n)
