"""The Bayesian workflow: prior predictive draws, the pointwise log likelihood
(PSIS-LOO) and the PyMC model of a fitted estimator."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor, HierarchicalRegressor
from skhier._model.prior import lkj_cholesky
from skhier.datasets import load_sleepstudy

FAST = {"draws": 100, "tune": 100, "chains": 2, "random_state": 0}


@pytest.fixture(scope="module")
def sleep():
    d = load_sleepstudy()
    return d[["Days"]], d["Reaction"], d["Subject"]


@pytest.fixture(scope="module")
def fitted(sleep):
    X, y, g = sleep
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny draws: convergence warnings
        return HierarchicalRegressor(**FAST).fit(X, y, groups=g)


def _counts(seed=0, n_groups=12, n_per=15):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(len(g), 2))
    eta = 0.5 + rng.normal(0, 0.5, n_groups)[g] + X @ [0.4, -0.3]
    return X, rng.poisson(np.exp(eta)), g


def _binary(seed=0, n_groups=12, n_per=20):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(len(g), 1))
    eta = -0.3 + rng.normal(0, 1.0, n_groups)[g] + 0.8 * X[:, 0]
    return X, np.where(rng.random(len(g)) < 1 / (1 + np.exp(-eta)), "yes", "no"), g


# ------------------------------------------------------------------ the prior
@pytest.mark.parametrize("q,eta", [(2, 1.0), (3, 2.0), (4, 0.7)])
def test_lkj_marginals(q, eta):
    """Every correlation of LKJ(eta) in q dims is 2 Beta(b, b) - 1, b = eta + (q-2)/2."""
    L = lkj_cholesky(q, eta, 20000, np.random.default_rng(1))
    R = L @ np.swapaxes(L, 1, 2)
    np.testing.assert_allclose(np.diagonal(R, axis1=1, axis2=2), 1.0, atol=1e-12)
    b = eta + (q - 2) / 2
    for i, j in [(1, 0), (q - 1, 0), (q - 1, q - 2)]:
        r = (R[:, i, j] + 1) / 2
        assert stats.kstest(r, stats.beta(b, b).cdf).pvalue > 1e-3, (i, j)


def _pymc_prior(est, X, y, groups, n, exposure=None):
    import pymc as pm

    model = est.to_pymc(X, y, groups=groups, exposure=exposure)
    return pm.sample_prior_predictive(draws=n, model=model, random_seed=3)


def _same(a, b):
    return stats.ks_2samp(np.ravel(a), np.ravel(b)).pvalue > 1e-4


def test_prior_predictive_matches_pymc_forward_sampling(sleep):
    """skhier's numpy prior equals PyMC's forward sampling of the explicit model:
    parameters in the user's units and the outcome."""
    X, y, g = sleep
    est = HierarchicalRegressor(random_state=0)
    ours = est.sample_prior_predictive(X, y, groups=g, n_samples=3000, random_state=0)
    ref = _pymc_prior(est, X, y, g, 3000)
    for name in ("mu_a", "mu_b", "sigma_a", "sigma_b", "eps"):
        assert _same(ours.prior[name].values, ref.prior[name].values), name
    assert _same(ours.prior["a"].values[..., 0], ref.prior["a"].values[..., 0])
    scale, center = y.std(ddof=0), y.mean()
    ref_y = ref.prior_predictive["y"].values * scale + center  # PyMC's model: y standardized
    for row in (0, 9, 100):
        assert _same(ours.prior_predictive["y"].values[..., row], ref_y[..., row]), row


def test_prior_predictive_matches_pymc_negative_binomial():
    X, y, g = _counts()
    # a tighter prior than the default, whose counts overflow PyMC's sampler
    tight = {"prior_intercept_sd": 0.5, "prior_coef_sd": 0.3, "prior_group_sd": 0.3}
    est = HierarchicalPoissonRegressor(family="negative_binomial", random_state=0, **tight)
    exposure = np.linspace(0.5, 2, len(y))
    ours = est.sample_prior_predictive(X, y, groups=g, exposure=exposure, random_state=0)
    ref = _pymc_prior(est, X, y, g, 500, exposure)
    for name in ("mu_a", "mu_b", "sigma_a"):
        assert _same(ours.prior[name].values, ref.prior[name].values), name
    phi = ref.prior["phi"].values
    assert _same(ours.prior["dispersion"].values, phi**2)
    for row in (0, len(y) - 1):
        a, b = ours.prior_predictive["y"].values[..., row], ref.prior_predictive["y"].values
        assert _same(np.log1p(a), np.log1p(b[..., row])), row


