"""Counts: epileptic seizures, and partial pooling against one-hot groups
======================================================================

Seizure counts of 59 patients at four visits each, and partial pooling against
one-hot groups when groups are small.

1. Real data (MASS's ``epil``: Thall & Vail 1990, a randomized trial of
   progabide): ``y ~ lbase * trt + lage + V4 + (1 | subject)``, Poisson, with
   :class:`skhier.HierarchicalPoissonRegressor` (Breslow & Clayton's model): rate
   ratios with credible intervals and the patients' SD; then the negative binomial
   family, whose dispersion measures what over-dispersion is left once each patient
   has a rate of their own.
2. Simulated small groups (300 groups of 2 to 12 rows): held-out mean Poisson
   deviance of the hierarchical model against ``PoissonRegressor`` with one-hot
   groups and without groups, in KFold (groups mostly seen in training) and
   GroupKFold (every test group new).  One-hot groups: unpenalized, which overfits
   the small groups; with scikit-learn's default ``alpha=1``, a penalty on the
   *mean* deviance, so a prior SD of about ``1 / sqrt(n_rows)`` = 0.02 that shrinks
   every group almost to nothing (and the two slopes too); and with ``alpha = 1 /
   n_rows``, a prior SD of 1 on each group's log rate, the fixed-strength shrinkage
   ``LogisticRegression``'s default ``C=1`` gives.  The hierarchical model learns
   the strength (``sigma_a``) instead.  For new groups the hierarchical model
   predicts the rate averaged over a new group's unknown effect, and ties with the
   model without groups, the population-averaged model; a one-hot model falls back
   to its intercept, an arbitrary reference level when it is unpenalized.

Run::

      python examples/count_outcomes.py          (about a minute)
      python examples/count_outcomes.py --fast   (smoke test)
"""

import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import mean_poisson_deviance
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skhier import HierarchicalPoissonRegressor
from skhier.datasets import load_epilepsy


def epilepsy(settings):
    data = load_epilepsy()
    progabide = (data["trt"] == "progabide").astype(float)
    X = pd.DataFrame(
        {
            "lbase": data["lbase"],
            "progabide": progabide,
            "lbase:progabide": data["lbase"] * progabide,
            "lage": data["lage"],
            "V4": data["V4"].astype(float),
        }
    )
    print("y ~ lbase * trt + lage + V4 + (1 | subject), Poisson")
    est = HierarchicalPoissonRegressor(random_slopes=None, random_state=0, **settings)
    est.fit(X, data["y"], groups=data["subject"])
    print(est.summary(group_level=False).round(3).to_string())
    lo, hi = np.exp(est.coef_interval_).T
    ratios = pd.DataFrame({"rate ratio": np.exp(est.coef_), "low": lo, "high": hi}, index=X.columns)
    print("\nRate ratios (95% credible intervals):")
    print(ratios.round(2).to_string())

    nb = HierarchicalPoissonRegressor(
        family="negative_binomial", random_slopes=None, random_state=0, **settings
    ).fit(X, data["y"], groups=data["subject"])
    lo, hi = nb.dispersion_interval_
    print(
        f"\nNegative binomial: dispersion {nb.dispersion_:.3f} [{lo:.3f}, {hi:.3f}] "
        f"(variance mu + dispersion * mu^2); progabide's rate ratio at the mean log "
        f"baseline {np.exp(nb.coef_[1]):.2f} against {np.exp(est.coef_[1]):.2f} for Poisson; "
        f"patients' SD {nb.group_intercept_sd_:.2f} against {est.group_intercept_sd_:.2f}"
    )
    return est


def simulated(n_groups=300, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 13, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    x = rng.normal(size=(len(g), 2))
    log_mu = 0.5 + 0.8 * rng.normal(size=n_groups)[g] + x @ [0.4, -0.3]
    y = rng.poisson(np.exp(log_mu))
    X = pd.DataFrame(x, columns=["x1", "x2"]).assign(group=g)
    return X, y, g


def compare(settings, n_splits=5):
    X, y, g = simulated()
    numeric = ("num", StandardScaler(), ["x1", "x2"])
    columns = [numeric, ("grp", OneHotEncoder(handle_unknown="ignore"), ["group"])]
    models = {
        "HierarchicalPoissonRegressor": HierarchicalPoissonRegressor(
            random_slopes=None,
            group_col="group",
            unseen_groups="population",
            random_state=0,
            **settings,
        ),
        "PoissonRegressor, one-hot groups, no penalty": make_pipeline(
            ColumnTransformer(columns), PoissonRegressor(alpha=0.0, max_iter=1000)
        ),
        "PoissonRegressor, one-hot groups, default alpha=1": make_pipeline(
            ColumnTransformer(columns), PoissonRegressor()
        ),
        "PoissonRegressor, one-hot groups, alpha=1/n_rows": make_pipeline(
            ColumnTransformer(columns),
            PoissonRegressor(alpha=n_splits / ((n_splits - 1) * len(y)), max_iter=1000),
        ),
        "PoissonRegressor, no groups": make_pipeline(
            ColumnTransformer([numeric]), PoissonRegressor(alpha=0.0)
        ),
    }
    table = {}
    for split, cv in (("KFold (groups mostly seen)", KFold(n_splits, shuffle=True, random_state=0)),
                      ("GroupKFold (new groups)", GroupKFold(n_splits))):  # fmt: skip
        for name, model in models.items():
            losses = []
            splits = cv.split(X, y, groups=g) if isinstance(cv, GroupKFold) else cv.split(X)
            for train, test in splits:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X.iloc[train], y[train])
                    losses.append(mean_poisson_deviance(y[test], model.predict(X.iloc[test])))
            table.setdefault(split, {})[name] = np.mean(losses)
    print(
        f"\nHeld-out mean Poisson deviance, {len(np.unique(g))} groups of 2-12 rows "
        "(lower is better):"
    )
    print(pd.DataFrame(table).round(4).to_string())
    return table


def main(fast=False):
    settings = {"draws": 60, "tune": 60, "chains": 2} if fast else {}
    est = epilepsy(settings)
    compare(settings, n_splits=2 if fast else 5)
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
