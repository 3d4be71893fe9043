"""Robust regression: Student-t noise keeps a few bad readings from dragging the fit.
==================================================================================

sleepstudy (Belenky et al. 2003; lme4's example): reaction times of 18 subjects over
10 days of sleep deprivation, ``Reaction ~ Days + (Days | Subject)``. Three readings
of one subject are corrupted as a data-entry slip would: recorded in tenths of a
millisecond (10x too large) on its last three days. The Gaussian model lets them
pull that subject's slope and inflate the noise SD; the Student-t model learns heavy
tails (small ``nu``) and stays close to the fit on the clean data.

Run::

      python examples/robust_student_t.py          (about 20 s)
      python examples/robust_student_t.py --fast   (smoke test)
"""

import sys

import pandas as pd

from skhier import HierarchicalRegressor
from skhier.datasets import load_sleepstudy


def main(fast=False):
    data = load_sleepstudy()
    X, y, subject = data[["Days"]], data["Reaction"].to_numpy().copy(), data["Subject"]
    bad = (subject == subject.iloc[0]).to_numpy() & (data["Days"] >= 7).to_numpy()
    y_bad = y.copy()
    y_bad[bad] *= 10.0
    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}
    first = subject.iloc[0]

    rows = {}
    for label, target, likelihood in [
        ("Gaussian, clean data", y, "normal"),
        ("Gaussian, 3 bad readings", y_bad, "normal"),
        ("Student-t, 3 bad readings", y_bad, "student_t"),
    ]:
        # nu near 1 (very heavy tails): whether a reading counts as an outlier is
        # itself uncertain, so the t model's draws are more autocorrelated; 2000
        # draws per chain keep every r_hat below 1.01
        draws = {"draws": 2000} if likelihood == "student_t" else {}
        est = HierarchicalRegressor(likelihood=likelihood, random_state=0, **{**draws, **settings})
        est.fit(X, target, groups=subject)
        slope = est.group_coef_[list(est.groups_).index(first), 0]
        rows[label] = {
            "mu_b[Days]": est.coef_[0],
            f"b[{first}, Days]": slope,
            "eps": est.noise_sd_,
            "nu": est.noise_df_,
        }
    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 120):
        print(pd.DataFrame(rows).T)
    print("\nnu: Student-t degrees of freedom (inf = Gaussian).")
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
