"""The quiet paths a new user walks into: each gives a clear warning or error.

Every test here failed (returned a plausible, wrong answer in silence) before the
checks existed; the correct paths next to them must stay silent.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from conftest import fast_estimator
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skhier import POPULATION, HierarchicalRegressor
from skhier.datasets import load_radon
from skhier.exceptions import (
    BinaryTargetWarning,
    ConvergenceWarning,
    GroupIdFeatureWarning,
    IdentifiabilityWarning,
    NoGroupsWarning,
    UnseenGroupError,
    UnseenGroupWarning,
)

# Tiny sampler settings: convergence warnings are not what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
TINY = {"draws": 60, "tune": 60, "chains": 1, "random_state": 0}


def quiet_fit(est, *args, **kwargs):
    """Fit with every warning an error, except the sampler's (tiny settings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.fixture(scope="module")
def radon():
    return load_radon()


@pytest.fixture(scope="module")
def by_name(radon):
    """Varying intercepts by county name (strings)."""
    est = HierarchicalRegressor(random_slopes=None, **TINY)
    return quiet_fit(est, radon[["basement"]], radon["log.radon"], groups=radon["county.name"])


@pytest.fixture(scope="module")
def by_id(radon):
    """Varying intercepts by county id (integers)."""
    est = HierarchicalRegressor(random_slopes=None, **TINY)
    return quiet_fit(est, radon[["basement"]], radon["log.radon"], groups=radon["county"])


# 1. Groups lost on the way in ------------------------------------------------------
def test_fit_without_groups_warns_what_it_fitted_and_how_to_pass_groups(radon):
    X, y = radon[["basement"]], radon["log.radon"]
    with pytest.warns(NoGroupsWarning) as record:
        HierarchicalRegressor(**TINY).fit(X, y)
    message = str(record[0].message)
    for needed in (
        "complete pooling",
        "enable_metadata_routing",
        "hierarchicalregressor__groups=",
        "group_col=",
        "groups=skhier.POPULATION",
    ):
        assert needed in message


def test_cross_val_score_with_routing_off_warns_that_groups_reach_the_splitter_only(radon):
    X, y, g = radon[["basement"]], radon["log.radon"], radon["county"]
    with sklearn.config_context(enable_metadata_routing=False):
        with pytest.warns(NoGroupsWarning, match="reaches the CV splitter only"):
            cross_val_score(HierarchicalRegressor(**TINY), X, y, groups=g, cv=GroupKFold(2))


def test_one_group_on_purpose_is_silent_and_predicts_without_groups(radon):
    X, y = radon[["basement"]], radon["log.radon"]
    est = quiet_fit(HierarchicalRegressor(**TINY), X, y, groups=POPULATION)
    assert len(est.groups_) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pooled = est.predict(X)
    # labels given to a model without groups are ignored, with a warning
    with pytest.warns(NoGroupsWarning, match="ignored"):
        np.testing.assert_array_equal(est.predict(X, groups=radon["county"]), pooled)


def test_pipeline_step_groups_with_routing_off_is_silent(radon):
    X, y, g = radon[["basement"]], radon["log.radon"], radon["county"]
    pipe = make_pipeline(StandardScaler(), HierarchicalRegressor(random_slopes=None, **TINY))
    quiet_fit(pipe, X, y, hierarchicalregressor__groups=g)


# 2. Labels that do not match ---------------------------------------------------------
def test_typo_in_a_label_warns_with_count_and_suggestion(by_name, radon):
    X = radon[["basement"]]
    groups = radon["county.name"].replace({"ST LOUIS": "St Louis"})
    with pytest.warns(UnseenGroupWarning) as record:
        by_name.predict(X, groups=groups)
    message = str(record[0].message)
    n_rows = int((groups == "St Louis").sum())
    assert f"{n_rows} of {len(X)} rows" in message
    assert "'St Louis' -> 'ST LOUIS'" in message
    assert "np.str_" not in message  # the labels as the user wrote them
    typo = radon["county.name"].replace({"ANOKA": "ANQKA"})  # one letter off
    with pytest.warns(UnseenGroupWarning, match="'ANQKA' -> 'ANOKA'"):
        by_name.predict(X, groups=typo)


def test_a_two_valued_string_target_points_to_the_classifier():
    rng = np.random.default_rng(0)
    X, g = rng.normal(size=(40, 1)), np.arange(40) % 4
    y = np.where(rng.uniform(size=40) < 0.5, "yes", "no")
    with pytest.raises(TypeError, match="two values .*HierarchicalClassifier"):
        HierarchicalRegressor(**TINY).fit(X, y, groups=g)
    with pytest.raises(TypeError, match="Encode the target as numbers.$"):
        HierarchicalRegressor(**TINY).fit(X, np.array(["a", "b", "c", "d"] * 10), groups=g)


