"""Agreement with trusted references: lme4 (published), statsmodels MixedLM,
and the explicit PyMC model."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from skhier import HierarchicalRegressor
from skhier.datasets import (
    SLEEPSTUDY_LME4,
    load_radon,
    load_sleepstudy,
    make_hierarchical_regression,
)
from tests.conftest import assert_same_draws

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sleep_fit():
    data = load_sleepstudy()
    est = HierarchicalRegressor(random_state=1).fit(
        data[["Days"]], data["Reaction"], groups=data["Subject"]
    )
    return est


def test_sleepstudy_population_within_one_posterior_sd_of_lme4(sleep_fit):
    """(Days | Subject), correlated effects: lme4's REML fit, published."""
    post, ref = sleep_fit.posterior_, SLEEPSTUDY_LME4
    for attr, key in [
        ("intercept", "intercept"),
        ("group_intercept_sd", "group_intercept_sd"),
        ("noise_sd", "noise_sd"),
    ]:
        draws = post.flat(attr)
        assert abs(draws.mean() - ref[key]) < draws.std(), attr
    for attr, key in [("coef", "coef"), ("group_coef_sd", "group_coef_sd")]:
        draws = post.flat(attr)[:, 0]
        assert abs(draws.mean() - ref[key]) < draws.std(), attr
    corr = post.flat("group_corr")[:, 1, 0]
    assert abs(corr.mean() - ref["group_corr"]) < corr.std()
    # lme4's 95% profile interval for the correlation is [-0.48, 0.69]
    lo, hi = sleep_fit.group_corr_interval_[1, 0]
    assert -0.65 < lo < -0.3 and 0.5 < hi < 0.85
    assert sleep_fit.convergence_["max_r_hat"] < 1.01
    assert sleep_fit.convergence_["min_ess_bulk"] > 1000
    assert sleep_fit.convergence_["n_divergences"] == 0


def test_sleepstudy_subjects_track_lme4_conditional_modes(sleep_fit):
    ranef = SLEEPSTUDY_LME4["ranef"].loc[sleep_fit.groups_]
    ours_a = sleep_fit.group_intercept_ - SLEEPSTUDY_LME4["intercept"]
    ours_b = sleep_fit.group_coef_[:, 0] - SLEEPSTUDY_LME4["coef"]
    assert np.corrcoef(ours_a, ranef["intercept"])[0, 1] > 0.99
    assert np.corrcoef(ours_b, ranef["Days"])[0, 1] > 0.99
    assert np.max(np.abs(ours_a - ranef["intercept"])) < 5.0  # ms; group SD is ~25
    assert np.max(np.abs(ours_b - ranef["Days"])) < 1.0  # ms/day; group SD is ~6


def _check_against_mixedlm(est, fit, fixed_names):
    """Fixed effects within 0.5 SE, SDs within 15%, group predictions close."""
    fe = fit.fe_params
    se = fit.bse_fe
    ours = np.r_[est.intercept_, est.coef_]
    np.testing.assert_array_less(
        np.abs(ours - fe[fixed_names].to_numpy()), 0.5 * se[fixed_names].to_numpy()
    )
    sds = np.sqrt(np.r_[fit.cov_re.iloc[0, 0], fit.vcomp])  # intercept, then slopes
    ours_sd = np.r_[est.group_intercept_sd_, est.group_coef_sd_[est.random_slope_mask_]]
    np.testing.assert_allclose(ours_sd, sds, rtol=0.15)
    assert est.noise_sd_ == pytest.approx(np.sqrt(fit.scale), rel=0.15)


def test_simulated_agrees_with_mixedlm():
    X, y, g, truth = make_hierarchical_regression(
        40, 25, 2, group_intercept_sd=1.0, group_coef_sd=[0.5, 0.0], random_state=3
    )
    df = pd.DataFrame({"y": y, "x0": X[:, 0], "x1": X[:, 1], "g": g})
    fit = smf.mixedlm(
        "y ~ x0 + x1", df, groups="g", re_formula="1", vc_formula={"s0": "0 + x0"}
    ).fit(reml=True)
    est = HierarchicalRegressor(random_slopes=[0], correlated_effects=False, random_state=0).fit(
        X, y, groups=g
    )
    _check_against_mixedlm(est, fit, ["Intercept", "x0", "x1"])
    # per-group predictions: MixedLM's BLUP-based fitted values vs posterior means
    np.testing.assert_allclose(est.predict(X, groups=g), fit.fittedvalues, atol=0.05)


def test_radon_agrees_with_mixedlm():
    radon = load_radon().rename(columns={"log.radon": "log_radon"})
    fit = smf.mixedlm("log_radon ~ basement", radon, groups="county").fit(reml=True)
    est = HierarchicalRegressor(random_slopes=None, random_state=0).fit(
        radon[["basement"]], radon["log_radon"], groups=radon["county"]
    )
    _check_against_mixedlm(est, fit, ["Intercept", "basement"])
    pred = est.predict(radon[["basement"]], groups=radon["county"])
    np.testing.assert_allclose(pred, fit.fittedvalues, atol=0.03)