def test_prior_predictive_contract(sleep, fitted):
    X, y, g = sleep
    est = HierarchicalRegressor(**FAST)
    first = est.sample_prior_predictive(X, y, groups=g, n_samples=50, random_state=7)
    again = est.sample_prior_predictive(X, y, groups=g, n_samples=50, random_state=7)
    assert not hasattr(est, "posterior_")  # the estimator stays unfitted
    draws = first.prior_predictive["y"].values
    assert draws.shape == (1, 50, len(y))
    np.testing.assert_array_equal(draws, again.prior_predictive["y"].values)
    np.testing.assert_array_equal(first.observed_data["y"].values, y.to_numpy())
    assert list(first.prior["a"].coords["group"].values) == sorted(g.unique())
    # rows of one group share its drawn effect: at equal Days, two subjects' draws
    # differ by their intercepts, one subject's rows by noise only
    assert first.prior["a"].shape == (1, 50, 18)
    with pytest.raises(ValueError, match="n_samples"):
        est.sample_prior_predictive(X, y, groups=g, n_samples=0)
    with pytest.raises(ValueError, match="exposure"):
        est.sample_prior_predictive(X, y, groups=g, exposure=np.ones(len(y)))

    before = fitted.coef_.copy()
    fitted.sample_prior_predictive(X, y, groups=g, n_samples=20, random_state=0)
    np.testing.assert_array_equal(fitted.coef_, before)
    assert {"posterior", "prior", "prior_predictive"} <= set(fitted.idata_.groups())
    loaded = pickle.loads(pickle.dumps(fitted))  # draws of data are not saved
    assert "prior" not in loaded.idata_.groups()
    # observed_data goes with log_likelihood, whatever the prior was drawn for
    fitted.sample_prior_predictive(X[:50], y[:50], groups=g[:50], n_samples=20)
    idata = fitted.compute_log_likelihood(X, y, groups=g)
    assert idata.observed_data["y"].shape == (len(y),)
    assert idata.prior_predictive["y"].shape == (1, 20, 50)


def test_prior_group_sd_narrows_implied_outcomes(sleep):
    """The knob of the documented workflow: a tighter prior_group_sd implies less
    between-subject spread of the prior predictive reaction times."""
    X, y, g = sleep
    wide = HierarchicalRegressor(prior_group_sd=1.0).sample_prior_predictive(
        X, y, groups=g, n_samples=2000, random_state=0
    )
    tight = HierarchicalRegressor(prior_group_sd=0.2).sample_prior_predictive(
        X, y, groups=g, n_samples=2000, random_state=0
    )
    assert tight.prior["sigma_a"].mean() < 0.3 * wide.prior["sigma_a"].mean()
    assert tight.prior_predictive["y"].std() < wide.prior_predictive["y"].std()


def test_prior_predictive_classifier_and_factors():
    X, y, g = _binary()
    clf = HierarchicalClassifier(random_state=0)
    pp = clf.sample_prior_predictive(X, y, groups=g, n_samples=200, random_state=0)
    draws = pp.prior_predictive["y"].values
    assert set(np.unique(draws)) <= {0, 1}
    np.testing.assert_array_equal(pp.observed_data["y"].values, (y == "yes").astype(float))
    # two crossed factors
    rng = np.random.default_rng(0)
    groups = pd.DataFrame({"s": rng.integers(0, 8, 300), "d": rng.integers(0, 6, 300)})
    Xr = rng.normal(size=(300, 1))
    yr = Xr[:, 0] + rng.normal(size=300)
    est = HierarchicalRegressor(nested=False, random_slopes=None)
    pp = est.sample_prior_predictive(Xr, yr, groups=groups, n_samples=100, random_state=0)
    assert pp.prior["u[s]"].shape == (1, 100, 8, 1)
    assert pp.prior_predictive["y"].shape == (1, 100, 300)


# -------------------------------------------------------- log likelihood, LOO
def test_log_likelihood_gaussian_matches_draws(sleep, fitted):
    """Pointwise log N(y | a[g] + x b[g], eps) at the same draws as idata_'s."""
    X, y, g = sleep
    idata = fitted.compute_log_likelihood(X, y, groups=g)
    post = idata.posterior
    codes = np.searchsorted(fitted.groups_, g.to_numpy())
    a = post["a"].values[:, :, codes]
    b = post["b"].values[:, :, codes, 0]
    mean = a + b * X["Days"].to_numpy()
    eps = post["eps"].values[..., None]
    expected = stats.norm.logpdf(y.to_numpy(), mean, eps)
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-10)
    assert idata.posterior_predictive["y"].shape == expected.shape
    np.testing.assert_array_equal(idata.observed_data["y"].values, y.to_numpy())


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "negative_binomial"])
def test_log_likelihood_glm_matches_draws(family):
    if family == "bernoulli":
        X, y, g = _binary()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = HierarchicalClassifier(**FAST).fit(X, y, groups=g)
        y_num = (y == "yes").astype(float)
    else:
        X, y, g = _counts()
        est = HierarchicalPoissonRegressor(family=family, **FAST)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y, groups=g)
        y_num = y
    exposure = None if family == "bernoulli" else np.full(len(y), 2.0)
    idata = est.compute_log_likelihood(X, y, groups=g, exposure=exposure)
    post = idata.posterior
    eta = post["a"].values[:, :, g] + np.einsum("cdgk,gk->cdg", post["b"].values[:, :, g], X)
    if family == "bernoulli":
        expected = stats.bernoulli.logpmf(y_num, 1 / (1 + np.exp(-eta)))
    else:
        mu = 2.0 * np.exp(eta)
        if family == "poisson":
            expected = stats.poisson.logpmf(y_num, mu)
        else:
            # written out so that it stays exact near Poisson (scipy's nbinom loses
            # digits there): log Gamma(y + a) / Gamma(a) = sum_{k<y} log(a + k)
            alpha = 1 / post["dispersion"].values[..., None]
            k = np.arange(int(y_num.max()))
            rising = np.sum(np.log(alpha[..., None] + k) * (k < y_num[:, None]), axis=-1)
            expected = (
                rising
                - special.gammaln(y_num + 1)
                - alpha * np.log1p(mu / alpha)
                + y_num * (np.log(mu) - np.log(alpha + mu))
            )
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-8)


