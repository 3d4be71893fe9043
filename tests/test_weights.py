"""Frequency weights (``fit(..., sample_weight=w)``) and binomial trials.

A row of weight w counts as w identical rows: every engine's posterior with weights
must equal the posterior of the repeated rows - bit for bit where the engine's
random stream is the same (sufficient statistics, Pólya-Gamma sums), within Monte
Carlo error elsewhere.
"""

import numpy as np
import pandas as pd
import pytest

from skhier import (
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
)

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")

_RNG = np.random.default_rng(0)
_N, _G = 120, 8
_CODES = _RNG.integers(0, _G, _N)
_X = _RNG.normal(size=(_N, 1))
_W = _RNG.integers(1, 4, _N)
_EFFECT = _RNG.normal(0, 0.7, _G)[_CODES]
_Y = {
    "normal": 1 + _EFFECT + 0.5 * _X[:, 0] + _RNG.normal(0, 0.5, _N),
    "bernoulli": (_RNG.random(_N) < 1 / (1 + np.exp(-(_EFFECT + _X[:, 0])))).astype(int),
    "counts": _RNG.poisson(np.exp(0.5 + _EFFECT + 0.3 * _X[:, 0])),
}
_TINY = {"draws": 400, "tune": 300, "chains": 2, "random_state": 1, "random_slopes": None}


def _repeat(v):
    return np.repeat(v, _W, axis=0)


def _population_summary(est):
    s = est.summary()
    return s.loc[[r for r in s.index if r.startswith(("mu_", "sigma_", "eps", "nu", "disp"))]]


def _pair(cls, y, groups=None, **params):
    groups = _CODES if groups is None else groups
    weighted = cls(**_TINY, **params).fit(_X, y, groups=groups, sample_weight=_W)
    rep_groups = groups if groups is POPULATION else _repeat(groups)
    repeated = cls(**_TINY, **params).fit(_repeat(_X), _repeat(y), groups=rep_groups)
    return _population_summary(weighted), _population_summary(repeated), weighted


# engines whose draws depend on the data only through weighted sufficient statistics or
# Pólya-Gamma sums with the same random stream as the repeated rows: the same draws
EXACT = [
    ("collapsed", HierarchicalRegressor, "normal", {}),
    ("gibbs", HierarchicalRegressor, "normal", {"engine": "gibbs"}),
    ("gibbs", HierarchicalClassifier, "bernoulli", {}),
    ("pooled", HierarchicalRegressor, "normal", {"groups": POPULATION}),
    ("pooled", HierarchicalClassifier, "bernoulli", {"groups": POPULATION}),
    ("pooled", HierarchicalPoissonRegressor, "counts", {"groups": POPULATION}),
]


