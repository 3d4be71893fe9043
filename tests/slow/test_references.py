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


@pytest.mark.parametrize("correlated", [False, True])
def test_collapsed_and_explicit_engines_give_the_same_posterior(correlated):
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
    for name in (
        "intercept",
        "coef",
        "group_intercept_sd",
        "group_coef_sd",
        "noise_sd",
        "group_intercept",
        "group_coef",
        "group_corr",
    ):
        da, db = a.posterior_.flat(name), b.posterior_.flat(name)
        ess = min(a.convergence_["min_ess_bulk"], b.convergence_["min_ess_bulk"])
        mc_se = np.sqrt(da.var(0) / ess + db.var(0) / ess)
        assert np.all(np.abs(da.mean(0) - db.mean(0)) < 4 * mc_se + 1e-12), name
        np.testing.assert_allclose(db.std(0), da.std(0), rtol=0.1, err_msg=name)