def test_log_likelihood_errors(sleep, fitted, monkeypatch):
    X, y, g = sleep
    new = g.to_numpy().copy()
    new[:5] = 999
    with pytest.raises(ValueError, match="5 of 180 rows have unseen group labels"):
        fitted.compute_log_likelihood(X, y, groups=new)  # no UnseenGroupWarning first
    with pytest.raises(TypeError, match="must be numeric"):
        fitted.compute_log_likelihood(X, np.where(y > 300, "slow", "fast"), groups=g)
    with pytest.raises(ValueError, match="exposure"):
        fitted.compute_log_likelihood(X, y, groups=g, exposure=np.ones(len(y)))
    with pytest.raises(ValueError, match="values for"):
        fitted.compute_log_likelihood(X, y[:-1], groups=g)
    monkeypatch.setattr("skhier._core.workflow._MAX_POINTWISE", 1000)
    with pytest.raises(ValueError, match="store_draws"):
        fitted.compute_log_likelihood(X, y, groups=g)


def test_loo_ranks_partial_pooling_above_complete_pooling(sleep):
    """az.compare on sleepstudy: random intercepts and slopes > random intercepts
    > one line for everyone (subjects differ a lot in both)."""
    import arviz as az

    X, y, g = sleep
    models = {
        "slopes": HierarchicalRegressor(**FAST),
        "intercepts": HierarchicalRegressor(random_slopes=None, **FAST),
        "complete": HierarchicalRegressor(**FAST),
    }
    loo = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny draws; a few Pareto k above 0.7
        for name, est in models.items():
            groups = None if name == "complete" else g
            if name == "complete":
                from skhier import POPULATION

                groups = POPULATION
            est.fit(X, y, groups=groups)
            loo[name] = est.compute_log_likelihood(X, y, groups=groups)
        table = az.compare(loo)
    assert list(table.index) == ["slopes", "intercepts", "complete"]
    assert table.loc["complete", "elpd_diff"] > 4 * table.loc["complete", "dse"]


def test_several_factors_log_likelihood():
    rng = np.random.default_rng(2)
    groups = pd.DataFrame({"s": rng.integers(0, 8, 300), "d": rng.integers(0, 6, 300)})
    X = rng.normal(size=(300, 1))
    u_s, u_d = rng.normal(0, 1, 8), rng.normal(0, 0.5, 6)
    y = 1 + X[:, 0] + u_s[groups["s"]] + u_d[groups["d"]] + rng.normal(0, 0.5, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = HierarchicalRegressor(nested=False, random_slopes=None, **FAST)
        est.fit(X, y, groups=groups)
    idata = est.compute_log_likelihood(X, y, groups=groups)
    post = idata.posterior
    us = post["u[s]"].values[..., 0][:, :, groups["s"]]
    ud = post["u[d]"].values[..., 0][:, :, groups["d"]]
    mean = post["mu_a"].values[..., None] + post["mu_b"].values[..., 0:1] * X[:, 0] + us + ud
    expected = stats.norm.logpdf(y, mean, post["eps"].values[..., None])
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected, rtol=1e-8)


# -------------------------------------------------------------- the PyMC model
def test_to_pymc_structure(sleep, fitted):
    X, y, g = sleep
    model = fitted.to_pymc(X, y, groups=g)
    names = {v.name for v in model.free_RVs}
    assert "beta" in names and "s" in names
    assert model["y"].eval().shape == (len(y),)
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    # the user-unit deterministics are skhier's transform of the standardized draws
    point["beta"] = np.array([0.3, 0.5])
    mu_b = model.compile_fn(model["mu_b"], inputs=[model["beta"]])({"beta": point["beta"]})
    np.testing.assert_allclose(mu_b, 0.5 * y.std(ddof=0) / X["Days"].std(ddof=0))


def test_to_pymc_several_factors():
    rng = np.random.default_rng(0)
    groups = pd.DataFrame({"s": rng.integers(0, 5, 80), "d": rng.integers(0, 4, 80)})
    X, y = rng.normal(size=(80, 1)), rng.normal(size=80)
    model = HierarchicalRegressor(nested=False).to_pymc(X, y, groups=groups)
    assert {"u[s]", "u[d]", "sigma_a[s]", "sigma_b[d]"} <= set(model.named_vars)
    assert np.isfinite(model.compile_logp()(model.initial_point()))
