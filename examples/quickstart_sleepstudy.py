"""Quickstart: partial pooling on the sleepstudy data.
===================================================

Fits ``Reaction ~ Days`` with a varying intercept and slope per subject on the
raw data (milliseconds, days), prints the posterior summary next to lme4's
published estimates, and shows how small-sample noise in each subject's own
least-squares line is shrunk toward the population.

Run::

      python examples/quickstart_sleepstudy.py          (a few seconds; the very first
                                                        run on a machine adds ~8 s
                                                        while numba compiles and
                                                        caches skhier's kernels)
      python examples/quickstart_sleepstudy.py --fast   (smoke test)
"""

import sys
import time

import numpy as np
import pandas as pd

from skhier import POPULATION, HierarchicalRegressor
from skhier.datasets import SLEEPSTUDY_LME4, load_sleepstudy


def main(fast=False):
    data = load_sleepstudy()
    X, y, subject = data[["Days"]], data["Reaction"], data["Subject"]

    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}
    est = HierarchicalRegressor(random_state=0, **settings)
    start = time.perf_counter()
    est.fit(X, y, groups=subject)
    print(
        f"Fitted {len(y)} rows, {len(est.groups_)} subjects in "
        f"{time.perf_counter() - start:.1f} s ({est.engine_} engine)"
    )
    conv = est.convergence_
    print(
        f"Convergence: max r_hat {conv['max_r_hat']:.3f}, min bulk ESS "
        f"{conv['min_ess_bulk']:.0f}, {conv['n_divergences']} divergences "
        f"({conv['n_chains']} chains x {conv['n_draws']} draws)\n"
    )

    table = est.summary(group_level=False)
    lme4 = SLEEPSTUDY_LME4
    table["lme4"] = [
        lme4["intercept"],
        lme4["coef"],
        lme4["group_intercept_sd"],
        lme4["group_coef_sd"],
        lme4["group_corr"],
        lme4["noise_sd"],
    ]
    print("Population level (posterior; lme4 REML for comparison):")
    print(table.round(2).to_string(), "\n")

    # No pooling: each subject's own least-squares line.
    own = {g: np.polyfit(d["Days"], d["Reaction"], 1) for g, d in data.groupby("Subject")}
    rows = []
    for i, g in enumerate(est.groups_):
        slope, intercept = own[g]
        rows.append(
            {
                "subject": g,
                "own intercept": intercept,
                "pooled intercept": est.group_intercept_[i],
                "own slope": slope,
                "pooled slope": est.group_coef_[i, 0],
            }
        )
    shrink = pd.DataFrame(rows).set_index("subject")
    extreme = (shrink["own slope"] - est.coef_[0]).abs().sort_values().index[-4:]
    print("Shrinkage toward the population (most extreme subjects):")
    print(shrink.loc[extreme].round(1).to_string())
    # Intercept and slope shrink *jointly*: a subject whose intercept is pulled down
    # needs a steeper line to still pass through its own late-day measurements, so
    # its slope can move away from the population slope while the line as a whole
    # moves toward the population line.
    away = shrink.index[
        (shrink["pooled slope"] - est.coef_[0]).abs() > (shrink["own slope"] - est.coef_[0]).abs()
    ]
    for g in away.intersection(extreme):
        r = shrink.loc[g]
        print(
            f"Subject {g}: the slope moves away from the population's {est.coef_[0]:.1f} "
            f"({r['own slope']:.1f} -> {r['pooled slope']:.1f}) because its intercept is "
            f"shrunk ({r['own intercept']:.1f} -> {r['pooled intercept']:.1f}) and the line "
            "must still fit its data: intercept and slope are pooled jointly."
        )
    print()

    new_day = pd.DataFrame({"Days": [0, 5, 9]})
    lo_hi = est.predict_interval(new_day, groups=[308, 308, 308], prob=0.9)
    print("Subject 308, 90% predictive intervals (ms) on days 0, 5, 9:")
    print(np.round(lo_hi, 1))
    mean, sd = est.predict(new_day, groups=POPULATION, return_std=True)
    print("A new subject (never seen; drawn from the population), expected reaction time:")
    for day, m, s in zip(new_day["Days"], mean, sd, strict=True):
        print(f"  day {day}: {m:.1f} ms +/- {s:.1f} (posterior SD of the mean, no noise)")
    iv = est.predict_interval(new_day, groups=POPULATION, prob=0.9)
    print("  90% predictive intervals, one new measurement each:", np.round(iv, 1).tolist())
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
