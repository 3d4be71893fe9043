"""Aggregated data: binomial trials and frequency weights
=======================================================

Data often arrive aggregated: successes out of trials per row (A/B tests,
dose-response, incidence in a herd), or one row per distinct combination with a
count of how many times it occurred.  skhier fits both without expanding the rows.

1. Binomial outcomes (lme4's ``glmer(cbind(successes, failures) ~ ...)``, brms'
   ``trials()``): lme4's ``cbpp`` data, new cases of bovine pleuropneumonia out of
   each herd's size in four periods, fit by
   ``HierarchicalClassifier().fit(X, successes, groups=herd, trials=size)`` and
   compared with lme4's estimates; then the same fit on one 0/1 row per animal (842
   rows instead of 56), which gives the same posterior, draw for draw.
2. Frequency weights (``sample_weight``): a row of weight ``w`` counts as ``w``
   identical rows.  Simulated counts with many repeated rows are collapsed to their
   distinct rows and fit with their multiplicities as weights: the same posterior
   within Monte Carlo error, in a fraction of the rows.

Run::

      python examples/aggregated_outcomes.py          (a few seconds)
      python examples/aggregated_outcomes.py --fast   (smoke test)
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor
from skhier.datasets import load_cbpp

#: lme4 1.1.31, glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
#: family = binomial) (Laplace): estimate, SE; and the herd SD
LME4 = {
    "intercept": (-1.398343, 0.231214),
    "period2": (-0.991925, 0.303151),
    "period3": (-1.128216, 0.322830),
    "period4": (-1.579745, 0.422049),
}
LME4_HERD_SD = 0.642070


def binomial_trials(settings) -> HierarchicalClassifier:
    data = load_cbpp()
    X = pd.get_dummies(data["period"].astype(str), prefix="period", drop_first=True)
    X = X.astype(float).rename(columns=lambda c: c.replace("_", ""))
    est = HierarchicalClassifier(random_slopes=None, random_state=0, **settings)
    est.fit(X, data["incidence"], groups=data["herd"], trials=data["size"])
    print(f"cbpp: {len(data)} rows, {int(data['size'].sum())} animals in 15 herds\n")
    print(f"{'':10s} {'skhier mean':>12s} {'95% interval':>18s} {'lme4':>8s} {'(SE)':>7s}")
    rows = [("intercept", est.intercept_, est.intercept_interval_)]
    rows += list(zip(X.columns, est.coef_, est.coef_interval_, strict=True))
    for name, mean, (lo, hi) in rows:
        ref, se = LME4[name]
        print(f"{name:10s} {mean:12.3f}   [{lo:6.3f}, {hi:6.3f}] {ref:8.3f} ({se:.3f})")
    sd = est.summary().loc["sigma_a"]
    print(f"{'herd SD':10s} {sd['mean']:12.3f}   [{sd.iloc[2]:6.3f}, {sd.iloc[3]:6.3f}] "
          f"{LME4_HERD_SD:8.3f}")  # fmt: skip

    # the same data as one 0/1 row per animal: the same model and posterior
    animals = np.repeat(np.arange(len(data)), data["size"])
    sick = np.concatenate(
        [np.arange(n) < k for k, n in zip(data["incidence"], data["size"], strict=True)]
    ).astype(int)
    expanded = HierarchicalClassifier(random_slopes=None, random_state=0, **settings)
    expanded.fit(X.iloc[animals], sick, groups=data["herd"].to_numpy()[animals])
    gap = np.max(np.abs(expanded.coef_ - est.coef_))
    print(f"\none row per animal ({len(sick)} rows): largest difference in coef_ {gap:.1e}")
    acc = est.score(X, data["incidence"], groups=data["herd"], trials=data["size"])
    print(f"accuracy over the 842 animals (score with trials): {acc:.3f}")
    return est


def frequency_weights(settings) -> HierarchicalPoissonRegressor:
    rng = np.random.default_rng(1)
    n, n_groups = 6000, 40
    frame = pd.DataFrame(
        {"g": rng.integers(0, n_groups, n), "treated": rng.integers(0, 2, n)}
    )
    effect = rng.normal(0.0, 0.4, n_groups)
    frame["y"] = rng.poisson(np.exp(0.3 + effect[frame["g"]] - 0.5 * frame["treated"]))
    distinct = frame.value_counts().rename("w").reset_index()  # one row per combination
    fits = {}
    for name, rows, weights in (("all rows", frame, None), ("distinct rows", distinct,
                                                             distinct["w"])):  # fmt: skip
        est = HierarchicalPoissonRegressor(random_slopes=None, random_state=0, **settings)
        fits[name] = est.fit(rows[["treated"]], rows["y"], groups=rows["g"], sample_weight=weights)
    print(f"\nSimulated counts: {n} rows, {len(distinct)} distinct (weights = multiplicities)")
    for name, est in fits.items():
        (lo, hi), sd = est.coef_interval_[0], est.summary().loc["sigma_a", "mean"]
        print(f"  {name:14s} treated {est.coef_[0]:.3f} [{lo:.3f}, {hi:.3f}], group SD {sd:.3f}")
    return fits["distinct rows"]


def main(fast: bool = False):
    settings = {"draws": 100, "tune": 100, "chains": 2} if fast else {}
    est = binomial_trials(settings)
    frequency_weights(settings)
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
