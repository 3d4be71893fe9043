"""Radon: a county-level predictor and a correlated varying slope.
===============================================================

Two classic models of Gelman & Hill (2007, ch. 12-13), with their REML estimates
(reproduced with statsmodels MixedLM) for comparison:

1. ``log.radon ~ floor + uranium + (1 | county)``: ``uranium`` is measured per county,
   so it is constant within every county. skhier detects it (``group_level_features_``)
   and gives it a fixed slope only; it explains part of the between-county spread, so
   ``sigma_a`` drops, and a new county's prediction uses its own uranium level.
2. ``log.radon ~ floor + (floor | county)``: the floor effect varies by county, and
   county intercepts and floor slopes are correlated (the default).

The ``basement`` column is the floor of the measurement (0 = basement, 1 = first floor).

Run::

      python examples/radon_group_level.py          (a few seconds)
      python examples/radon_group_level.py --fast   (smoke test)
"""

import sys

import pandas as pd

from skhier import POPULATION, HierarchicalRegressor
from skhier.datasets import load_radon

REML_GROUP_LEVEL = {
    "intercept": 1.466,
    "floor": -0.669,
    "uranium": 0.719,
    "sigma_a": 0.16,
    "eps": 0.758,
}
REML_VARYING_SLOPE = {"sigma_a": 0.349, "sigma_b": 0.344, "corr": -0.337, "eps": 0.746}


def main(fast=False):
    radon = load_radon()
    y, county = radon["log.radon"], radon["county"]
    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}

    # 1. county-level predictor, varying intercepts only (random_slopes="all" would
    #    give floor a varying slope and leave uranium's fixed)
    est = HierarchicalRegressor(random_slopes=None, random_state=0, **settings)
    est.fit(radon[["basement", "uranium"]], y, groups=county)
    print("Group-level features found:", list(est.feature_names_in_[est.group_level_features_]))
    ours = {
        "intercept": est.intercept_,
        "floor": est.coef_[0],
        "uranium": est.coef_[1],
        "sigma_a": est.group_intercept_sd_,
        "eps": est.noise_sd_,
    }
    print("\n1. log.radon ~ floor + uranium + (1 | county)")
    print(pd.DataFrame({"skhier": ours, "REML (1 | county)": REML_GROUP_LEVEL}).round(3))
    new = pd.DataFrame({"basement": [0, 0], "uranium": [-0.5, 0.5]})
    pred = est.predict(new, groups=POPULATION)
    print(
        "A new county, basement measurement, uranium -0.5 vs 0.5: "
        f"{pred[0]:.2f} vs {pred[1]:.2f} (log radon)"
    )

    # 2. a varying floor slope, correlated with the county intercept
    slope = HierarchicalRegressor(random_state=0, **settings)
    slope.fit(radon[["basement"]], y, groups=county)
    ours = {
        "sigma_a": slope.group_intercept_sd_,
        "sigma_b": slope.group_coef_sd_[0],
        "corr": slope.group_corr_[1, 0],
        "eps": slope.noise_sd_,
    }
    print("\n2. log.radon ~ floor + (floor | county)")
    print(pd.DataFrame({"skhier": ours, "REML": REML_VARYING_SLOPE}).round(3))
    lo, hi = slope.group_corr_interval_[1, 0]
    print(f"95% interval of the correlation: [{lo:.2f}, {hi:.2f}]")
    return slope


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
