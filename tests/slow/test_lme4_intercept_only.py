"""Intercept-only models (lme4's ``y ~ 1 + (1 | g)``) against lme4's fits of its own
data: one factor (Dyestuff, sleepstudy), two crossed (Penicillin), two nested
(Pastes).  Provenance and numbers: ``tests/data/lme4/README.md``.

lme4 reports REML point estimates; skhier reports posterior means under weakly
informative priors.  The fixed intercept must agree within half an lme4 SE, each SD
within 15% -- or, where the data identify an SD weakly (few levels), lme4's value
must lie inside skhier's 90% credible interval.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalRegressor
from skhier.datasets import load_sleepstudy

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data" / "lme4"


def _agree(est, lme4_intercept, lme4_se, sds, noise_sd):
    """sds: summary row name -> lme4's SD."""
    assert abs(est.intercept_ - lme4_intercept) < 0.5 * lme4_se
    table = est.summary()
    lo_col, hi_col = table.columns[2], table.columns[3]
    for name, ref in {**sds, "eps": noise_sd}.items():
        row = table.loc[name]
        close = abs(row["mean"] - ref) < 0.15 * ref
        inside = row[lo_col] < ref < row[hi_col]
        assert close or inside, (name, ref, row.to_dict())
    conv = est.convergence_
    if conv["method"] == "importance":  # nested Gaussian models: no chains
        assert conv["pareto_k"] < 0.7 and conv["min_ess_bulk"] > 400
    else:
        assert conv["max_r_hat"] < 1.01


def test_dyestuff_one_factor():
    d = pd.read_csv(DATA / "Dyestuff.csv")
    est = HierarchicalRegressor(interval_prob=0.9, random_state=0).fit(
        None, d["Yield"], groups=d["Batch"]
    )
    _agree(est, 1527.5, 19.383412, {"sigma_a": 42.000595}, 49.510100)


def test_sleepstudy_random_intercept():
    d = load_sleepstudy()
    est = HierarchicalRegressor(interval_prob=0.9, random_state=0).fit(
        None, d["Reaction"], groups=d["Subject"]
    )
    _agree(est, 298.507892, 9.049936, {"sigma_a": 35.753850}, 44.259069)


def test_penicillin_two_crossed_factors():
    d = pd.read_csv(DATA / "Penicillin.csv")
    est = HierarchicalRegressor(nested=False, interval_prob=0.9, random_state=0)
    est.fit(None, d["diameter"], groups=d[["plate", "sample"]])
    sds = {"sigma_a[plate]": 0.846703, "sigma_a[sample]": 1.931614}
    _agree(est, 22.972222, 0.808595, sds, 0.549923)


def test_pastes_nested_factors():
    d = pd.read_csv(DATA / "Pastes.csv")
    est = HierarchicalRegressor(nested=True, interval_prob=0.9, random_state=0)
    est.fit(None, d["strength"], groups=d[["batch", "cask"]])
    sds = {"sigma_a[batch]": 1.287366, "sigma_a[cask]": 2.904077}
    _agree(est, 60.053333, 0.676870, sds, 0.823408)
    assert np.isfinite(est.predict(None, groups=d[["batch", "cask"]].iloc[:2])).all()
