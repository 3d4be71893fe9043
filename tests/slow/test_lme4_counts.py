"""Counts with two crossed grouping factors against lme4's glmer on the same data
(provenance and numbers: ``tests/data/lme4/README.md``).  Fixed effects within half an
lme4 SE; SDs within 15% or lme4's value inside skhier's 90% interval."""

from pathlib import Path

import pandas as pd
import pytest

from skhier import HierarchicalPoissonRegressor

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data" / "lme4"


def test_crossed_poisson_agrees_with_glmer():
    d = pd.read_csv(DATA / "crossed_counts.csv")
    est = HierarchicalPoissonRegressor(
        nested=False, random_slopes=None, interval_prob=0.9, random_state=0
    ).fit(d[["x"]], d["y"], groups=d[["a", "b"]])
    assert abs(est.intercept_ - 0.568352) < 0.5 * 0.089432
    assert abs(est.coef_[0] - 0.304939) < 0.5 * 0.028389
    table = est.summary(group_level=False)
    lo, hi = table.columns[2], table.columns[3]
    for name, ref in {"sigma_a[a]": 0.280699, "sigma_a[b]": 0.213052}.items():
        row = table.loc[name]
        assert abs(row["mean"] - ref) < 0.15 * ref or row[lo] < ref < row[hi], (name, row)
    assert est.convergence_["max_r_hat"] < 1.01 and est.convergence_["n_divergences"] == 0
