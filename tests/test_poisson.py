"""HierarchicalPoissonRegressor: counts, exposure, negative binomial, checks."""

import warnings

import numpy as np
import pytest

import skhier
from skhier import POPULATION, HierarchicalPoissonRegressor, make_group_scorer

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")


def count_data(seed=0, n_groups=12, n_rows=400, dispersion=0.3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n_rows)
    X = rng.normal(size=(n_rows, 1))
    exposure = rng.uniform(0.5, 3.0, n_rows)
    a = 0.5 + 0.6 * rng.normal(size=n_groups)
    mu = exposure * np.exp(a[g] + 0.4 * X[:, 0])
    y = rng.poisson(rng.gamma(1 / dispersion, mu * dispersion))
    return X, y, g, exposure, mu


@pytest.fixture(scope="module")
def fitted():
    X, y, g, exposure, mu = count_data()
    est = HierarchicalPoissonRegressor(
        family="negative_binomial", random_slopes=None, draws=300, tune=300, chains=2,
        random_state=0,
    )  # fmt: skip
    est.fit(X, y, groups=g, exposure=exposure)
    return est, X, y, g, exposure, mu


def test_fit_recovers_rates_and_dispersion(fitted):
    est, X, y, g, exposure, mu = fitted
    assert est.engine_ == "nuts"
    lo, hi = est.coef_interval_[0]
    assert lo < 0.4 < hi
    assert 0.05 < est.dispersion_ < 1.0
    lo, hi = est.dispersion_interval_
    assert lo < 0.3 < hi
    rows = est.summary(group_level=False).index
    assert "dispersion" in rows and "eps" not in rows


def test_predictions_scale_with_exposure(fitted):
    est, X, y, g, exposure, mu = fitted
    pred = est.predict(X, groups=g, exposure=exposure)
    assert np.corrcoef(np.log(pred), np.log(mu))[0, 1] > 0.9
    one = est.predict(X[:5], groups=g[:5])
    double = est.predict(X[:5], groups=g[:5], exposure=np.full(5, 2.0))
    np.testing.assert_allclose(double, 2 * one, rtol=1e-10)
    lo, hi = est.predict_rate_interval(X[:20], groups=g[:20], exposure=exposure[:20]).T
    assert np.all((lo <= pred[:20]) & (pred[:20] <= hi))
    lo, hi = est.predict_interval(X, groups=g, exposure=exposure, prob=0.9).T
    assert 0.85 < np.mean((y >= lo) & (y <= hi)) <= 1.0
    draws = est.sample_y(X[:10], groups=g[:10], exposure=exposure[:10], n_samples=50)
    assert draws.shape == (10, 50) and draws.min() >= 0
    assert np.issubdtype(draws.dtype, np.integer)
    assert 0 < est.score(X, y, groups=g, exposure=exposure) <= 1
    pop = est.predict(X[:3], groups=POPULATION)
    assert np.all(np.isfinite(pop)) and np.all(pop > 0)
    eta = est.predict_linear(X[:3], groups=g[:3])
    assert np.all(np.isfinite(eta))


def test_scorer_passes_groups_and_exposure(fitted):
    from sklearn.metrics import mean_poisson_deviance

    est, X, y, g, exposure, _ = fitted
    scorer = make_group_scorer(mean_poisson_deviance, greater_is_better=False)
    with_exposure = scorer(est, X, y, groups=g, exposure=exposure)
    assert with_exposure == pytest.approx(
        -mean_poisson_deviance(y, est.predict(X, groups=g, exposure=exposure))
    )


def test_bad_counts_and_exposure_are_clear_errors():
    X, y, g, exposure, _ = count_data(n_rows=50)
    est = HierarchicalPoissonRegressor()
    with pytest.warns(skhier.exceptions.CountTargetWarning, match="non-integer"):
        with pytest.raises(ValueError, match="exposure"):  # (warns before failing)
            est.fit(X, y + 0.5, groups=g, exposure=-exposure)
    with pytest.raises(ValueError, match="negative values"):
        est.fit(X, -y - 1, groups=g)
    with pytest.raises(ValueError, match="counts"):
        est.fit(X, np.array(["a"] * len(y)), groups=g)
    with pytest.raises(ValueError, match="exposure"):
        est.fit(X, y, groups=g, exposure=-exposure)
    with pytest.raises(ValueError, match="exposure"):
        est.fit(X, y, groups=g, exposure=exposure[:10])
    with pytest.raises(ValueError, match="engine='nuts' fits one grouping factor"):
        import pandas as pd

        est.set_params(engine="nuts").fit(X, y, groups=pd.DataFrame({"a": g, "b": g % 3}))
    est.set_params(engine="auto")
    with pytest.raises(ValueError, match="family"):
        HierarchicalPoissonRegressor(family="gamma").fit(X, y, groups=g)


