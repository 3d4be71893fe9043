"""Binary outcomes: contraceptive use, and partial pooling against one-hot groups
==============================================================================

Contraceptive use across districts of Bangladesh, and partial pooling against
one-hot groups when groups are small.

1. Real data (mlmRev's ``Contraception``, 1988 Bangladesh Fertility Survey): 1,934
   women in 60 districts (2 to 118 each).  ``use ~ age + age^2 + urban + livch +
   (urban | district)`` with :class:`skhier.HierarchicalClassifier`: odds ratios
   with credible intervals, the district SDs, and the probability for a woman in a
   district with few respondents, shrunk toward the population.
2. Simulated small groups (300 groups of 2 to 12 rows): held-out log loss of the
   hierarchical model against ``LogisticRegression`` with one-hot groups (unpenalized,
   and with scikit-learn's default L2 penalty) and without groups, in KFold (groups
   seen in training) for three true group SDs, and in GroupKFold (every test group
   new).  Unpenalized one-hot groups overfit the small groups.  The default penalty
   is itself a shrinkage of every group toward the reference log-odds, with a fixed
   strength (a prior SD of 1 on each group's log-odds): it ties with the hierarchical
   model where the true group SD is near 1, and loses where it is not (0.3: too
   little shrinkage; 3: too much).  The hierarchical model learns the strength
   (sigma_a) from the data, and also gives intervals; where groups barely differ
   (0.3) it ties with the model without groups.  For new groups the
   population-averaged model without groups is the right target, and the
   hierarchical model's predictions, averaged over a new group's unknown effect, tie
   with it.

Run::

      python examples/binary_outcomes.py          (about two minutes)
      python examples/binary_outcomes.py --fast   (smoke test)
"""

import sys
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skhier import HierarchicalClassifier
from skhier.datasets import load_contraception


def contraception(settings):
    data = load_contraception()
    X = pd.get_dummies(data[["age", "urban", "livch"]], columns=["livch"], drop_first=True)
    X = X.astype(float).assign(age2=data["age"] ** 2)
    est = HierarchicalClassifier(random_slopes=["urban"], random_state=0, **settings)
    est.fit(X, data["use"], groups=data["district"])
    print("use ~ age + age^2 + urban + livch + (urban | district)")
    print(est.summary(group_level=False).round(3).to_string())
    lo, hi = np.exp(est.coef_interval_).T
    odds = pd.DataFrame({"odds ratio": np.exp(est.coef_), "low": lo, "high": hi}, index=X.columns)
    print("\nOdds ratios (95% credible intervals):")
    print(odds.round(2).to_string())
    sizes = data["district"].value_counts()
    small = sizes.idxmin()
    row = X.iloc[[0]].assign(urban=0.0)
    p = est.predict_proba(row, groups=[small])[0, 1]
    lo, hi = est.predict_proba_interval(row, groups=[small])[0]
    raw = data.loc[data["district"] == small, "use"].mean()
    print(
        f"\nDistrict {small} ({sizes[small]} women, raw rate of use {raw:.2f}): "
        f"P(use) for the first woman's profile, rural = {p:.2f} [{lo:.2f}, {hi:.2f}]"
    )
    return est


def simulated(group_sd=1.2, n_groups=300, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 13, n_groups)
    g = np.repeat(np.arange(n_groups), sizes)
    x = rng.normal(size=(len(g), 2))
    eta = -0.3 + group_sd * rng.normal(size=n_groups)[g] + x @ [0.7, -0.5]
    y = (rng.random(len(g)) < 1 / (1 + np.exp(-eta))).astype(int)
    X = pd.DataFrame(x, columns=["x1", "x2"]).assign(group=g)
    return X, y, g


def compare(settings, n_splits=5, group_sds=(0.3, 1.2, 3.0)):
    columns = [
        ("num", StandardScaler(), ["x1", "x2"]),
        ("grp", OneHotEncoder(handle_unknown="ignore"), ["group"]),
    ]
    onehot = make_pipeline(ColumnTransformer(columns), LogisticRegression(max_iter=2000))
    unpenalized = make_pipeline(
        ColumnTransformer(columns), LogisticRegression(C=1e6, max_iter=5000)
    )
    models = {
        "HierarchicalClassifier": HierarchicalClassifier(
            group_col="group", unseen_groups="population", random_state=0, **settings
        ),
        "LogisticRegression, one-hot groups, no penalty": unpenalized,
        "LogisticRegression, one-hot groups, default L2": onehot,
        "LogisticRegression, no groups": make_pipeline(
            ColumnTransformer([("num", StandardScaler(), ["x1", "x2"])]), LogisticRegression()
        ),
    }
    table = {}
    kfold = KFold(n_splits, shuffle=True, random_state=0)
    runs = [(f"KFold, sigma_a={sd}", sd, kfold) for sd in group_sds]
    runs.append((f"GroupKFold, sigma_a={group_sds[1]}", group_sds[1], GroupKFold(n_splits)))
    for split, sd, cv in runs:
        X, y, g = simulated(sd)
        for name, model in models.items():
            losses = []
            splits = cv.split(X, y, groups=g) if isinstance(cv, GroupKFold) else cv.split(X)
            for train, test in splits:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X.iloc[train], y[train])
                    losses.append(log_loss(y[test], model.predict_proba(X.iloc[test])[:, 1]))
            table.setdefault(split, {})[name] = np.mean(losses)
    print(
        f"\nHeld-out log loss, {len(np.unique(g))} groups of 2-12 rows, true group SD "
        "sigma_a on the log-odds scale; KFold: groups seen in training, GroupKFold: "
        "every test group new (lower is better):"
    )
    print(pd.DataFrame(table).round(4).to_string())
    return models["HierarchicalClassifier"]


def main(fast=False):
    settings = {"draws": 60, "tune": 60, "chains": 2} if fast else {}
    est = contraception(settings)
    compare(settings, n_splits=2 if fast else 5)
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