def test_radon_correlated_floor_slope_agrees_with_mixedlm():
    """log.radon ~ floor + (floor | county): MixedLM REML gives county intercept SD
    0.35, floor-slope SD 0.34, correlation -0.34, residual 0.75 (Gelman & Hill ch. 13
    report the same)."""
    radon = load_radon().rename(columns={"log.radon": "log_radon"})
    fit = smf.mixedlm("log_radon ~ basement", radon, groups="county", re_formula="~basement")
    fit = fit.fit(reml=True)
    est = HierarchicalRegressor(random_state=0).fit(
        radon[["basement"]], radon["log_radon"], groups=radon["county"]
    )
    cov = fit.cov_re.to_numpy()
    sds = np.sqrt(np.diag(cov))
    # SDs and correlation: within one posterior SD of REML (the floor slope is
    # estimated from the few counties with both floors, so its SD is uncertain)
    post = est.posterior_
    for draws, ref in [
        (post.flat("group_intercept_sd"), sds[0]),
        (post.flat("group_coef_sd")[:, 0], sds[1]),
        (post.flat("group_corr")[:, 1, 0], cov[0, 1] / sds.prod()),
    ]:
        assert abs(draws.mean() - ref) < draws.std(), (draws.mean(), draws.std(), ref)
    assert est.noise_sd_ == pytest.approx(np.sqrt(fit.scale), rel=0.05)
    fe = fit.fe_params.to_numpy()
    np.testing.assert_array_less(
        np.abs(np.r_[est.intercept_, est.coef_] - fe), 0.5 * fit.bse_fe.to_numpy()
    )
    assert est.convergence_["max_r_hat"] < 1.01


@pytest.mark.parametrize("correlated", [False])
def test_collapsed_and_explicit_engines_give_the_same_posterior(correlated):
    # The explicit correlated model (LKJCholeskyCov) does not mix reliably on these data
    # (non-centered: r_hat 1.04; with 30 rows per group: divergences): the correlated
    # engine is checked against importance sampling of its exact density below.
    X, y, g, _ = make_hierarchical_regression(15, 12, 2, random_state=5)
    kwargs = {
        "draws": 1000,
        "tune": 1000,
        "chains": 4,
        "random_state": 0,
        "correlated_effects": correlated,
    }
    a = HierarchicalRegressor(engine="collapsed", **kwargs).fit(X, y, groups=g)
    b = HierarchicalRegressor(engine="explicit", **kwargs).fit(X, y, groups=g)
    assert b.engine_ == "explicit"
    names = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd"]
    assert_same_draws(a, b, [*names, "group_intercept", "group_coef", "group_corr"])


def test_correlated_posterior_equals_importance_sampling_of_the_exact_density():
    """NUTS on the collapsed correlated model against an independent sampler of the same
    exact posterior (whose density tests/test_collapsed.py checks against a dense
    multivariate normal and the LKJ density): importance sampling from a Student-t
    around the posterior mode."""
    from scipy import optimize, stats

    from skhier._engines.collapsed.engine import log_density
    from skhier._engines.collapsed.kernels import cov_chols
    from skhier._engines.collapsed.reference import sufficient_stats
    from skhier._model.spec import Scaling, design

    X, y, g, _ = make_hierarchical_regression(15, 12, 2, random_state=5)
    est = HierarchicalRegressor(random_state=0).fit(X, y, groups=g)
    spec = est._spec(2, (0, 1), "collapsed", "centered")
    scaling = Scaling.fit(X, y, True)
    stats_ = sufficient_stats(*design(X, y, spec, scaling), g, 15)

    def neg(x):
        value, grad = log_density(x, stats_, spec)
        return -value, -grad

    start = np.r_[np.full(3, np.log(0.5)), np.zeros(3), np.log(0.5)]
    mode = optimize.minimize(neg, start, jac=True).x
    hess = np.column_stack(
        [(neg(mode + 1e-5 * e)[1] - neg(mode - 1e-5 * e)[1]) / 2e-5 for e in np.eye(7)]
    )
    proposal = stats.multivariate_t(mode, 1.5 * np.linalg.inv(0.5 * (hess + hess.T)), df=4)
    xs = proposal.rvs(size=200_000, random_state=1)
    log_w = np.array([-neg(x)[0] for x in xs]) - proposal.logpdf(xs)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    assert 1 / np.sum(w**2) > 100  # effective sample size of the importance sampler
    tau = np.exp(xs[:, :3])
    chol = cov_chols(xs[:, :6], 3, True, 2.0) / tau[:, :, None]
    corr = (chol @ np.swapaxes(chol, 1, 2))[:, [1, 2, 2], [0, 0, 1]]
    sd_b = tau[:, 1:] * scaling.y_scale / scaling.x_scale
    post = est.posterior_
    for ref, draws in [
        (w @ sd_b, post.flat("group_coef_sd")),
        (w @ corr, post.flat("group_corr")[:, [1, 2, 2], [0, 0, 1]]),
    ]:
        # Monte Carlo error of both: well under 0.1 posterior SD here
        np.testing.assert_array_less(np.abs(draws.mean(0) - ref), 0.15 * draws.std(0))
