"""The binary and count models against references: the explicit PyMC model, maximum likelihood
by adaptive Gauss-Hermite quadrature on real data, simulation-based calibration and
interval coverage (small groups, rare outcomes)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.special import expit, gammaln, log_expit

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor
from skhier.datasets import load_contraception, load_epilepsy
from tests.conftest import assert_same_draws

pytestmark = pytest.mark.slow


def _fit(est, X, y, g):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, groups=g)


def test_gibbs_engine_matches_the_explicit_pymc_model():
    rng = np.random.default_rng(8)
    n_groups, n = 15, 450
    g = rng.integers(0, n_groups, n)
    X = rng.normal(size=(n, 2))
    eta = -0.4 + rng.normal(0, 0.9, n_groups)[g] + X @ [0.7, -0.3]
    eta += rng.normal(0, 0.4, n_groups)[g] * X[:, 0]
    y = (rng.random(n) < expit(eta)).astype(int)
    kw = {"random_slopes": [0], "correlated_effects": False, "draws": 2000, "random_state": 0}
    gibbs = _fit(HierarchicalClassifier(**kw), X, y, g)
    explicit = _fit(HierarchicalClassifier(engine="explicit", tune=1000, **kw), X, y, g)
    assert gibbs.engine_ == "gibbs" and explicit.engine_ == "explicit"
    assert gibbs.convergence_["max_r_hat"] < 1.01
    names = ["intercept", "coef", "group_intercept_sd", "group_intercept", "group_coef"]
    assert_same_draws(gibbs, explicit, names, rtol={"group_coef": 0.15, "group_intercept": 0.15})


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_nuts_engine_matches_the_explicit_pymc_model(family):
    """skhier's numba density (rows sorted by group, its own NUTS) against the PyMC
    model: a correlated random slope, an exposure, a group-level predictor, each
    parametrization (about 67 rows a group, so that neither form has a funnel to
    get stuck in: this checks the densities, not the choice between them)."""
    rng = np.random.default_rng(9)
    n_groups, n = 12, 800
    g = rng.integers(0, n_groups, n)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n), rng.normal(size=n_groups)[g]])
    exposure = rng.uniform(0.5, 3.0, n)
    eta = 0.3 + rng.normal(0, 0.6, n_groups)[g] + X @ [0.5, -0.2, 0.4]
    eta += rng.normal(0, 0.3, n_groups)[g] * X[:, 0] + np.log(exposure)
    y = rng.poisson(rng.gamma(2.0, np.exp(eta) / 2.0))
    kw = {"family": family, "random_slopes": [0], "draws": 2000, "random_state": 0}
    fits = []
    for engine, form in (("explicit", "auto"), ("nuts", "centered"), ("nuts", "non-centered")):
        est = HierarchicalPoissonRegressor(engine=engine, parametrization=form, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(est.fit(X, y, groups=g, exposure=exposure))
    assert fits[0].engine_ == "explicit"
    names = ["intercept", "coef", "group_intercept_sd", "group_intercept", "group_coef"]
    names += ["dispersion"] if family == "negative_binomial" else []
    for fit in fits[1:]:
        assert fit.engine_ == "nuts"
        assert fit.convergence_["max_r_hat"] < 1.01
        rtol = {"group_coef": 0.15, "group_intercept": 0.15}
        assert_same_draws(fit, fits[0], names, rtol=rtol)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_partial_form_matches_the_explicit_pymc_model(family, monkeypatch):
    """The nuts engine's partial form (centred intercepts, non-centred slopes: what
    "auto" picks for a slope that varies little next to what the rows say about it)
    against the PyMC model, non-centred, on such data: 40 groups of 5 rows, a
    correlated random slope of SD 0.15, an exposure."""
    from skhier._core import glm as _glm

    rng = np.random.default_rng(12)
    n_groups = 40
    g = np.repeat(np.arange(n_groups), 5)
    X = np.column_stack([rng.normal(size=g.size), rng.normal(size=n_groups)[g]])
    exposure = rng.uniform(0.5, 2.0, g.size)
    eta = 1.0 + rng.normal(0, 0.5, n_groups)[g] + X @ [0.3, 0.4] + np.log(exposure)
    eta += rng.normal(0, 0.15, n_groups)[g] * X[:, 0]
    y = rng.poisson(rng.gamma(4.0, np.exp(eta) / 4.0))
    kw = {"family": family, "random_slopes": [0], "draws": 2000, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explicit = HierarchicalPoissonRegressor(
            engine="explicit", parametrization="non-centered", **kw
        ).fit(X, y, groups=g, exposure=exposure)
        monkeypatch.setattr(_glm, "glm_parametrization", lambda *a, **k: "partial")
        partial = HierarchicalPoissonRegressor(**kw).fit(X, y, groups=g, exposure=exposure)
    assert partial.engine_ == "nuts" and partial.parametrization_ == "partial"
    assert "parametrization_switch" not in partial.convergence_
    assert partial.convergence_["max_r_hat"] < 1.01
    names = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "group_intercept",
             "group_coef"] + (["dispersion"] if family == "negative_binomial" else [])  # fmt: skip
    rtol = {"group_coef": 0.15, "group_intercept": 0.15, "group_coef_sd": 0.2}
    assert_same_draws(partial, explicit, names, rtol=rtol)


def _bernoulli(y, eta):
    """Per-row log likelihood and its second derivative's negative (the weight)."""
    p = expit(eta)
    return y * eta + log_expit(-eta), p * (1 - p), p


