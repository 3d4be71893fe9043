"""Validation report: agreement with references, interval coverage and SBC.

Usage::

    python benchmarks/validation_report.py            # ~5 minutes on 2 cores
    python benchmarks/validation_report.py --reps 400 # tighter Monte Carlo error

Prints, for each check, the measured value next to its target.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from calibration import coverage, sbc_ranks, uniformity_pvalue

from skhier import HierarchicalRegressor
from skhier.datasets import SLEEPSTUDY_LME4, load_radon, load_sleepstudy


def sleepstudy_vs_lme4():
    d = load_sleepstudy()
    est = HierarchicalRegressor(random_state=0).fit(d[["Days"]], d["Reaction"], groups=d["Subject"])
    post, ref = est.posterior_, SLEEPSTUDY_LME4
    rows = []
    for attr, key, col in [
        ("intercept", "intercept", None),
        ("coef", "coef", 0),
        ("group_intercept_sd", "group_intercept_sd", None),
        ("group_coef_sd", "group_coef_sd", 0),
        ("noise_sd", "noise_sd", None),
    ]:
        draws = post.flat(attr) if col is None else post.flat(attr)[:, col]
        rows.append(
            {
                "parameter": attr,
                "skhier mean": draws.mean(),
                "skhier sd": draws.std(),
                "lme4": ref[key],
                "|diff| / sd": abs(draws.mean() - ref[key]) / draws.std(),
            }
        )
    ranef = ref["ranef"].loc[est.groups_]
    da = est.group_intercept_ - ref["intercept"] - ranef["intercept"]
    db = est.group_coef_[:, 0] - ref["coef"] - ranef["Days"]
    print("== sleepstudy vs lme4 (target: |diff| / sd < 1)")
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(
        f"per-subject deviations vs lme4 conditional modes: max |diff| intercept "
        f"{np.abs(da).max():.2f} ms, slope {np.abs(db).max():.3f} ms/day\n"
    )


def radon_vs_mixedlm():
    r = load_radon().rename(columns={"log.radon": "log_radon"})
    fit = smf.mixedlm("log_radon ~ basement", r, groups="county").fit(reml=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = HierarchicalRegressor(random_slopes=None, random_state=0).fit(
            r[["basement"]], r["log_radon"], groups=r["county"]
        )
    ours = [est.intercept_, est.coef_[0], est.group_intercept_sd_, est.noise_sd_]
    theirs = [
        fit.fe_params.iloc[0],
        fit.fe_params.iloc[1],
        np.sqrt(fit.cov_re.iloc[0, 0]),
        np.sqrt(fit.scale),
    ]
    se = [fit.bse_fe.iloc[0], fit.bse_fe.iloc[1], np.nan, np.nan]
    table = pd.DataFrame(
        {"skhier": ours, "MixedLM": theirs, "MixedLM SE": se},
        index=["intercept", "basement", "sigma_a", "eps"],
    )
    table["diff / SE"] = (table["skhier"] - table["MixedLM"]) / table["MixedLM SE"]
    table["rel diff"] = (table["skhier"] - table["MixedLM"]) / table["MixedLM"]
    pred = est.predict(r[["basement"]], groups=r["county"])
    print("== radon vs statsmodels MixedLM (targets: fixed |diff/SE| < 0.5, SDs within 15%)")
    print(table.round(4).to_string())
    print(f"per-row predictions: max |diff| {np.abs(pred - fit.fittedvalues).max():.4f}\n")


def lme4_fixtures():
    """statsmodels' lme4 fixtures (see tests/slow/test_lme4_fixtures.py)."""
    import importlib
    from pathlib import Path

    r = importlib.import_module("statsmodels.regression.tests.results.lme_r_results")
    rows = []
    for ds in range(12):
        data = pd.read_csv(Path(r.__file__).parent / f"lme{ds:02d}.csv")
        fe = [c for c in data.columns if c.startswith("exog_fe")]
        re = [c for c in data.columns if c.startswith("exog_re")][1:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = HierarchicalRegressor(random_slopes=re or None, random_state=ds).fit(
                data[fe + re], data["endog"], groups=data["groups"]
            )
        kind = "irf" if re else "drf"
        coef = getattr(r, f"coef_reml_{kind}_{ds}")
        se = np.sqrt(np.diag(getattr(r, f"vcov_reml_{kind}_{ds}")))
        sd_re = np.sqrt(np.diag(getattr(r, f"cov_re_reml_{kind}_{ds}")))
        noise = np.sqrt(getattr(r, f"scale_reml_{kind}_{ds}")[0])
        ours_sd = np.r_[est.group_intercept_sd_, est.group_coef_sd_[len(fe) :]]
        rows.append(
            {
                "data set": ds,
                "max |coef diff| / SE": np.max(np.abs(est.coef_[: len(fe)] - coef) / se),
                "noise SD rel diff": est.noise_sd_ / noise - 1,
                "lme4 group SDs": np.round(sd_re, 3).tolist(),
                "skhier group SDs": np.round(ours_sd, 3).tolist(),
            }
        )
    print("== statsmodels' lme4 fixtures (REML; targets: coef < 0.5 SE, noise within 15%)")
    print(pd.DataFrame(rows).round(3).to_string(index=False), "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    sleepstudy_vs_lme4()
    radon_vs_mixedlm()
    lme4_fixtures()

    print(f"== interval coverage ({args.reps} simulated data sets, truth from the prior)")
    rows = []
    for (name, prob), (rate, n) in coverage(n_reps=args.reps, seed=11).items():
        se = np.sqrt(prob * (1 - prob) / n)
        rows.append(
            {"quantity": name, "nominal": prob, "coverage": rate, "n": n, "z": (rate - prob) / se}
        )
    print(pd.DataFrame(rows).round(3).to_string(index=False), "\n")

    print(f"== simulation-based calibration ({args.reps} replications, 99 draws each)")
    ranks = sbc_ranks(n_reps=args.reps, seed=2025)
    rows = []
    for name, r in ranks.items():
        counts = np.histogram(r, bins=10, range=(0, 100))[0]
        rows.append(
            {
                "parameter": name,
                "chi2 p-value": uniformity_pvalue(r),
                "rank histogram (10 bins)": " ".join(map(str, counts)),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
