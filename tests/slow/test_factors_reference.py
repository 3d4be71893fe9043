"""Several grouping factors against references: statsmodels MixedLM (REML), the
explicit PyMC model, the collapsed engine (one factor), and interval coverage on
simulated nested and crossed data."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from skhier import HierarchicalRegressor
from skhier.datasets import load_egsingle, make_hierarchical_regression
from tests.conftest import assert_same_draws
from tests.test_factors import crossed_data

pytestmark = pytest.mark.slow


def _mixedlm(formula, df, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.mixedlm(formula, df, **kwargs).fit(reml=True)


def test_nested_egsingle_agrees_with_mixedlm():
    """``math ~ year + (year | schoolid) + (1 | schoolid:childid)`` on real data:
    7,230 rows, 60 schools, 1,721 children."""
    data = load_egsingle()
    fit = _mixedlm(
        "math ~ year", data, groups="schoolid", re_formula="~year",
        vc_formula={"child": "0 + C(childid)"},
    )  # fmt: skip
    est = HierarchicalRegressor(
        nested=[("schoolid", "childid")], random_slopes={"schoolid": ["year"]}, random_state=0
    ).fit(data[["year"]], data["math"], groups=data[["schoolid", "childid"]])
    school, child = est.group_effects_["schoolid"], est.group_effects_["childid"]
    cov = fit.cov_re.to_numpy()
    assert school.intercept_sd == pytest.approx(np.sqrt(cov[0, 0]), rel=0.1)
    assert school.coef_sd[0] == pytest.approx(np.sqrt(cov[1, 1]), rel=0.15)
    assert child.intercept_sd == pytest.approx(np.sqrt(fit.vcomp[0]), rel=0.05)
    assert est.noise_sd_ == pytest.approx(np.sqrt(fit.scale), rel=0.05)
    fe = fit.fe_params.to_numpy()
    np.testing.assert_array_less(
        np.abs(np.r_[est.intercept_, est.coef_] - fe), 0.5 * fit.bse_fe.to_numpy()
    )
    conv = est.convergence_  # nested Gaussian: importance sampling, checked by k_hat
    assert conv["pareto_k"] < 0.7 if conv["method"] == "importance" else conv["max_r_hat"] < 1.01


def test_crossed_agrees_with_mixedlm():
    """``y ~ x1 + x2 + (1 | student) + (1 | lecturer)``; MixedLM with one group and a
    variance component per factor (small enough for its dense algebra)."""
    X, y, g = crossed_data(seed=4, n_a=60, n_b=40, n_rows=2000)
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], **g, "one": 1})
    fit = _mixedlm(
        "y ~ x1 + x2", df, groups="one", re_formula="0",
        vc_formula={"student": "0 + C(student)", "lecturer": "0 + C(lecturer)"},
    )  # fmt: skip
    est = HierarchicalRegressor(nested=False, random_slopes=None, random_state=0)
    est.fit(X, y, groups=g)
    names = list(fit.model.exog_vc.names)
    vc = dict(zip(names, np.sqrt(fit.vcomp), strict=True))
    assert est.group_effects_["student"].intercept_sd == pytest.approx(vc["student"], rel=0.1)
    assert est.group_effects_["lecturer"].intercept_sd == pytest.approx(vc["lecturer"], rel=0.15)
    assert est.noise_sd_ == pytest.approx(np.sqrt(fit.scale), rel=0.03)
    fe = fit.fe_params.to_numpy()
    np.testing.assert_array_less(
        np.abs(np.r_[est.intercept_, est.coef_] - fe), 0.5 * fit.bse_fe.to_numpy()
    )
    assert est.convergence_["max_r_hat"] < 1.01


@pytest.mark.parametrize("correlated", [False, True])
def test_gibbs_and_collapsed_engines_give_the_same_posterior(correlated):
    """One factor: the Gibbs engine (the sampler of several factors) agrees with the
    collapsed engine, draw for draw in distribution."""
    X, y, g, _ = make_hierarchical_regression(15, 12, 2, random_state=5)
    kwargs = {"draws": 2000, "tune": 500, "chains": 4, "random_state": 0}
    kwargs["correlated_effects"] = correlated
    a = HierarchicalRegressor(**kwargs).fit(X, y, groups=g)
    b = HierarchicalRegressor(engine="gibbs", **kwargs).fit(X, y, groups=g)
    names = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd"]
    assert_same_draws(a, b, [*names, "group_intercept", "group_coef"])
    if correlated:  # the off-diagonal correlations (the diagonal is 1 up to rounding)
        rows, cols = np.tril_indices(3, k=-1)
        ca = a.posterior_.flat("group_corr")[:, rows, cols]
        cb = b.posterior_.flat("group_corr")[:, rows, cols]
        ess = min(a.convergence_["min_ess_bulk"], b.convergence_["min_ess_bulk"])
        se = np.sqrt(ca.var(0) / ess + cb.var(0) / ess)
        assert np.all(np.abs(ca.mean(0) - cb.mean(0)) < 4 * se)
        np.testing.assert_allclose(cb.std(0), ca.std(0), rtol=0.1)


def _explicit_crossed_nested(X, y, codes, nested):
    """The explicit PyMC model on skhier's standardized scale (non-centred), one
    random intercept per factor; returns posterior draws of the SDs in y's units."""
    import pymc as pm

    xm, xs, ym, ysd = X.mean(0), X.std(0), y.mean(), y.std()
    F = (X - xm) / xs
    with pm.Model():
        beta0 = pm.Normal("beta0", 0, 10)
        beta = pm.Normal("beta", 0, 1.5, shape=X.shape[1])
        taus = []
        mean = beta0 + pm.math.dot(F, beta)
        for f in range(codes.shape[1]):
            n = int(codes[:, f].max()) + 1
            tau = pm.Exponential(f"tau{f}", 1.0)
            z = pm.Normal(f"z{f}", 0, 1, shape=n)
            mean = mean + tau * z[codes[:, f]]
            taus.append(tau)
        s = pm.Exponential("s", 1.0)
        pm.Normal("y", mean, s, observed=(y - ym) / ysd)
        idata = pm.sample(
            draws=2000, tune=1000, chains=4, cores=2, random_seed=1, progressbar=False,
            target_accept=0.95,
        )  # fmt: skip
    post = idata.posterior
    return {k: ysd * post[k].to_numpy().ravel() for k in ["tau0", "tau1", "s"]}