@pytest.mark.parametrize("engine,cls,outcome,params", EXACT)
def test_weights_equal_repeated_rows_draw_for_draw(engine, cls, outcome, params):
    weighted, repeated, est = _pair(cls, _Y[outcome], **params)
    assert est.engine_ == engine
    np.testing.assert_allclose(weighted["mean"], repeated["mean"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(weighted["sd"], repeated["sd"], rtol=1e-6, atol=1e-9)


MONTE_CARLO = [
    ("augmented", HierarchicalRegressor, "normal", {"likelihood": "student_t"}),
    ("nuts", HierarchicalClassifier, "bernoulli", {"engine": "nuts"}),
    ("nuts", HierarchicalPoissonRegressor, "counts", {}),
    ("nuts", HierarchicalPoissonRegressor, "counts", {"family": "negative_binomial"}),
]


@pytest.mark.parametrize("engine,cls,outcome,params", MONTE_CARLO)
def test_weights_equal_repeated_rows_within_monte_carlo_error(engine, cls, outcome, params):
    weighted, repeated, est = _pair(cls, _Y[outcome], **params)
    assert est.engine_ == engine
    z = (weighted["mean"] - repeated["mean"]) / repeated["sd"]
    assert np.abs(z).max() < 0.3, z  # 800 draws: Monte Carlo SE about 0.05 SD each
    np.testing.assert_allclose(weighted["sd"], repeated["sd"], rtol=0.25)


@pytest.mark.slow
@pytest.mark.parametrize("likelihood", ["student_t", "poisson"])
def test_weights_in_the_explicit_pymc_model_with_several_factors(likelihood):
    """The explicit engine (several factors for counts and Student-t noise): the
    likelihood as a weighted potential."""
    factors = pd.DataFrame({"a": _CODES, "b": _RNG.integers(0, 5, _N)})
    cls = HierarchicalPoissonRegressor if likelihood == "poisson" else HierarchicalRegressor
    params = {} if likelihood == "poisson" else {"likelihood": "student_t"}
    y = _Y["counts" if likelihood == "poisson" else "normal"]
    weighted = cls(**_TINY, **params, nested=False).fit(_X, y, groups=factors, sample_weight=_W)
    assert weighted.engine_ == "explicit"
    repeated = cls(**_TINY, **params, nested=False).fit(
        _repeat(_X), _repeat(y), groups=factors.loc[factors.index.repeat(_W)]
    )
    a, b = _population_summary(weighted), _population_summary(repeated)
    assert np.abs((a["mean"] - b["mean"]) / b["sd"]).max() < 0.3


def test_several_factors_take_weights():
    factors = pd.DataFrame({"a": _CODES, "b": _RNG.integers(0, 5, _N)})
    est = HierarchicalClassifier(**_TINY, nested=False).fit(
        _X, _Y["bernoulli"], groups=factors, sample_weight=_W
    )
    rep = HierarchicalClassifier(**_TINY, nested=False).fit(
        _repeat(_X), _repeat(_Y["bernoulli"]), groups=factors.loc[factors.index.repeat(_W)]
    )
    np.testing.assert_allclose(est.coef_, rep.coef_, rtol=1e-6)


def test_zero_weight_rows_are_left_out():
    w = np.ones(_N)
    w[_CODES == 0] = 0.0
    w[:5] = 0.0
    keep = w > 0
    a = HierarchicalRegressor(**_TINY).fit(_X, _Y["normal"], groups=_CODES, sample_weight=w)
    b = HierarchicalRegressor(**_TINY).fit(_X[keep], _Y["normal"][keep], groups=_CODES[keep])
    assert 0 not in a.groups_ and list(a.groups_) == list(b.groups_)
    np.testing.assert_allclose(a.coef_, b.coef_)
    np.testing.assert_allclose(a.group_intercept_, b.group_intercept_)


def test_weights_of_one_are_the_unweighted_fit():
    a = HierarchicalRegressor(**_TINY).fit(_X, _Y["normal"], groups=_CODES)
    b = HierarchicalRegressor(**_TINY).fit(
        _X, _Y["normal"], groups=_CODES, sample_weight=np.ones(_N)
    )
    np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize(
    "weights,message",
    [
        (np.full(_N, -1.0), "non-negative"),
        (np.r_[np.nan, np.ones(_N - 1)], "finite"),
        (np.ones(_N - 1), r"one value per row: shape \(120,\)"),
        (np.zeros(_N), "zero"),
    ],
)
def test_bad_weights_are_refused_clearly(weights, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalRegressor(**_TINY).fit(_X, _Y["normal"], groups=_CODES, sample_weight=weights)


def test_non_integer_weights_of_binary_outcomes_use_the_nuts_engine():
    est = HierarchicalClassifier(**_TINY).fit(
        _X, _Y["bernoulli"], groups=_CODES, sample_weight=_W * 0.5
    )
    assert est.engine_ == "nuts"
    with pytest.raises(ValueError, match="whole-number weights.*engine='auto'"):
        HierarchicalClassifier(**_TINY, engine="gibbs").fit(
            _X, _Y["bernoulli"], groups=_CODES, sample_weight=_W * 0.5
        )


def test_fractional_weights_scale_the_likelihood():
    """Half of every weight: the same model with half the data (wider intervals)."""
    full = HierarchicalRegressor(**_TINY).fit(
        _X, _Y["normal"], groups=_CODES, sample_weight=2.0 * np.ones(_N)
    )
    half = HierarchicalRegressor(**_TINY).fit(
        _X, _Y["normal"], groups=_CODES, sample_weight=0.5 * np.ones(_N)
    )
    width = np.diff(full.coef_interval_[0]), np.diff(half.coef_interval_[0])
    assert 1.6 < (width[1] / width[0])[0] < 2.4  # sqrt(4) = 2


def test_dask_input_refuses_weights():
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame({"x": _X[:, 0], "g": _CODES})
    ddf = dd.from_pandas(frame, npartitions=2)
    y = dd.from_pandas(pd.Series(_Y["normal"]), npartitions=2)
    with pytest.raises(ValueError, match="Dask input does not take `sample_weight`"):
        HierarchicalRegressor(**_TINY, group_col="g").fit(ddf, y, sample_weight=_W)


def test_sample_weight_is_routed_like_groups():
    from sklearn import config_context
    from sklearn.model_selection import GroupKFold, cross_validate

    with config_context(enable_metadata_routing=True):
        est = HierarchicalRegressor(
            **{**_TINY, "draws": 100, "tune": 100}, unseen_groups="population"
        )
        res = cross_validate(
            est, _X, _Y["normal"], cv=GroupKFold(2), return_estimator=True,
            params={"groups": _CODES, "sample_weight": _W.astype(float)},
        )  # fmt: skip
    assert all(np.isfinite(res["test_score"]))


# ------------------------------------------------------------------ trials
def _binomial_data(seed=3):
    rng = np.random.default_rng(seed)
    n = 60
    codes = rng.integers(0, 10, n)
    x = rng.normal(size=(n, 1))
    trials = rng.integers(1, 12, n)
    p = 1 / (1 + np.exp(-(rng.normal(0, 0.8, 10)[codes] + 0.7 * x[:, 0])))
    return x, rng.binomial(trials, p), trials, codes


def _expanded(x, successes, trials, codes):
    rows = np.repeat(np.arange(len(trials)), trials)
    pairs = zip(successes, trials, strict=True)
    y = np.concatenate([np.r_[np.ones(s), np.zeros(t - s)] for s, t in pairs])
    return x[rows], y.astype(int), codes[rows]


def test_binomial_trials_equal_the_expanded_binary_rows():
    x, s, t, codes = _binomial_data()
    agg = HierarchicalClassifier(**_TINY).fit(x, s, groups=codes, trials=t)
    xe, ye, ge = _expanded(x, s, t, codes)
    exp = HierarchicalClassifier(**_TINY).fit(xe, ye, groups=ge)
    np.testing.assert_allclose(agg.coef_, exp.coef_, rtol=1e-6)
    np.testing.assert_allclose(agg.group_intercept_, exp.group_intercept_, rtol=1e-6)
    assert list(agg.classes_) == [0, 1]
    # the score over trials is the expanded data's accuracy
    assert agg.score(x, s, groups=codes, trials=t) == pytest.approx(exp.score(xe, ye, groups=ge))
    p_agg = agg.predict_proba(x, groups=codes)[:, 1]
    p_exp = exp.predict_proba(x, groups=codes)[:, 1]
    np.testing.assert_allclose(p_agg, p_exp, rtol=1e-6)


def test_binomial_trials_in_the_nuts_engine_within_monte_carlo_error():
    x, s, t, codes = _binomial_data()
    agg = HierarchicalClassifier(**_TINY, engine="nuts").fit(x, s, groups=codes, trials=t)
    xe, ye, ge = _expanded(x, s, t, codes)
    exp = HierarchicalClassifier(**_TINY, engine="nuts").fit(xe, ye, groups=ge)
    a, b = _population_summary(agg), _population_summary(exp)
    assert np.abs((a["mean"] - b["mean"]) / b["sd"]).max() < 0.3


@pytest.mark.parametrize(
    "successes,trials,message",
    [
        (np.array([3, 5]), np.array([4, 4]), "exceeds `trials`"),
        (np.array([1, 2]), np.array([2.5, 4]), "positive whole numbers"),
        (np.array([1, -1]), np.array([2, 4]), "whole numbers from 0"),
        (np.array([1, 2]), np.array([2, 2, 2]), r"shape \(2,\)"),
    ],
)
def test_bad_trials_are_refused_clearly(successes, trials, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalClassifier(**_TINY).fit(
            np.zeros((2, 1)), successes, groups=[0, 1], trials=trials
        )


def test_to_pymc_takes_weights():
    pytest.importorskip("pymc")
    model = HierarchicalRegressor(random_slopes=None).to_pymc(
        _X, _Y["normal"], groups=_CODES, sample_weight=_W
    )
    assert "y_weighted" in model.named_vars and "y" not in model.named_vars