def test_ids_where_the_model_was_fit_on_names_warns_that_nothing_matches(by_name, radon):
    with pytest.warns(UnseenGroupWarning, match="None of the 85 group label") as record:
        by_name.predict(radon[["basement"]], groups=radon["county"])
    assert "of type integer" in str(record[0].message)
    assert "of type string" in str(record[0].message)


@pytest.mark.parametrize("policy", ["warn", "population", "raise"])
def test_numeric_strings_for_integer_labels_raise_under_every_policy(by_id, radon, policy):
    est = copy.deepcopy(by_id).set_params(unseen_groups=policy)
    X = radon[["basement"]][:3]
    with pytest.raises(TypeError, match=r"astype\(int\)"):
        est.predict(X, groups=["1", "2", "3"])
    with pytest.raises(TypeError, match=r"astype\(int\)"):
        est.sample_y(X, groups=np.array(["1", "1", "2"], dtype=object))


def test_integers_for_numeric_string_labels_raise(radon):
    est = HierarchicalRegressor(random_slopes=None, **TINY)
    groups = radon["county"].astype(str)
    quiet_fit(est, radon[["basement"]], radon["log.radon"], groups=groups)
    with pytest.raises(TypeError, match=r"astype\(str\)"):
        est.predict(radon[["basement"]][:2], groups=[1, 2])


