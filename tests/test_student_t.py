"""Student-t noise: the augmented engine's pieces against exact references, and
the estimator's behaviour (robustness, predictive t noise, attributes, errors)."""

import math
import pickle

import numpy as np
import pytest
from scipy import integrate, stats

from skhier import HierarchicalRegressor
from skhier._engines.augmented import kernels as aug
from skhier._engines.collapsed.reference import log_marginal, sufficient_stats
from skhier._model.spec import ModelSpec, Scaling, design
from tests.conftest import fast_estimator

# tiny sampler settings: convergence is not under test here
pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")


def _data(n_groups=15, n_per=40, df=3.0, outliers=0.0, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(len(groups), 2))
    a = rng.normal(0, 1.0, n_groups)
    b = rng.normal(0, 0.3, n_groups)
    y = 1 + a[groups] + (2 + b[groups]) * X[:, 0] - X[:, 1] + 0.5 * rng.standard_t(df, len(groups))
    bad = rng.random(len(y)) < outliers
    y[bad & (X[:, 0] > 0)] -= 12.0
    return X, y, groups


def _spec(correlated=True):
    return ModelSpec(
        n_features=2,
        slope_idx=(0,),
        prior_intercept_sd=10.0,
        prior_coef_sd=1.5,
        prior_group_sd=1.0,
        prior_noise_sd=1.0,
        engine="augmented",
        parametrization="centered",
        correlated=correlated,
        likelihood="student_t",
    )


def test_weighted_stats_are_the_stats_of_sqrt_w_scaled_rows():
    X, y, g = _data()
    spec = _spec()
    F, Z, ys = design(X, y, spec, Scaling.fit(X, y, True))
    w = np.random.default_rng(1).gamma(2.0, 0.5, len(y))
    zz, zw, ww = np.zeros((15, 2, 2)), np.zeros((15, 2, 4)), np.zeros((4, 4))
    aug.weighted_stats(F, Z, ys, g, w, zz, zw, ww)
    r = np.sqrt(w)
    ref = sufficient_stats(F * r[:, None], Z * r[:, None], ys * r, g, 15)
    np.testing.assert_allclose(zz, ref.zz, rtol=1e-12)
    np.testing.assert_allclose(zw, ref.zw, rtol=1e-12)
    np.testing.assert_allclose(ww, ref.ww, rtol=1e-12)


def test_weighted_collapsed_density_is_the_heteroscedastic_gaussian():
    """Given weights, the collapsed density on weighted stats is the Gaussian model
    with per-row variances s^2 / w_i (up to 1/2 sum log w, constant in the parameters)."""
    rng = np.random.default_rng(2)
    n_groups, n_per = 4, 5
    g = np.repeat(np.arange(n_groups), n_per)
    X = rng.normal(size=(len(g), 2))
    y = rng.normal(size=len(g))
    spec = _spec()
    F, Z, ys = design(X, y, spec, Scaling.fit(X, y, True))
    w = rng.gamma(2.0, 0.5, len(g))
    r = np.sqrt(w)
    st = sufficient_stats(F * r[:, None], Z * r[:, None], ys * r, g, n_groups)
    chol_cov = np.array([[[0.8, 0.0], [0.3, 0.5]]])
    s = 0.7
    sigma = chol_cov[0] @ chol_cov[0].T
    zblock = np.zeros((len(g), len(g)))
    for k in range(n_groups):
        rows = g == k
        zblock[np.ix_(rows, rows)] = Z[rows] @ sigma @ Z[rows].T
    s0 = np.diag(spec.beta_prior_sd**2)
    cov = F @ s0 @ F.T + zblock + np.diag(s**2 / w)
    dense = stats.multivariate_normal(np.zeros(len(g)), cov).logpdf(ys)
    collapsed = log_marginal(st, chol_cov, np.array([s]), spec.beta_prior_sd)[0]
    np.testing.assert_allclose(collapsed + 0.5 * np.log(w).sum(), dense, rtol=1e-10)


def test_noise_conditional_is_prior_times_student_t_likelihood():
    resid = np.random.default_rng(3).standard_t(4, 300) * 0.6
    rate = 1.3

    def reference(log_s, e):
        s, nu = math.exp(log_s), 1.0 + math.exp(e)
        prior = stats.expon(scale=1 / rate).logpdf(s) + log_s
        prior += stats.gamma(2.0, scale=10.0).logpdf(nu) + e
        return prior + stats.t(nu, scale=s).logpdf(resid).sum()

    points = [(-0.5, 1.0), (0.2, 2.5), (-1.0, -0.5)]
    ones = np.ones(len(resid))
    diffs = [
        aug.log_noise_conditional(ls, e, resid, ones, rate) - reference(ls, e)
        for ls, e in points
    ]
    np.testing.assert_allclose(diffs, diffs[0], atol=1e-8)  # equal up to a constant
    # frequency weights: the same as repeating each residual that often
    freq = np.random.default_rng(4).integers(1, 4, len(resid)).astype(float)
    rep = np.repeat(resid, freq.astype(int))
    one = np.ones(len(rep))
    diffs = [
        aug.log_noise_conditional(ls, e, resid, freq, rate)
        - aug.log_noise_conditional(ls, e, rep, one, rate)
        for ls, e in points
    ]
    np.testing.assert_allclose(diffs, 0.0, atol=1e-8)