def _poisson(y, eta):
    mu = np.exp(eta)
    return y * eta - mu - gammaln(y + 1), mu, mu


def _aghq_ml(X, y, g, n_nodes=15, family=_bernoulli):
    """Maximum likelihood of ``y ~ family(X beta + b[g])`` (canonical link),
    ``b ~ N(0, sigma^2)``, with the random intercepts integrated out by adaptive
    Gauss-Hermite quadrature per group (lme4's ``glmer(nAGQ = 15)``); returns
    estimates and SEs of ``(beta, sigma)``."""
    nodes, weights = np.polynomial.hermite.hermgauss(n_nodes)
    n_groups = g.max() + 1

    def _sum(ll):  # per-row terms (n_rows, k) summed per group: (n_groups, k)
        out = np.zeros((n_groups, ll.shape[1]))
        np.add.at(out, g, ll)
        return out

    def negloglik(params):
        beta, sigma = params[:-1], np.exp(params[-1])
        eta0 = X @ beta
        b = np.zeros(n_groups)
        for _ in range(30):  # Newton for each group's mode
            _, w, mean = family(y, eta0 + b[g])
            grad = np.bincount(g, y - mean, n_groups) - b / sigma**2
            hess = np.bincount(g, w, n_groups) + 1 / sigma**2
            b += grad / hess
        w = family(y, eta0 + b[g])[1]
        sd = 1 / np.sqrt(np.bincount(g, w, n_groups) + 1 / sigma**2)
        pts = b[:, None] + np.sqrt(2) * sd[:, None] * nodes[None, :]
        eta = eta0[:, None] + pts[g]
        ll = _sum(family(y[:, None], eta)[0])
        log_prior = stats.norm.logpdf(pts, 0, sigma)
        terms = ll + log_prior + nodes[None, :] ** 2 + np.log(weights)[None, :]
        log_int = np.log(np.sqrt(2) * sd) + np.logaddexp.reduce(terms, axis=1)
        return -log_int.sum()

    x0 = np.r_[np.zeros(X.shape[1]), 0.0]
    if family is _poisson:  # start at the log mean count
        x0[0] = np.log(y.mean())
    res = optimize.minimize(negloglik, x0, method="BFGS")
    h = 1e-4
    k = len(res.x)
    hess = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            e_i, e_j = np.eye(k)[i] * h, np.eye(k)[j] * h
            hess[i, j] = (
                negloglik(res.x + e_i + e_j) - negloglik(res.x + e_i - e_j)
                - negloglik(res.x - e_i + e_j) + negloglik(res.x - e_i - e_j)
            ) / (4 * h * h)  # fmt: skip
    se = np.sqrt(np.diag(np.linalg.inv(hess)))
    return res.x[:-1], se[:-1], np.exp(res.x[-1])


def _assert_agrees_with_ml(est, beta, se, sigma):
    """Fixed effects within 0.5 ML standard errors, the group SD within 25%."""
    ours = np.r_[est.intercept_, est.coef_]
    assert np.all(np.abs(ours - beta) < 0.5 * se), (ours, beta, se)
    assert est.group_intercept_sd_ == pytest.approx(sigma, rel=0.25), (
        est.group_intercept_sd_,
        sigma,
    )
    assert est.convergence_["max_r_hat"] < 1.01


def test_contraception_agrees_with_adaptive_quadrature_ml():
    """``use ~ age + age^2 + urban + livch + (1 | district)`` on the real data: fixed
    effects within 0.5 ML standard errors, the district SD within 25%.  (The
    posterior mean of sigma sits above the ML estimate: a mean of a right-skewed
    posterior versus a mode of the likelihood; both are reported below.)"""
    data = load_contraception()
    X = pd.get_dummies(data[["age", "urban", "livch"]], columns=["livch"], drop_first=True)
    X = X.astype(float).assign(age2=data["age"] ** 2)
    g = pd.factorize(data["district"])[0]
    y = data["use"].to_numpy()
    design = np.column_stack([np.ones(len(y)), X.to_numpy()])
    beta, se, sigma = _aghq_ml(design, y, g)
    est = _fit(HierarchicalClassifier(random_slopes=None, random_state=0), X, y, data["district"])
    _assert_agrees_with_ml(est, beta, se, sigma)


