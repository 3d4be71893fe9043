"""Robustness: every input a user can pass gives a sensible fit or a clear error."""

import numpy as np
import pandas as pd
import pytest
from conftest import assert_same_posterior, fast_estimator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold, cross_val_score

from skhier import HierarchicalRegressor
from skhier.exceptions import FewGroupsWarning, IdentifiabilityWarning

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")

TINY = {"draws": 60, "tune": 60, "chains": 1, "random_state": 0}


def _data(n=40, n_groups=5, k=2, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    X = rng.normal(size=(n, k))
    y = X @ np.arange(1, k + 1) + rng.normal(0, 0.3, n) + g * 0.5
    return X, y, g


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(["X", "y", "groups"]),
    bad=st.sampled_from([np.nan, np.inf, -np.inf]),
    row=st.integers(0, 39),
)
def test_non_finite_values_anywhere_raise_value_error_naming_the_input(where, bad, row):
    X, y, g = _data()
    arrays = {"X": X.copy(), "y": y.copy(), "groups": g.astype(float)}
    arrays[where][row] = bad
    with pytest.raises(ValueError) as info:
        HierarchicalRegressor(**TINY).fit(arrays["X"], arrays["y"], groups=arrays["groups"])
    message = str(info.value)
    assert where in message or (where != "groups" and ("NaN" in message or "infinity" in message))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_x=st.integers(1, 30), n_y=st.integers(1, 30), n_g=st.integers(1, 30))
def test_length_mismatches_raise(n_x, n_y, n_g):
    if n_x == n_y == n_g:
        return
    X = np.zeros((n_x, 1))
    with pytest.raises(ValueError):
        HierarchicalRegressor(**TINY).fit(X, np.zeros(n_y), groups=np.zeros(n_g))


def test_empty_input_raises():
    with pytest.raises(ValueError):
        HierarchicalRegressor(**TINY).fit(np.zeros((0, 2)), np.zeros(0), groups=np.zeros(0))


@pytest.mark.slow  # the sigma_a / eps ridge makes NUTS take long trajectories
def test_groups_with_one_row_and_many_singletons():
    rng = np.random.default_rng(0)
    n = 10_000
    X = rng.normal(size=(n, 1))
    g = np.arange(n)  # 10,000 singleton groups
    y = 1 + 2 * X[:, 0] + rng.normal(0, 0.5, n) + rng.normal(0, 0.5, n)
    with pytest.warns(IdentifiabilityWarning, match="cannot be told apart"):
        est = fast_estimator(random_slopes=None).fit(X, y, groups=g)
    assert est.coef_[0] == pytest.approx(2.0, abs=0.1)
    # the group and noise variances are not separable with one row per group, but
    # their sum is: sigma_a^2 + eps^2 ~= 0.5
    post = est.posterior_
    total = np.mean(post.flat("group_intercept_sd") ** 2 + post.flat("noise_sd") ** 2)
    assert total == pytest.approx(0.5, rel=0.1)
    assert np.all(np.isfinite(est.predict(X[:5], groups=g[:5])))


def test_one_group_given_warns_and_still_fits():
    X, y, _ = _data()
    with pytest.warns(FewGroupsWarning):
        est = fast_estimator().fit(X, y, groups=np.zeros(len(y)))
    assert np.all(np.isfinite(est.predict(X, groups=np.zeros(len(y)))))


@pytest.mark.parametrize("kind", ["constant", "collinear", "zero"])
def test_degenerate_features_give_finite_results(kind):
    X, y, g = _data()
    if kind == "constant":
        X[:, 1] = 3.0
    elif kind == "collinear":
        X[:, 1] = 2 * X[:, 0]
    else:
        X[:, 1] = 0.0
    y = X @ np.array([1.0, 2.0]) + 0.5 * g + np.random.default_rng(1).normal(0, 0.3, len(y))
    if kind == "collinear":
        est = fast_estimator().fit(X, y, groups=g)
    else:  # a constant column is named: it cannot be told apart from the intercept
        with pytest.warns(IdentifiabilityWarning, match="column 1 of X is constant"):
            est = fast_estimator().fit(X, y, groups=g)
    for value in (est.coef_, est.group_coef_, est.predict(X, groups=g), est.noise_sd_):
        assert np.all(np.isfinite(value))
    if kind == "collinear":  # only the sum along the collinear direction is identified
        assert est.coef_[0] + 2 * est.coef_[1] == pytest.approx(1 + 2 * 2, abs=0.5)