def test_rescale_move_draws_its_exact_conditional():
    """c ~ c^(n nu/2 - 1/2) exp(-c nu sum(w)/2 - rate s sqrt(c)): mean and SD of the
    draws match the density integrated numerically."""
    n, nu, s, rate = 30, 4.0, 1.5, 2.0
    w0 = np.random.default_rng(4).gamma(nu / 2, 2 / nu, n)

    def log_dens(c):
        return (n * nu / 2 - 0.5) * math.log(c) - c * nu * w0.sum() / 2 - rate * s * c**0.5

    top = max(log_dens(c) for c in np.linspace(0.2, 3, 200))
    mass = [
        integrate.quad(lambda c, k=k: c**k * math.exp(log_dens(c) - top), 0, 10)[0]
        for k in (0, 1, 2)
    ]
    mean = mass[1] / mass[0]
    sd = math.sqrt(mass[2] / mass[0] - mean**2)
    rng = np.random.default_rng(5)
    draws = np.array([aug.rescale_move(w0.copy(), s, nu, float(n), rate, rng) for _ in range(4000)])
    assert abs(draws.mean() - mean) < 4 * sd / math.sqrt(4000)
    assert abs(draws.std() - sd) < 0.05 * sd


def test_weights_draw_their_gamma_conditional():
    rng = np.random.default_rng(6)
    r = np.full(20000, 1.7)
    w = np.empty_like(r)
    aug.draw_weights(r, 5.0, np.ones_like(r), w, rng)
    ref = stats.gamma(3.0, scale=2.0 / (5.0 + 1.7**2))
    assert stats.kstest(w, ref.cdf).pvalue > 1e-3
    # a row of frequency weight 3: the sum of three copies' weights
    aug.draw_weights(r, 5.0, np.full_like(r, 3.0), w, rng)
    assert stats.kstest(w, stats.gamma(9.0, scale=2.0 / (5.0 + 1.7**2)).cdf).pvalue > 1e-3


def test_student_t_resists_outliers_that_bias_the_gaussian_model():
    X, y, g = _data(n_groups=20, n_per=40, df=50, outliers=0.08, seed=7)
    t = fast_estimator(likelihood="student_t", draws=300, tune=300).fit(X, y, groups=g)
    gauss = fast_estimator(draws=300, tune=300).fit(X, y, groups=g)
    assert t.engine_ == "augmented"
    lo, hi = t.coef_interval_[0]
    assert lo < 2.0 < hi, t.coef_interval_
    assert abs(t.coef_[0] - 2.0) < 0.3 * abs(gauss.coef_[0] - 2.0)
    assert t.noise_df_ < 10  # gross outliers: heavy tails learned
    assert t.noise_sd_ < gauss.noise_sd_


def test_student_t_predictive_noise_is_t_and_attributes_are_reported():
    X, y, g = _data(seed=8)
    est = fast_estimator(likelihood="student_t").fit(X, y, groups=g)
    assert 1.0 < est.noise_df_ < np.inf
    assert est.noise_df_interval_[0] < est.noise_df_ < est.noise_df_interval_[1]
    table = est.summary(group_level=False)
    assert "nu" in table.index and np.isfinite(table.loc["nu", "r_hat"])
    assert "nu" in est.idata_.posterior
    # predictive draws: location-scale t around the group mean, per posterior draw
    draws = est.sample_y(np.zeros((1, 2)), groups=[0], n_samples=20000, random_state=0)[0]
    mean = est.predict(np.zeros((1, 2)), groups=[0])[0]
    kurt = stats.kurtosis(draws - mean)
    assert kurt > 1.0  # Gaussian predictive draws would give about 0
    inner = est.predict_interval(np.zeros((1, 2)), groups=[0], prob=0.5)[0]
    outer = est.predict_interval(np.zeros((1, 2)), groups=[0], prob=0.99)[0]
    # heavy tails: the 99% interval is far wider than a Gaussian's 3.8 x the 50% one
    assert (outer[1] - outer[0]) > 4.5 * (inner[1] - inner[0])


def test_gaussian_model_reports_infinite_df_and_no_nu_row():
    X, y, g = _data(seed=9)
    est = fast_estimator().fit(X, y, groups=g)
    assert est.noise_df_ == np.inf
    assert np.all(est.noise_df_interval_ == np.inf)
    assert "nu" not in est.summary(group_level=False).index
    assert "nu" not in est.idata_.posterior


def test_student_t_same_seed_same_posterior_and_pickles():
    X, y, g = _data(seed=10)
    a = fast_estimator(likelihood="student_t").fit(X, y, groups=g)
    b = fast_estimator(likelihood="student_t").fit(X, y, groups=g)
    np.testing.assert_array_equal(a.posterior_.noise_df, b.posterior_.noise_df)
    np.testing.assert_array_equal(a.posterior_.group_coef, b.posterior_.group_coef)
    loaded = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(
        loaded.predict_interval(X[:5], groups=g[:5]), a.predict_interval(X[:5], groups=g[:5])
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"engine": "collapsed"}, "cannot fit likelihood='student_t'"),
        ({"inference": "laplace"}, "inference='laplace' needs the collapsed engine"),
    ],
)
def test_student_t_with_an_engine_that_cannot_fit_it_raises(params, match):
    X, y, g = _data(seed=11)
    with pytest.raises(ValueError, match=match):
        HierarchicalRegressor(likelihood="student_t", **params).fit(X, y, groups=g)


def test_augmented_engine_with_gaussian_noise_raises():
    X, y, g = _data(seed=12)
    with pytest.raises(ValueError, match="engine='augmented' cannot fit likelihood='normal'"):
        HierarchicalRegressor(engine="augmented").fit(X, y, groups=g)


def test_explicit_model_has_a_student_t_likelihood():
    from skhier._engines.pymc import build_model

    X, y, g = _data(n_groups=4, n_per=5, seed=13)
    spec = _spec()
    model = build_model(X, y, g, 4, spec, Scaling.fit(X, y, True))
    assert "nu" in model.named_vars
    assert type(model["y"].owner.op).__name__.lower().startswith("studentt")
