"""skhier inside scikit-learn workflows: pipelines, CV, grid search, routing."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from conftest import fast_estimator
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    cross_val_predict,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

from skhier import make_group_scorer
from skhier.exceptions import MissingGroupsError

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n_groups, n_per = 10, 12
    groups = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(5.0, 3.0, size=(len(groups), 2))
    a = rng.normal(0, 2.0, n_groups)
    y = 1.0 + a[groups] + X @ np.array([0.5, -0.3]) + rng.normal(0, 0.5, len(groups))
    return X, y, groups


def test_clone_keeps_params_and_drops_fit(data):
    est = fast_estimator(prior_group_sd=0.5, random_slopes=[0])
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    X, y, g = data
    est.fit(X, y, groups=g)
    assert not hasattr(clone(est), "posterior_")


def test_pipeline_with_scaler_forwards_groups_without_routing(data):
    X, y, g = data
    pipe = make_pipeline(StandardScaler(), fast_estimator(random_slopes=None))
    pipe.fit(X, y, hierarchicalregressor__groups=g)
    pred = pipe.predict(X, groups=g)
    direct = fast_estimator(random_slopes=None).fit(X, y, groups=g)
    # A varying-intercept model does not depend on where X is centred or scaled
    # (up to Monte Carlo error: the chains see last-bit different numbers).
    _, sd = direct.predict(X, groups=g, return_std=True)
    assert np.all(np.abs(pred - direct.predict(X, groups=g)) < 0.4 * sd)


def test_scaling_features_leaves_random_slope_model_unchanged(data):
    X, y, g = data
    pipe = make_pipeline(MaxAbsScaler(), fast_estimator())
    pipe.fit(X, y, hierarchicalregressor__groups=g)
    direct = fast_estimator().fit(X, y, groups=g)
    _, sd = direct.predict(X, groups=g, return_std=True)
    assert np.all(np.abs(pipe.predict(X, groups=g) - direct.predict(X, groups=g)) < 0.4 * sd)
    # Centring X too leaves the (default) correlated model the same, up to the prior's
    # scale: tests/test_correlated.py.


def test_pipeline_and_cv_with_routing(routing, data):
    X, y, g = data
    pipe = make_pipeline(StandardScaler(), fast_estimator(random_slopes=None))
    pipe.fit(X, y, groups=g)
    assert pipe.score(X, y, groups=g) > 0.8
    # KFold: test groups were seen in training -> group-level predictions
    kfold = cross_val_score(
        pipe, X, y, cv=KFold(3, shuffle=True, random_state=0), params={"groups": g}
    )
    # GroupKFold: every test group is new -> population-level predictions, asked for
    pipe.set_params(hierarchicalregressor__unseen_groups="population")
    gkf = cross_val_score(pipe, X, y, cv=GroupKFold(3), params={"groups": g})
    assert np.all(kfold > 0.8)
    assert kfold.mean() > gkf.mean()


def test_group_scorer_in_cross_validate_and_grid_search(routing, data):
    X, y, g = data
    scorer = make_group_scorer(mean_absolute_error, greater_is_better=False)
    res = cross_validate(
        fast_estimator(),
        X,
        y,
        cv=KFold(3, shuffle=True, random_state=0),
        params={"groups": g},
        scoring=scorer,
    )
    assert np.all(res["test_score"] < 0) and np.all(res["test_score"] > -1.5)
    grid = GridSearchCV(
        fast_estimator(),
        {"random_slopes": [None, "all"], "prior_group_sd": [0.5, 1.0]},
        cv=KFold(3, shuffle=True, random_state=0),
        scoring=scorer,
    )
    grid.fit(X, y, groups=g)
    assert set(grid.best_params_) == {"random_slopes", "prior_group_sd"}
    assert grid.best_estimator_.predict(X, groups=g).shape == (len(y),)


def test_string_scorer_without_groups_fails_loudly(routing, data):
    X, y, g = data
    with pytest.raises(MissingGroupsError):
        cross_val_score(
            fast_estimator(),
            X,
            y,
            cv=KFold(2),
            params={"groups": g},
            scoring="r2",
            error_score="raise",
        )


def _group_col_pipeline():
    num = ["x0", "x1"]
    pre = ColumnTransformer(
        [("num", StandardScaler(), num), ("grp", "passthrough", ["store"])],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    return make_pipeline(pre, fast_estimator(group_col="store"))


@pytest.mark.parametrize("routing_on", [False, True])
def test_group_col_path_works_everywhere(data, routing_on):
    X, y, g = data
    df = pd.DataFrame(X, columns=["x0", "x1"]).assign(store=[f"s{i}" for i in g])
    with sklearn.config_context(enable_metadata_routing=routing_on):
        pipe = _group_col_pipeline()
        scores = cross_val_score(
            pipe, df, y, cv=KFold(3, shuffle=True, random_state=0), scoring="neg_mean_squared_error"
        )
        assert np.all(scores > -1.0)
        pred = cross_val_predict(pipe, df, y, cv=KFold(3, shuffle=True, random_state=0))
        assert np.corrcoef(pred, y)[0, 1] > 0.9
        grid = GridSearchCV(
            pipe,
            {"hierarchicalregressor__random_slopes": [None, "all"]},
            cv=KFold(2, shuffle=True, random_state=0),
            scoring="r2",
        )
        grid.fit(df, y)
        assert grid.best_score_ > 0.8