@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_units_do_not_matter(scale):
    X, y, g = _data(n=80, n_groups=8)
    base = fast_estimator().fit(X, y, groups=g)
    scaled = fast_estimator().fit(X * scale, y * scale, groups=g)
    assert_same_posterior(base, scaled, X, g, scale=scale)
    assert scaled.noise_sd_ == pytest.approx(base.noise_sd_ * scale, rel=0.05)


def test_pandas_and_numpy_inputs_agree():
    X, y, g = _data()
    df = pd.DataFrame(X, columns=["a", "b"])
    a = fast_estimator().fit(X, y, groups=g)
    b = fast_estimator().fit(df, pd.Series(y), groups=pd.Series(g))
    # same numbers, same layout after validation: bitwise the same posterior
    np.testing.assert_array_equal(a.predict(X, groups=g), b.predict(df, groups=pd.Series(g)))


def test_parallel_cross_validation_is_deterministic():
    X, y, g = _data(n=90, n_groups=6)
    est = fast_estimator(random_slopes=None, group_col="g")
    df = pd.DataFrame(X, columns=["a", "b"]).assign(g=g)
    cv = KFold(3, shuffle=True, random_state=0)
    serial = cross_val_score(est, df, y, cv=cv, n_jobs=1)
    parallel = cross_val_score(est, df, y, cv=cv, n_jobs=2)
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(parallel, cross_val_score(est, df, y, cv=cv, n_jobs=2))


def test_what_would_not_fit_in_memory_is_refused_up_front(monkeypatch):
    """Kept draws or predictive samples beyond the memory available: a MemoryError
    before any sampling, with the size needed and the option that reduces it."""
    import time

    from skhier._posterior import memory as _memory

    rng = np.random.default_rng(0)
    g = np.arange(2000) % 200
    X = rng.normal(size=(2000, 1))
    y = X[:, 0] + rng.normal(size=200)[g] + rng.normal(size=2000)
    monkeypatch.setattr(_memory, "available_bytes", lambda: 4 * 2**20)  # 4 MiB free
    est = HierarchicalRegressor(store_draws="all", draws=4000, chains=4)
    start = time.perf_counter()
    with pytest.raises(
        MemoryError, match=r"16,000 joint draws of 400 group effects.*48\.8 MiB.*store_draws=.auto."
    ):
        est.fit(X, y, groups=g)
    assert time.perf_counter() - start < 5  # refused, not sampled
    assert not hasattr(est, "posterior_")
    est.set_params(store_draws="auto", draws=100, tune=100, chains=2).fit(X, y, groups=g)
    with pytest.raises(MemoryError, match="sample_y for 2,000 rows x 1,000 samples"):
        est.sample_y(X, groups=g, n_samples=1000)
    assert est.sample_y(X[:10], groups=g[:10], n_samples=5).shape == (10, 5)


def test_nan_diagnostics_of_a_chain_sampler_are_never_a_pass():
    from skhier._posterior.diagnostics import warn_if_not_converged
    from skhier.exceptions import ConvergenceWarning

    conv = {"n_divergences": 0, "n_chains": 4, "n_draws": 3000, "method": "nuts",
            "max_r_hat": float("nan"), "min_ess_bulk": float("nan")}  # fmt: skip
    with pytest.warns(ConvergenceWarning, match="r_hat and bulk ESS could not be computed"):
        warn_if_not_converged(conv, "collapsed")
    importance = dict(conv, method="importance", min_ess_bulk=5000.0)  # no chains: no r_hat
    warn_if_not_converged(importance, "collapsed")  # (pytest: warnings are errors)
