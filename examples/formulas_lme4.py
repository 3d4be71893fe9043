"""Formulas: lme4's models, written as lme4 writes them.
======================================================

Each estimator takes ``formula=``: the random-effect terms in lme4's syntax
(``(x | g)``, ``(x || g)``, ``(1 | a/b)``), the fixed part in formulaic's (categoricals,
interactions, transformations). ``fit(data)`` then reads the target, the features and
the groups from one DataFrame, and the prediction methods encode new data the same
way. This example fits seven models from the bundled data sets, crossed (InstEval) and
nested (egsingle) factors, binary and count outcomes among them, and prints skhier's
posterior means next to lme4's estimates (lme4 1.1-31: REML, or Laplace for glmer).

Run::

      python examples/formulas_lme4.py          (about two minutes: InstEval has 73,421 rows)
      python examples/formulas_lme4.py --fast   (smoke test)
"""

import sys
import time

import pandas as pd

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor, HierarchicalRegressor
from skhier.datasets import (
    load_contraception,
    load_egsingle,
    load_epilepsy,
    load_insteval,
    load_radon,
    load_sleepstudy,
)

#: lme4 1.1-31's estimates of the same models (lmer: REML; glmer: Laplace), by the names
#: of skhier's summary() rows; computed once with R and recorded here
LME4 = {
    "Reaction ~ Days + (Days | Subject)": {
        "mu_a": 251.405, "mu_b[Days]": 10.467, "sigma_a": 24.741, "sigma_b[Days]": 5.922,
        "eps": 25.592},
    "Reaction ~ 1 + (1 | Subject)": {"mu_a": 298.508, "sigma_a": 35.754, "eps": 44.259},
    "`log.radon` ~ basement + uranium + (1 | county)": {
        "mu_a": 1.466, "mu_b[basement]": -0.668, "mu_b[uranium]": 0.720, "sigma_a": 0.156,
        "eps": 0.758},
    "math ~ year + (year | schoolid/childid)": {
        "mu_a": -0.779, "mu_b[year]": 0.763, "sigma_a[schoolid]": 0.411,
        "sigma_b[schoolid, year]": 0.106, "sigma_a[childid]": 0.800,
        "sigma_b[childid, year]": 0.106, "eps": 0.549},
    "y ~ service + (1 | s) + (1 | d) + (1 | dept)": {
        "mu_a": 3.283, "mu_b[service]": -0.093, "sigma_a[s]": 0.326, "sigma_a[d]": 0.515,
        "sigma_a[dept]": 0.083, "eps": 1.177},
    "use ~ age + C(urban) + (1 | district)": {
        "mu_a": -0.703, "mu_b[age]": 0.009, "mu_b[C(urban)[T.1]]": 0.653, "sigma_a": 0.438},
    "y ~ lbase * trt + lage + V4 + (1 | subject)": {
        "mu_a": 1.833, "mu_b[lbase]": 0.883, "mu_b[trt[T.progabide]]": -0.334,
        "mu_b[lage]": 0.481, "mu_b[V4]": -0.160, "mu_b[lbase:trt[T.progabide]]": 0.339,
        "sigma_a": 0.501},
}  # fmt: skip


def main(fast=False):
    settings = {"draws": 100, "tune": 100, "chains": 2} if fast else {}
    sleep = load_sleepstudy()
    egsingle = load_egsingle()
    if fast:  # a few schools: the smoke test's model, not the data's
        egsingle = egsingle[egsingle["schoolid"].isin(egsingle["schoolid"].unique()[:6])]
    insteval = load_insteval()
    if fast:  # a sample of the ratings: the smoke test's model, not the data's
        egsingle = egsingle[egsingle["schoolid"].isin(egsingle["schoolid"].unique()[:6])]
        insteval = insteval.sample(3000, random_state=0)
    models = [
        (HierarchicalRegressor, "Reaction ~ Days + (Days | Subject)", sleep),
        (HierarchicalRegressor, "Reaction ~ 1 + (1 | Subject)", sleep),
        (HierarchicalRegressor, "`log.radon` ~ basement + uranium + (1 | county)", load_radon()),
        (HierarchicalRegressor, "math ~ year + (year | schoolid/childid)", egsingle),
        (HierarchicalRegressor, "y ~ service + (1 | s) + (1 | d) + (1 | dept)", insteval),
        (HierarchicalClassifier, "use ~ age + C(urban) + (1 | district)", load_contraception()),
        (HierarchicalPoissonRegressor, "y ~ lbase * trt + lage + V4 + (1 | subject)",
         load_epilepsy()),
    ]  # fmt: skip
    fitted = []
    for cls, formula, data in models:
        est = cls(formula=formula, random_state=0, **settings)
        start = time.perf_counter()
        est.fit(data)
        rows = est.summary(group_level=False)
        table = pd.DataFrame({"skhier": rows["mean"], "lme4": pd.Series(LME4[formula])})
        print(f"\n{cls.__name__}(formula={formula!r})  [{time.perf_counter() - start:.1f} s]")
        print(table.dropna().round(3).to_string())
        fitted.append(est)
    # new data are encoded as at fit: the formula's columns, nothing else
    print("\npredict(sleep.head(3)):", fitted[0].predict(sleep.head(3)).round(1))
    return fitted[0]


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