@pytest.mark.parametrize("design", ["nested", "crossed"])
def test_gibbs_engine_matches_the_explicit_pymc_model(design):
    rng = np.random.default_rng(11)
    n = 300
    if design == "nested":
        outer = rng.integers(0, 8, n)
        inner = rng.integers(0, 4, n)
        groups = pd.DataFrame({"outer": outer, "inner": inner})
        codes = np.column_stack([outer, outer * 4 + inner])
        nested = [("outer", "inner")]
    else:
        groups = pd.DataFrame({"a": rng.integers(0, 12, n), "b": rng.integers(0, 9, n)})
        codes, nested = groups.to_numpy(), False
    X = rng.normal(size=(n, 1))
    y = 1 + 0.5 * X[:, 0] + rng.normal(0, 0.6, 64)[codes[:, 1]] + rng.normal(0, 0.9, 12)[
        codes[:, 0]
    ] + rng.normal(0, 1, n)  # fmt: skip
    codes = np.column_stack([np.unique(c, return_inverse=True)[1] for c in codes.T])
    est = HierarchicalRegressor(
        nested=nested, random_slopes=None, draws=4000, tune=500, random_state=0
    ).fit(X, y, groups=groups)
    ref = _explicit_crossed_nested(X, y, codes, nested)
    ours = [fac.sd[..., 0].ravel() for fac in est.posterior_.factors]
    ours.append(est.posterior_.noise_sd.ravel())
    for mine, theirs, name in zip(ours, [ref["tau0"], ref["tau1"], ref["s"]], "abs", strict=True):
        se = np.sqrt(mine.var() / 1000 + theirs.var() / 1000)  # ESS >= 1000 on both sides
        assert abs(mine.mean() - theirs.mean()) < 4 * se, name
        assert mine.std() == pytest.approx(theirs.std(), rel=0.12), name