def test_new_groups_asked_for_are_silent(by_id, radon):
    X = radon[["basement"]][:4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_id.predict(X, groups=POPULATION)
        by_id.predict(X, groups=radon["county"][:4])  # all seen
        copy.deepcopy(by_id).set_params(unseen_groups="population").predict(
            X, groups=[1, 2, 999, 1000]
        )
    with pytest.raises(UnseenGroupError, match="999"):
        copy.deepcopy(by_id).set_params(unseen_groups="raise").predict(X, groups=[1, 2, 999, 1])


# 3. The group id left in X -----------------------------------------------------------
def test_integer_group_id_in_features_warns(radon):
    y, g = radon["log.radon"], radon["county"]
    with pytest.warns(GroupIdFeatureWarning, match="'county'"):
        HierarchicalRegressor(random_slopes=None, **TINY).fit(
            radon[["basement", "county"]], y, groups=g
        )
    # a 0-based code of string labels is an id too
    X = radon[["basement"]].assign(code=pd.factorize(radon["county.name"])[0])
    with pytest.warns(GroupIdFeatureWarning, match="'code'"):
        HierarchicalRegressor(random_slopes=None, **TINY).fit(X, y, groups=radon["county.name"])


def test_continuous_group_level_predictor_without_random_slope_is_silent(radon):
    X = radon[["basement", "uranium"]]
    est = HierarchicalRegressor(random_slopes=["basement"], **TINY)
    quiet_fit(est, X, radon["log.radon"], groups=radon["county"])


@pytest.mark.parametrize("where", ["fit", "predict"])
def test_string_id_column_error_names_group_col(by_id, radon, where):
    with pytest.raises(ValueError, match=r"group_col='(county.name|basement)'") as info:
        if where == "fit":
            X = radon[["basement", "county.name"]]
            HierarchicalRegressor(**TINY).fit(X, radon["log.radon"], groups=radon["county"])
        else:  # the model's one feature is named like the string column
            X = radon[["county.name"]].set_axis(["basement"], axis=1)
            by_id.set_params(group_col=None).predict(X, groups=radon["county"])
    assert "AITKIN" in str(info.value)


def test_string_values_in_numpy_x_error_names_group_col(radon):
    X = radon[["basement", "county.name"]].to_numpy()
    with pytest.raises(ValueError, match="group_col"):
        HierarchicalRegressor(**TINY).fit(X, radon["log.radon"], groups=radon["county"])


# 4. The wrong model for the target ----------------------------------------------------
@pytest.mark.parametrize("cast", [float, bool])
def test_binary_target_warns(radon, cast):
    y = radon["basement"].astype(cast)
    with pytest.warns(BinaryTargetWarning, match="two distinct values"):
        HierarchicalRegressor(random_slopes=None, **TINY).fit(
            radon[["uranium"]], y, groups=radon["county"]
        )


def test_three_valued_target_is_silent(radon):
    y = radon["basement"] + (radon["uranium"] > 0)
    quiet_fit(
        HierarchicalRegressor(random_slopes=None, **TINY),
        radon[["basement"]],
        y,
        groups=radon["county"],
    )


# 5. Designs the data cannot identify -------------------------------------------------
def test_every_group_with_one_row_explains_the_ridge():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 1)), rng.normal(size=40)
    with pytest.warns(IdentifiabilityWarning, match="cannot be told apart"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            HierarchicalRegressor(**TINY).fit(X, y, groups=np.arange(40))


def test_group_level_feature_given_a_random_slope_warns(radon):
    X, y, g = radon[["basement", "uranium"]], radon["log.radon"], radon["county"]
    est = HierarchicalRegressor(random_slopes=["basement", "uranium"], **TINY)
    with pytest.warns(IdentifiabilityWarning, match="'uranium'") as record:
        est.fit(X, y, groups=g)
    assert "random_slopes=['basement']" in str(record[0].message)


def test_default_random_slopes_leave_group_level_predictors_fixed(radon):
    """log.radon ~ basement + uranium + (basement | county): uranium is detected as
    county-level, gets a fixed slope only, and informs predictions for new counties."""
    X, y, g = radon[["basement", "uranium"]], radon["log.radon"], radon["county"]
    est = quiet_fit(HierarchicalRegressor(**TINY), X, y, groups=g)
    np.testing.assert_array_equal(est.group_level_features_, [False, True])
    np.testing.assert_array_equal(est.random_slope_mask_, [True, False])
    assert est.group_coef_sd_[1] == 0
    assert est.coef_[1] > 0.3  # uranium raises radon (Gelman & Hill: 0.72)
    new = pd.DataFrame({"basement": [0.0, 0.0], "uranium": [-0.5, 0.5]})
    pred = est.predict(new, groups=POPULATION)
    np.testing.assert_allclose(pred, est.intercept_ + new.to_numpy() @ est.coef_, rtol=1e-9)
    assert pred[1] - pred[0] == pytest.approx(est.coef_[1])


def test_feature_constant_in_only_some_groups_is_not_group_level(radon):
    X = radon[["basement"]].copy()
    X["partly"] = np.where(radon["county"] <= 40, radon["uranium"], np.arange(len(X)) % 7)
    quiet_fit(HierarchicalRegressor(**TINY), X, radon["log.radon"], groups=radon["county"])


# 6. Warnings point to the user's line --------------------------------------------------
def test_warnings_are_reported_at_the_callers_line(radon, by_name):
    X, y = radon[["basement"]], radon["log.radon"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        HierarchicalRegressor(draws=10, tune=10, chains=1, random_state=0).fit(X, y)
        by_name.predict(X, groups=radon["county"])
        cross_val_score(
            HierarchicalRegressor(**TINY), X, y, groups=radon["county"], cv=GroupKFold(2)
        )
        pipe = make_pipeline(StandardScaler(), HierarchicalRegressor(random_slopes=None, **TINY))
        pipe.fit(X, y, hierarchicalregressor__groups=radon["county.name"])
        pipe.predict(X, groups=["new"] * len(X))
    ours = [w for w in record if w.category.__module__ == "skhier.exceptions"]
    kinds = {w.category for w in ours}
    assert {NoGroupsWarning, ConvergenceWarning, UnseenGroupWarning} <= kinds
    assert {w.filename for w in ours} == {__file__}


# 7. Positional arguments that change meaning ----------------------------------------
def test_arguments_after_x_and_y_are_keyword_only(by_id, radon):
    X, y, g = radon[["basement"]], radon["log.radon"], radon["county"]
    weights = np.full(len(y), 7.0)
    calls = [
        lambda: by_id.score(X, y, weights),
        lambda: by_id.predict(X, g),
        lambda: by_id.predict_interval(X, g),
        lambda: by_id.sample_y(X, g),
        lambda: HierarchicalRegressor(**TINY).fit(X, y, g),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="positional argument"):
            call()
    assert by_id.score(X, y, groups=g, sample_weight=weights) > 0.1


# 8. Docs that mislead ---------------------------------------------------------------
def test_radon_basement_coding_is_documented_as_the_data_are(radon):
    """0 = basement, 1 = first floor (HLMdiag; Gelman & Hill's `floor`): radon is
    lower above ground, so the fitted effect of the column is negative."""
    est = quiet_fit(
        fast_estimator(random_slopes=None),
        radon[["basement"]],
        radon["log.radon"],
        groups=radon["county"],
    )
    assert est.coef_[0] < -0.4
    from pathlib import Path

    import skhier.datasets

    root = Path(__file__).parent.parent
    texts = [skhier.datasets.load_radon.__doc__]
    for path in ["README.md", "docs/user_guide.md", "skhier/data/README.md"]:
        texts.append((root / path).read_text())
    for text in texts:
        assert "1 = measured in a basement" not in text and "1 = basement" not in text
    assert "0 = basement" in skhier.datasets.load_radon.__doc__


def test_binary_target_found_past_the_first_rows():
    from skhier._data.checks import warn_if_binary_target

    y = np.r_[np.zeros(10_000), np.ones(5)]  # sorted data: the second value comes late
    with pytest.warns(BinaryTargetWarning):
        warn_if_binary_target(y, was_bool=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_binary_target(np.r_[y, 2.0], was_bool=False)