def test_exposure_is_routed_like_groups():
    routing = HierarchicalPoissonRegressor().get_metadata_routing()
    for method in ("fit", "predict", "score"):
        requests = getattr(routing, method).requests
        assert requests["groups"] is True and requests["exposure"] is True, method


def _glmm_args(family, correlated, centered, rng, n=150, n_groups=6, empty=(), slopes=(1,),
               weighted=False):  # fmt: skip
    """A small GLMM's density arguments (unsorted rows in, the kernel's layout out),
    the dimension of x, and the raw rows; the groups ``empty`` have no rows;
    ``slopes``: the columns of ``F[:, 1:]`` with a random slope; ``weighted``:
    random frequency weights (binary rows then hold shares of successes)."""
    from skhier._engines.nuts.engine import group_mean_rows, rows_by_group
    from skhier._engines.nuts.kernels import FAMILY_CODES

    p, q = 3, 1 + len(slopes)
    F = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    shift, slope_idx = np.array([0.3, -0.2]), np.array(slopes, dtype=np.int64)
    Z = np.column_stack([np.ones(n)] + [F[:, 1 + k] + shift[k] for k in slopes])  # as design()
    codes = rng.integers(0, n_groups, n)
    codes[:n_groups] = np.arange(n_groups)[::-1]  # every group has rows...
    for e in empty:  # ...but these
        codes[codes == e] = (e + 1) % n_groups if (e + 1) % n_groups not in empty else 0
    y = rng.poisson(2.0, n).astype(float)
    if family == "bernoulli":
        y = (y > 1).astype(float)
    offset = 0.1 * rng.normal(size=n)
    w = rng.uniform(0.2, 3.0, n) if weighted else None
    if weighted and family == "bernoulli":
        y = rng.integers(0, 4, n) / 3.0  # shares of successes out of 3 trials
    m = q * (q - 1) // 2 if correlated else 0
    dim = p + q + m + n_groups * q + (family == "negative_binomial")
    y_s, off_s, w_s, Ft, starts, counts, values = rows_by_group(F, y, codes, offset, n_groups, w)
    args = (FAMILY_CODES[family], y_s, off_s, w_s, Ft, starts, n_groups, q)
    args += (correlated, 2.0, np.full(p, 2.5), np.ones(q), centered)
    zbar = group_mean_rows(F, codes, n_groups, shift)
    args += (shift, slope_idx, zbar, counts, values)
    return args, dim, (F, Z, y, codes, offset, np.ones(n) if w is None else w)


