"""Radon: a county model inside scikit-learn pipelines and cross-validation.
=========================================================================

Two recipes for getting each test fold's groups to the model:

1. metadata routing (``sklearn.set_config(enable_metadata_routing=True)``):
   pass ``params={"groups": county}`` and score with the estimator's own
   ``score`` or a :func:`skhier.make_group_scorer` scorer;
2. the group labels as a column of a pandas ``X`` (``group_col``): works with
   routing off, any string scorer and ``cross_val_predict``.

KFold tests predictions for counties seen in training (partial pooling);
GroupKFold holds whole counties out, so it tests predictions for new counties
(population level) only. Test folds contain counties the fold's model never saw (all
of them under GroupKFold, the smallest ones under KFold), so the estimators are built
with ``unseen_groups="population"``: new groups are expected here, and the default
("warn") would report them in every fold.

The ``basement`` column is the floor of the measurement (0 = basement, 1 = first
floor), so its effect is negative.

Run::

      python examples/radon_pipeline_cv.py          (about 30 s)
      python examples/radon_pipeline_cv.py --fast   (smoke test)
"""

import sys

import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import GroupKFold, KFold, cross_val_score, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhier import HierarchicalRegressor, make_group_scorer
from skhier.datasets import load_radon


def main(fast=False):
    radon = load_radon()
    y = radon["log.radon"]
    settings = {"draws": 150, "tune": 150, "chains": 2} if fast else {"chains": 2}
    settings["unseen_groups"] = "population"  # CV test folds hold new counties
    kfold = KFold(5, shuffle=True, random_state=0)
    group_kfold = GroupKFold(5)

    # Recipe 1: metadata routing.
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(
            StandardScaler(), HierarchicalRegressor(random_slopes=None, random_state=0, **settings)
        )
        X, county = radon[["basement"]], radon["county"]
        seen = cross_val_score(pipe, X, y, cv=kfold, params={"groups": county})
        new = cross_val_score(pipe, X, y, cv=group_kfold, params={"groups": county})
        mae = cross_validate(
            pipe,
            X,
            y,
            cv=kfold,
            params={"groups": county},
            scoring=make_group_scorer(mean_absolute_error, greater_is_better=False),
        )["test_score"]
    print(f"R^2, counties seen in training (KFold):    {seen.mean():.3f} +/- {seen.std():.3f}")
    print(f"R^2, new counties (GroupKFold):           {new.mean():.3f} +/- {new.std():.3f}")
    print(f"MAE, seen counties (group-aware scorer):  {-mae.mean():.3f}")

    # Recipe 2: the county as a column of X (no routing needed, any scorer).
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["basement"]), ("grp", "passthrough", ["county"])],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = make_pipeline(
        pre,
        HierarchicalRegressor(random_slopes=None, group_col="county", random_state=0, **settings),
    )
    mse = cross_val_score(
        pipe, radon[["basement", "county"]], y, cv=kfold, scoring="neg_mean_squared_error"
    )
    print(f"MSE, seen counties (group_col recipe):    {-mse.mean():.3f}")

    est = pipe.fit(radon[["basement", "county"]], y)[-1]
    print(
        f"\nBetween-county SD sigma_a = {est.group_intercept_sd_:.3f}, "
        f"noise SD eps = {est.noise_sd_:.3f}, effect of `basement` (0 = basement, "
        f"1 = first floor) = {est.coef_[0]:.3f} (per SD of the standardized feature)"
    )
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
