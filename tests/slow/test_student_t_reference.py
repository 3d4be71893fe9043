"""Student-t noise: the augmented engine against the explicit PyMC model run long,
and recovery of known parameters from simulated heavy-tailed data."""

import numpy as np
import pytest

from skhier import HierarchicalRegressor
from tests.conftest import assert_same_draws

pytestmark = pytest.mark.slow


def _t_data(n_groups, n_per, df, seed):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(len(g), 2))
    a = rng.normal(0, 0.8, n_groups)
    b = rng.normal(0, 0.4, n_groups)
    y = 1.0 + a[g] + (1.5 + b[g]) * X[:, 0] - 0.5 * X[:, 1] + 0.7 * rng.standard_t(df, len(g))
    return X, y, g


def test_augmented_and_explicit_engines_give_the_same_student_t_posterior():
    # independent effects: PyMC's NUTS mixes well on this explicit model (the
    # correlated one does not; see test_references), and the augmented engine's
    # correlated density is the collapsed engine's, tested on its own.
    X, y, g = _t_data(12, 15, df=3.0, seed=21)
    kwargs = {
        "likelihood": "student_t",
        "correlated_effects": False,
        "draws": 2000,
        "tune": 1500,
        "chains": 4,
        "random_state": 0,
    }
    a = HierarchicalRegressor(**kwargs).fit(X, y, groups=g)
    # sigma_b near 0: the explicit model needs the non-centered form and small steps
    b = HierarchicalRegressor(
        engine="explicit", parametrization="non-centered", target_accept=0.95, **kwargs
    ).fit(X, y, groups=g)
    assert a.engine_ == "augmented" and b.engine_ == "explicit"
    assert a.convergence_["max_r_hat"] < 1.01
    names = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd"]
    names += ["noise_df", "group_intercept", "group_coef"]
    assert_same_draws(a, b, names, rtol={"noise_df": 0.2})  # nu: a long right tail


@pytest.mark.parametrize("df", [2.5, 6.0])
def test_student_t_recovers_known_parameters(df):
    X, y, g = _t_data(60, 40, df=df, seed=int(df * 10))
    est = HierarchicalRegressor(likelihood="student_t", random_state=0).fit(X, y, groups=g)
    assert est.convergence_["max_r_hat"] < 1.01
    truth = {"coef": np.array([1.5, -0.5]), "noise_sd": 0.7, "noise_df": df}
    intervals = {
        "coef": est.coef_interval_,
        "noise_sd": est.posterior_.interval("noise_sd", 0.99),
        "noise_df": est.posterior_.interval("noise_df", 0.99),
    }
    for name, value in truth.items():
        lo, hi = intervals[name][..., 0], intervals[name][..., 1]
        assert np.all((lo < value) & (value < hi)), (name, lo, hi)