SLOPES = [(), (1,), (1, 0)]  # random intercepts only; one slope; two, out of order


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "negative_binomial"])
@pytest.mark.parametrize("correlated", [True, False])
@pytest.mark.parametrize("centered", [1, 0, 2])  # the form: centered, non-centered, partial
@pytest.mark.parametrize("slopes", SLOPES)
def test_glmm_density_gradient_matches_finite_differences(family, correlated, centered, slopes):
    from skhier._engines.nuts.kernels import glmm_density

    rng = np.random.default_rng(1)
    empty = (2, 6) if correlated else ()  # groups without rows, inside and at the end
    args, dim, _ = _glmm_args(
        family, correlated, centered, rng, n_groups=7, empty=empty, slopes=slopes,
        weighted=correlated,
    )  # fmt: skip
    sizes = np.diff(args[5])  # rows per group, from starts
    assert sizes[list(empty)].sum() == 0 and sizes.sum() == 150
    x = 0.3 * rng.normal(size=dim)
    grad, scratch = np.zeros(dim), np.zeros(dim)
    glmm_density(x, *args, grad)
    h = 1e-6
    numeric = [
        (glmm_density(x + h * e, *args, scratch) - glmm_density(x - h * e, *args, scratch))
        / (2 * h)
        for e in np.eye(dim)
    ]
    np.testing.assert_allclose(grad, numeric, atol=1e-5 * (1 + np.abs(grad).max()))


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "negative_binomial"])
@pytest.mark.parametrize("centered", [0, 1, 2])  # the form: non-centered, centered, partial
@pytest.mark.parametrize("slopes", SLOPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_glmm_density_likelihood_matches_scipy(family, centered, slopes, weighted):
    """The kernel's density against scipy's log pmf on the unsorted rows plus the
    priors written out (independent effects: Normal on beta, on z (non-centered) or
    on each group's coefficients around the population's (centered, the intercept
    sampled as the group's linear predictor at its own mean row) or, partial, the
    intercepts centered (at the group's mean row with the population slopes) and
    the slopes' z standard normal), Exponential(1) on
    the SDs with the log-Jacobians of their log transforms, and HalfNormal(1) on the
    dispersion's phi, sampled on the whole line): equal up to a constant, so the change between two
    points must agree.  ``weighted``: each row's log likelihood times its frequency
    weight (a binary row's: the binomial one of its share of successes)."""
    from scipy import stats

    from skhier._engines.nuts.kernels import glmm_density

    rng = np.random.default_rng(2)
    n_groups, p, q = 6, 3, 1 + len(slopes)
    args, dim, (F, Z, y, codes, offset, w) = _glmm_args(
        family, False, centered, rng, n_groups=n_groups, slopes=slopes, weighted=weighted
    )

    def reference(x):
        beta, z = x[:p], x[p + q : p + q + n_groups * q].reshape(n_groups, q)
        tau = np.exp(x[p : p + q])
        if centered == 2:  # z = (d, z[1:]): u_0 = d - (F beta at the group's mean row)
            fbar = np.array([F[codes == g].mean(0) for g in range(n_groups)])
            u = z * tau
            u[:, 0] = z[:, 0] - fbar @ beta
            prior_u = -0.5 * np.sum((u[:, 0] / tau[0]) ** 2) - n_groups * np.log(tau[0])
            prior_u += -0.5 * np.sum(z[:, 1:] ** 2)
        elif centered:  # z = (d, c[1:]): d is the group's F beta + Z u at its own mean row
            fbar = np.array([F[codes == g].mean(0) for g in range(n_groups)])
            zbar = np.array([Z[codes == g].mean(0) for g in range(n_groups)])
            u = np.empty((n_groups, q))
            for a, k in enumerate(slopes, start=1):  # a slope's population mean: beta
                u[:, a] = z[:, a] - beta[1 + k]
            u[:, 0] = z[:, 0] - fbar @ beta - np.sum(zbar[:, 1:] * u[:, 1:], axis=1)
            prior_u = -0.5 * np.sum((u / tau) ** 2) - n_groups * np.sum(np.log(tau))
        else:
            u = z * tau
            prior_u = -0.5 * np.sum(z**2)
        eta = offset + F @ beta + np.einsum("ij,ij->i", Z, u[codes])
        if family == "bernoulli":  # (a share y of w trials: the binomial's kernel)
            pr = 1 / (1 + np.exp(-eta))
            lik = y * np.log(pr) + (1 - y) * np.log1p(-pr)
        elif family == "poisson":
            lik = stats.poisson.logpmf(y, np.exp(eta))
        else:
            alpha = 1.0 / x[-1] ** 2  # variance mu + mu^2 / alpha, alpha = 1 / phi^2
            lik = stats.nbinom.logpmf(y, alpha, alpha / (alpha + np.exp(eta)))
        log_sd = x[p : p + q]
        prior = -0.5 * np.sum((beta / 2.5) ** 2) + prior_u
        prior += np.sum(log_sd - np.exp(log_sd))
        if family == "negative_binomial":  # HalfNormal(1) on |phi|
            prior += -0.5 * x[-1] ** 2
        return w @ lik + prior

    x1 = 0.3 * rng.normal(size=dim)
    x2 = x1 + 0.3 * rng.normal(size=dim)
    grad = np.zeros(dim)
    got = glmm_density(x2, *args, grad) - glmm_density(x1, *args, grad)
    np.testing.assert_allclose(got, reference(x2) - reference(x1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("second,kept", [(0, "partial"), (500, "centered")])
def test_auto_parametrization_refits_the_other_form_after_divergences(monkeypatch, second, kept):
    """parametrization="auto": divergences in the chosen form (e.g. a random slope
    whose SD is near 0 under the centred form) trigger a refit in another form (here,
    with a random slope: non-centred slopes, "partial"); the fit with fewer
    divergences is kept, and convergence_ says what happened."""
    from skhier._core import base as _base

    X, y, g, _, _ = count_data()
    calls = []

    def fake(self, inputs, warn_convergence=True):
        spec = inputs.spec
        calls.append(spec.parametrization)
        self.posterior_ = type("P", (), {"n_draws": 4000, "dispersion": None})()
        self.convergence_ = {"n_divergences": 200 if len(calls) == 1 else second}
        self.marker_ = spec.parametrization

    monkeypatch.setattr(_base.HierarchicalBase, "_sample_posterior", fake)
    monkeypatch.setattr(_base._diagnostics, "warn_if_not_converged", lambda *a: None)
    est = HierarchicalPoissonRegressor(parametrization="auto").fit(X, y, groups=g)
    assert calls == ["centered", "partial"]  # informative groups: centred first
    assert est.parametrization_ == kept and est.marker_ == kept
    assert (
        "the centered form: 200 divergent transitions"
        in est.convergence_["parametrization_switch"]
    )
    calls.clear()  # random intercepts only: the non-centred form
    HierarchicalPoissonRegressor(random_slopes=None).fit(X, y, groups=g)
    assert calls == ["centered", "non-centered"]
    calls.clear()
    HierarchicalPoissonRegressor(parametrization="centered").fit(X, y, groups=g)
    assert calls == ["centered"]  # an explicit choice is respected


@pytest.mark.parametrize("family", ["poisson", "negative_binomial", "bernoulli"])
def test_automatic_form_of_random_slopes(family):
    """The rule's slopes: non-centred ("partial") when a slope does not vary between
    groups (its SD is 0: the centred form's funnel), centred when it varies by 0.5
    per SD of its feature and 50 rows per group inform it; non-centred intercepts
    (small groups) make the whole model non-centred; an engine without the partial
    form gets the centred one."""
    from skhier._core.glm import glm_parametrization

    def data(sd_b, n_per, base=1.5, seed=0):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(30), n_per)
        x = rng.normal(size=g.size)
        eta = base + 0.5 * rng.normal(size=30)[g] + (0.3 + sd_b * rng.normal(size=30)[g]) * x
        if family == "bernoulli":
            y = (rng.random(g.size) < 1 / (1 + np.exp(-eta + 1.5))).astype(float)
        else:
            y = rng.poisson(np.exp(eta)).astype(float)
        return y, g, x[:, None]

    forms = ("centered", "non-centered", "partial")
    for seed in range(3):
        y, g, x = data(0.0, 40, seed=seed)
        assert glm_parametrization(y, g, 30, family, slopes=x, forms=forms) == "partial"
        assert glm_parametrization(y, g, 30, family, slopes=x) == "centered"
        y, g, x = data(0.5, 50 if family != "bernoulli" else 200, seed=seed)
        assert glm_parametrization(y, g, 30, family, slopes=x, forms=forms) == "centered"
    y, g, x = data(0.0, 2, base=-1.0)  # few, small counts (or rare 1s): little information
    assert glm_parametrization(y, g, 30, family, slopes=x, forms=forms) == "non-centered"


def test_auto_parametrization_refits_a_form_that_did_not_converge(monkeypatch):
    """No divergences but a chain that has not mixed (r_hat, bulk ESS) also makes
    "auto" try the other form; the converged fit is kept, and a first fit that
    converged is never refit."""
    from skhier._core import base as _base

    X, y, g, _, _ = count_data()
    calls = []
    quality = {"centered": (1.03, 150.0), "partial": (1.002, 900.0)}

    def fake(self, inputs, warn_convergence=True):
        form = inputs.spec.parametrization
        calls.append(form)
        self.posterior_ = type("P", (), {"n_draws": 4000, "dispersion": None})()
        r_hat, ess = quality[form]
        self.convergence_ = {"n_divergences": 0, "max_r_hat": r_hat, "min_ess_bulk": ess,
                             "n_chains": 4}  # fmt: skip
        self.marker_ = form

    monkeypatch.setattr(_base.HierarchicalBase, "_sample_posterior", fake)
    monkeypatch.setattr(_base._diagnostics, "warn_if_not_converged", lambda *a: None)
    est = HierarchicalPoissonRegressor().fit(X, y, groups=g)
    assert calls == ["centered", "partial"] and est.parametrization_ == "partial"
    assert "max r_hat 1.030" in est.convergence_["parametrization_switch"]
    quality["centered"] = (1.004, 800.0)
    calls.clear()
    est = HierarchicalPoissonRegressor().fit(X, y, groups=g)
    assert calls == ["centered"] and est.parametrization_ == "centered"
    assert "parametrization_switch" not in est.convergence_


def test_centered_coefs_recover_the_group_coefficients():
    """Round trip, written out independently: from group coefficients ``c`` form each
    group's linear predictor at its mean row ``d`` by hand; the sampler's ``(d,
    c[1:])`` map back to ``c``, after sampling and in the kernel."""
    from skhier._engines.nuts.engine import centered_coefs
    from skhier._engines.nuts.kernels import _centered_coefs

    rng = np.random.default_rng(5)
    n_draws, n_groups, p, slope_idx = 6, 4, 4, np.array([2, 0])
    q = 1 + len(slope_idx)
    zbar = rng.normal(size=(n_groups, p - 1))
    beta = rng.normal(size=(n_draws, p))
    c = rng.normal(size=(n_draws, n_groups, q))
    z = c.copy()
    for s in range(n_draws):
        for g in range(n_groups):
            slope = beta[s, 1:].copy()  # the group's slope on each column of F[:, 1:]
            for a, k in enumerate(slope_idx, start=1):
                slope[k] = c[s, g, a]
            z[s, g, 0] = c[s, g, 0] + zbar[g] @ slope
    np.testing.assert_allclose(centered_coefs(z, beta, zbar, slope_idx), c, atol=1e-12)
    for s in range(n_draws):
        x = np.r_[beta[s], np.zeros(q), z[s].ravel()]
        got = np.empty((n_groups, q))
        _centered_coefs(x, p + q, p, slope_idx, zbar, got)
        np.testing.assert_allclose(got, c[s], atol=1e-12)


def test_exposure_may_be_one_number_and_scoring_without_it_warns():
    """A constant exposure is a float; a model fit with exposure and scored without
    it would compare counts with rates per unit of exposure: it warns."""
    from skhier.exceptions import MissingExposureWarning

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(8), 10)
    X = rng.normal(size=(80, 1))
    y = rng.poisson(2.0 * np.exp(0.3 * X[:, 0]))
    est = HierarchicalPoissonRegressor(draws=50, tune=50, chains=2, random_state=0)
    est.fit(X, y, groups=g, exposure=2.0)
    np.testing.assert_allclose(
        est.predict(X[:3], groups=g[:3], exposure=2.0),
        est.predict(X[:3], groups=g[:3], exposure=np.full(3, 2.0)),
    )
    with pytest.warns(MissingExposureWarning, match="exposure"):
        est.score(X, y, groups=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingExposureWarning)
        est.score(X, y, groups=g, exposure=2.0)


def test_several_factors_are_fit_by_the_explicit_model_and_one_factor_engines_say_so():
    est = HierarchicalPoissonRegressor(engine="nuts", draws=20, tune=20, chains=1)
    X = np.random.default_rng(0).normal(size=(40, 1))
    groups = np.column_stack([np.repeat(np.arange(4), 10), np.tile(np.arange(10), 4)])
    with pytest.raises(ValueError, match="fits one grouping factor.*picks 'explicit'"):
        est.fit(X, np.ones(40, dtype=int), groups=groups)


def test_convergence_remedies_name_only_the_models_own_parameters():
    """A count model has no noise SD: the tree-depth remedy must not talk of eps."""
    from skhier._posterior.diagnostics import warn_if_not_converged
    from skhier.exceptions import ConvergenceWarning

    conv = {"n_divergences": 0, "n_max_treedepth": 900, "n_chains": 4, "n_draws": 1000,
            "max_r_hat": 1.0, "min_ess_bulk": 2000.0}  # fmt: skip
    with pytest.warns(ConvergenceWarning) as record:
        warn_if_not_converged(conv, "nuts", noise=False)
    assert "eps" not in str(record[0].message) and "random_slopes" in str(record[0].message)
    with pytest.warns(ConvergenceWarning, match="sigma_a and eps"):
        warn_if_not_converged(conv, "collapsed", noise=True)