@pytest.mark.parametrize("design", ["nested", "crossed"])
def test_interval_coverage_of_group_effects(design):
    """Over 20 simulated data sets, the 50% and 90% intervals of every level's effect
    cover the true effect at their nominal rates (pooled over levels)."""
    hits = {0.5: [], 0.9: []}
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        n = 600
        a, b = rng.integers(0, 30, n), rng.integers(0, 6, n)
        if design == "nested":
            groups, nested = pd.DataFrame({"a": a, "b": b}), [("a", "b")]
            inner = a * 6 + b
        else:
            groups, nested, inner = pd.DataFrame({"a": a, "b": b}), False, b
        sd_a, sd_b = rng.uniform(0.2, 1.0, 2)
        u_a = rng.normal(0, sd_a, 30)
        u_b = rng.normal(0, sd_b, inner.max() + 1)
        X = rng.normal(size=(n, 1))
        y = 0.3 * X[:, 0] + u_a[a] + u_b[inner] + rng.normal(0, 1, n)
        for prob in hits:
            est = HierarchicalRegressor(
                nested=nested, random_slopes=None, draws=500, tune=300, chains=2,
                random_state=seed, interval_prob=prob,
            )  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y, groups=groups)
            eff = est.group_effects_["a"]
            lo, hi = eff.intercept_interval.T
            hits[prob].append(np.mean((u_a >= lo) & (u_a <= hi)))
    for prob, h in hits.items():
        # 20 x 30 levels, correlated within a data set: allow +-0.06
        assert abs(np.mean(h) - prob) < 0.06, (prob, np.mean(h))


@pytest.mark.parametrize("design", ["nested", "crossed"])
def test_sbc_ranks_are_uniform(design):
    """Simulation-based calibration on the raw scale (``standardize=False``, so the
    priors are those of the simulation): the rank of each true SD, noise SD and slope
    among 99 posterior draws is uniform."""
    from scipy import stats

    rng = np.random.default_rng(77)
    names = ["tau_a", "tau_b", "s", "slope"]
    ranks = {n: [] for n in names}
    for rep in range(100):
        n = 240
        a, b = rng.integers(0, 12, n), rng.integers(0, 5, n)
        inner = a * 5 + b if design == "nested" else b
        theta = {"tau_a": rng.exponential(1.0), "tau_b": rng.exponential(1.0)}
        theta["s"], theta["slope"] = rng.exponential(1.0), rng.normal(0, 1.5)
        X = rng.normal(size=(n, 1))
        y = rng.normal(0, 10) + theta["slope"] * X[:, 0]
        y = y + rng.normal(0, theta["tau_a"], 12)[a] + rng.normal(0, theta["tau_b"], 60)[inner]
        y = y + rng.normal(0, theta["s"], n)
        est = HierarchicalRegressor(
            nested=[("a", "b")] if design == "nested" else False, random_slopes=None,
            standardize=False, draws=500, tune=200, chains=2, random_state=rep,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y, groups=pd.DataFrame({"a": a, "b": b}))
        post = est.posterior_
        draws = {
            "tau_a": post.factors[0].sd[..., 0].ravel(),
            "tau_b": post.factors[1].sd[..., 0].ravel(),
            "s": post.noise_sd.ravel(),
            "slope": post.coef[..., 0].ravel(),
        }
        idx = np.linspace(0, len(draws["s"]) - 1, 99).astype(int)
        for name in names:
            ranks[name].append(int(np.sum(draws[name][idx] < theta[name])))
    for name, r in ranks.items():
        counts = np.histogram(r, bins=10, range=(0, 100))[0]
        assert stats.chisquare(counts).pvalue > 0.001, (name, counts)