def test_epilepsy_agrees_with_adaptive_quadrature_ml():
    """Breslow & Clayton's ``y ~ lbase * trt + lage + V4 + (1 | subject)``, Poisson,
    on the real counts: fixed effects within 0.5 ML standard errors, the patients'
    SD within 25% (a posterior mean against a likelihood mode, as above)."""
    data = load_epilepsy()
    progabide = (data["trt"] == "progabide").to_numpy(float)
    X = np.column_stack(
        [data["lbase"], progabide, data["lbase"] * progabide, data["lage"], data["V4"]]
    )
    g = pd.factorize(data["subject"])[0]
    y = data["y"].to_numpy(float)
    beta, se, sigma = _aghq_ml(np.column_stack([np.ones(len(y)), X]), y, g, family=_poisson)
    est = _fit(HierarchicalPoissonRegressor(random_slopes=None, random_state=0), X, y, g)
    _assert_agrees_with_ml(est, beta, se, sigma)


@pytest.mark.parametrize("sizes", ["small groups (1-5 rows)", "mixed groups (2-40 rows)"])
def test_sbc_ranks_are_uniform(sizes):
    """Simulation-based calibration with the model's own priors (``standardize=False``):
    intercept ~ N(0, 2.5), slope ~ N(0, 2.5), sigma_a ~ Exponential(1).  The prior
    covers rare and common outcomes alike (an intercept of -4 is 2% positives)."""
    rng = np.random.default_rng(21)
    names = ["intercept", "slope", "sigma_a", "a0"]
    ranks = {n: [] for n in names}
    hi = 6 if sizes.startswith("small") else 41
    lo = 1 if sizes.startswith("small") else 2
    for rep in range(120):
        n_groups = 25
        g = np.repeat(np.arange(n_groups), rng.integers(lo, hi, n_groups))
        theta = {"intercept": rng.normal(0, 2.5), "slope": rng.normal(0, 2.5)}
        theta["sigma_a"] = rng.exponential(1.0)
        a = theta["intercept"] + theta["sigma_a"] * rng.normal(size=n_groups)
        theta["a0"] = a[0]
        x = rng.normal(size=len(g))
        y = (rng.random(len(g)) < expit(a[g] + theta["slope"] * x)).astype(int)
        if y.min() == y.max():  # a classifier needs both outcomes; flip one row
            y[0] = 1 - y[0]
            theta = None
        est = HierarchicalClassifier(
            random_slopes=None, standardize=False, draws=500, tune=200, chains=2,
            random_state=rep,
        )  # fmt: skip
        if theta is None:
            continue  # the flipped data set is no longer a prior draw: skip it
        _fit(est, x[:, None], y, g)
        post = est.posterior_
        draws = {
            "intercept": post.intercept.ravel(),
            "slope": post.coef[..., 0].ravel(),
            "sigma_a": post.group_intercept_sd.ravel(),
            "a0": post.group_intercept[..., 0].ravel(),
        }
        for name in names:
            d = draws[name]
            idx = np.linspace(0, len(d) - 1, 99).astype(int)
            ranks[name].append(int(np.sum(d[idx] < theta[name])))
    for name, r in ranks.items():
        counts = np.histogram(r, bins=10, range=(0, 100))[0]
        assert stats.chisquare(counts).pvalue > 0.001, (name, counts)


@pytest.mark.parametrize("prevalence", ["rare (about 2%)", "common (about 40%)"])
def test_interval_coverage(prevalence):
    """Over 20 simulated data sets with groups of 1-30 rows, the 50% and 90%
    intervals of the group intercepts and of each row's probability cover the truth
    at their nominal rates (pooled over groups and rows)."""
    intercept = -4.5 if prevalence.startswith("rare") else -0.4
    hits = {("a", 0.5): [], ("a", 0.9): [], ("p", 0.5): [], ("p", 0.9): []}
    for seed in range(20):
        rng = np.random.default_rng(300 + seed)
        n_groups = 40
        g = np.repeat(np.arange(n_groups), rng.integers(1, 31, n_groups))
        if prevalence.startswith("rare"):  # enough rows for some positives
            g = np.repeat(g, 5)
        x = rng.normal(size=len(g))
        sd = rng.uniform(0.3, 1.0)
        a = intercept + sd * rng.normal(size=n_groups)
        p = expit(a[g] + 0.5 * x)
        y = (rng.random(len(g)) < p).astype(int)
        for prob in (0.5, 0.9):
            est = _fit(
                HierarchicalClassifier(
                    random_slopes=None, draws=600, tune=300, chains=2, random_state=seed,
                    interval_prob=prob,
                ),
                x[:, None], y, g,
            )  # fmt: skip
            lo, hi = est.group_intercept_interval_.T
            hits[("a", prob)].append(np.mean((a >= lo) & (a <= hi)))
            lo, hi = est.predict_proba_interval(x[:, None], groups=g).T
            hits[("p", prob)].append(np.mean((p >= lo) & (p <= hi)))
    for (what, prob), h in hits.items():
        assert abs(np.mean(h) - prob) < 0.07, (what, prob, np.mean(h))
