"""Importance sampling from the Laplace approximation (inference="importance")."""

import numpy as np
import pytest

from skhier import HierarchicalRegressor
from skhier._engines import registry as _engines
from skhier._engines.collapsed import importance as _importance
from skhier.datasets import make_hierarchical_regression

# short runs of NUTS, the reference here, may fall just short of the ESS target
pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("n", [50, 1000, 4000])
@pytest.mark.parametrize("scale", [0.3, 2.0])
def test_psis_equals_arviz(n, scale):
    import arviz as az

    log_w = np.random.default_rng(n).standard_t(3, n) * scale
    got, k = _importance.psis(log_w)
    want, k_want = az.psislw(log_w.copy(), reff=1.0)
    assert k == pytest.approx(float(k_want), rel=1e-12)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_systematic_resampling_follows_the_weights():
    rng = np.random.default_rng(0)
    w = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    idx = _importance.systematic_resample(w, 800, rng)
    np.testing.assert_array_equal(np.bincount(idx, minlength=5), [400, 200, 100, 100, 0])
    assert not np.all(np.diff(idx) >= 0)  # random order, not sorted


def test_importance_sampling_recovers_a_gaussian_target():
    """A t proposal on a Gaussian target: draws with the target's moments."""
    mode, chol = np.array([1.0, -2.0]), np.diag([0.5, 2.0])
    prec = np.linalg.inv(chol @ chol.T)

    def logp(x):
        d = x - mode
        return -0.5 * d @ prec @ d

    x, info = _importance.importance_resample(
        logp, mode, chol, 4000, 4000, np.random.default_rng(1)
    )
    assert info["pareto_k"] < 0.5 and info["ess"] > 2000
    np.testing.assert_allclose(x.mean(0), mode, atol=0.1)
    np.testing.assert_allclose(x.std(0), [0.5, 2.0], rtol=0.1)


@pytest.fixture(scope="module")
def data():
    return make_hierarchical_regression(300, 8, 2, random_state=0)


KW = dict(draws=300, tune=300, chains=2, random_state=1)


def test_importance_agrees_with_nuts_and_says_what_it_did(data):
    X, y, g, _ = data
    imp = HierarchicalRegressor(inference="importance", **KW).fit(X, y, groups=g)
    nuts = HierarchicalRegressor(inference="nuts", **KW).fit(X, y, groups=g)
    conv = imp.convergence_
    assert conv["method"] == "importance" and conv["pareto_k"] <= 0.7
    assert np.isnan(conv["max_r_hat"]) and conv["min_ess_bulk"] > 200
    assert nuts.convergence_["method"] == "nuts"
    sd = nuts.summary(group_level=False)["sd"]
    diff = imp.summary(group_level=False)["mean"] - nuts.summary(group_level=False)["mean"]
    assert (np.abs(diff) < 0.3 * sd + 1e-9).all(), diff / sd
    assert np.isnan(imp.summary(group_level=False)["r_hat"]).all()
    assert imp.posterior_.intercept.shape == (2, 300)


def test_unreliable_weights_fall_back_to_nuts(data, monkeypatch):
    X, y, g, _ = data
    monkeypatch.setattr(_importance, "K_HAT_MAX", -10.0)
    est = HierarchicalRegressor(inference="importance", **KW).fit(X, y, groups=g)
    assert est.convergence_["method"] == "nuts"
    assert "pareto_k" in est.convergence_["fallback"]
    assert est.convergence_["max_r_hat"] < 1.05


def test_auto_uses_importance_sampling_with_many_groups(data, monkeypatch):
    X, y, g, _ = data
    monkeypatch.setattr(_engines, "IMPORTANCE_MIN_GROUPS", 301)
    assert HierarchicalRegressor(**KW).fit(X, y, groups=g).convergence_["method"] == "nuts"
    monkeypatch.setattr(_engines, "IMPORTANCE_MIN_GROUPS", 300)
    assert HierarchicalRegressor(**KW).fit(X, y, groups=g).convergence_["method"] == "importance"
    assert _engines.resolve_inference("auto", "augmented", 10**6) == "nuts"


@pytest.mark.parametrize("kw", [dict(likelihood="student_t"), dict(engine="explicit")])
def test_importance_needs_the_collapsed_engine(data, kw):
    X, y, g, _ = data
    with pytest.raises(ValueError, match="inference='importance' needs the collapsed"):
        HierarchicalRegressor(inference="importance", **kw).fit(X, y, groups=g)


def test_group_diagnostics_on_request_keep_importance_diagnostics(data, monkeypatch):
    """summary(group_diagnostics=True) after importance sampling: still no r_hat and
    the weights' ESS for the population rows (resampled draws have no chains)."""
    X, y, g, _ = data
    est = HierarchicalRegressor(inference="importance", **KW).fit(X, y, groups=g)
    table = est.summary(group_diagnostics=True)
    assert np.isnan(table["r_hat"]).all()
    assert table.loc["sigma_a", "ess_bulk"] == pytest.approx(est.convergence_["min_ess_bulk"])


def test_adaptive_rounds_recover_a_skewed_posterior_from_a_poor_proposal():
    """A log SD whose SD piles up near 0 (the log of an Exponential: a long left
    tail) and a Laplace-like proposal that is too narrow: the first round's k_hat
    is above 0.5, so further rounds propose from the weighted draws' moments; the
    last round's draws are reliable (k_hat <= 0.7) and have the exact mean,
    log(scale) - Euler's gamma, and SD, pi / sqrt(6)."""
    from skhier._engines.collapsed.importance import adaptive_importance, importance_resample

    scale = 0.01

    def log_density(x):  # x = log(sigma), sigma ~ Exponential(mean=scale)
        return x[:, 0] - np.exp(x[:, 0]) / scale

    mode, chol = np.array([np.log(scale)]), np.array([[0.3]])
    _, first = importance_resample(log_density, mode, chol, 4000, 4000,
                                   np.random.default_rng(0), vectorized=True)  # fmt: skip
    assert first["pareto_k"] > 0.5
    draws, info = adaptive_importance(
        log_density, mode, chol, 4000, 4000, np.random.default_rng(0), vectorized=True
    )
    assert info["rounds"] > 1 and info["pareto_k"] <= 0.7 and draws is not None
    se = (np.pi / np.sqrt(6)) / np.sqrt(info["ess"])
    assert abs(draws.mean() - (np.log(scale) - np.euler_gamma)) < 4 * se
    assert draws.std() == pytest.approx(np.pi / np.sqrt(6), rel=0.1)
