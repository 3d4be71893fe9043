"""The workflow methods against references: ``to_pymc``'s model sampled by PyMC
has skhier's posterior (one factor and several), and PSIS-LOO ranks the model
that generated simulated data above wrong ones."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from skhier import POPULATION, HierarchicalClassifier, HierarchicalRegressor
from skhier.datasets import load_sleepstudy

pytestmark = pytest.mark.slow


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _pymc_draws(model, seed=0):
    import pymc as pm

    with model:
        return _quiet(
            pm.sample,
            draws=1000,
            tune=1000,
            chains=2,
            cores=1,
            random_seed=seed,
            target_accept=0.9,
            progressbar=False,
            compute_convergence_checks=False,
            nuts_sampler="nutpie",
        ).posterior


def _agree(ours, ref, k=0.2):
    """Posterior means within ``k`` posterior SDs, SDs within 20%."""
    ours, ref = np.asarray(ours).reshape(-1, *np.shape(ours)[2:]), np.asarray(ref)
    ref = ref.reshape(-1, *ref.shape[2:])
    sd = ref.std(axis=0)
    assert np.all(np.abs(ours.mean(axis=0) - ref.mean(axis=0)) < k * sd + 1e-9)
    np.testing.assert_allclose(ours.std(axis=0), sd, rtol=0.2)


def test_to_pymc_has_skhiers_posterior_sleepstudy():
    d = load_sleepstudy()
    X, y, g = d[["Days"]], d["Reaction"], d["Subject"]
    est = _quiet(HierarchicalRegressor(random_state=0).fit, X, y, groups=g)
    ref = _pymc_draws(est.to_pymc(X, y, groups=g))
    post = est.idata_.posterior
    for name in ("mu_a", "mu_b", "sigma_a", "eps"):
        _agree(post[name].values, ref[name].values)
    _agree(post["sigma_b"].values[..., 0], ref["sigma_b"].values[..., 0])
    _agree(post["a"].values, ref["a"].values)


def test_to_pymc_several_factors_has_the_gibbs_posterior():
    rng = np.random.default_rng(4)
    n = 400
    groups = pd.DataFrame({"s": rng.integers(0, 12, n), "d": rng.integers(0, 8, n)})
    X = rng.normal(size=(n, 1))
    y = 2 + 0.5 * X[:, 0] + rng.normal(0, 0.8, 12)[groups["s"]]
    y = y + rng.normal(0, 0.5, 8)[groups["d"]] + rng.normal(0, 1.0, n)
    kw = {"nested": False, "random_slopes": None, "random_state": 0, "draws": 2000}
    est = _quiet(HierarchicalRegressor(**kw).fit, X, y, groups=groups)
    ref = _pymc_draws(est.to_pymc(X, y, groups=groups))
    post = est.idata_.posterior
    _agree(post["mu_a"].values, ref["mu_a"].values)
    _agree(post["mu_b"].values, ref["mu_b"].values)
    _agree(post["eps"].values, ref["eps"].values)
    for f in ("s", "d"):
        _agree(post[f"sigma[{f}]"].values[..., 0], ref[f"sigma_a[{f}]"].values)
        _agree(post[f"u[{f}]"].values[..., 0], ref[f"a[{f}]"].values, k=0.25)


def test_loo_ranks_the_true_model_first_on_simulated_data():
    """Data from random intercepts and slopes: that model beats intercepts only,
    which beats complete pooling; for binary outcomes partial pooling beats
    complete pooling."""
    rng = np.random.default_rng(0)
    n_groups, per = 30, 12
    g = np.repeat(np.arange(n_groups), per)
    X = rng.normal(size=(len(g), 1))
    a, b = rng.normal(0, 1.0, n_groups), rng.normal(0, 0.8, n_groups)
    y = 1 + a[g] + (0.5 + b[g]) * X[:, 0] + rng.normal(0, 0.5, len(g))
    kw = {"random_state": 0, "draws": 500, "chains": 2}
    fits = {
        "true": (HierarchicalRegressor(**kw), g),
        "intercepts": (HierarchicalRegressor(random_slopes=None, **kw), g),
        "complete": (HierarchicalRegressor(**kw), POPULATION),
    }
    loo = {}
    for name, (est, groups) in fits.items():
        _quiet(est.fit, X, y, groups=groups)
        loo[name] = est.compute_log_likelihood(X, y, groups=groups)
    table = _quiet(az.compare, loo)
    assert list(table.index) == ["true", "intercepts", "complete"]
    assert table.loc["intercepts", "elpd_diff"] > 3 * table.loc["intercepts", "dse"]

    yb = (rng.random(len(g)) < expit(-0.5 + 1.5 * a[g] + 0.7 * X[:, 0])).astype(int)
    loo = {}
    for name, groups in {"partial": g, "complete": POPULATION}.items():
        clf = _quiet(HierarchicalClassifier(**kw).fit, X, yb, groups=groups)
        loo[name] = clf.compute_log_likelihood(X, yb, groups=groups)
    table = _quiet(az.compare, loo)
    assert table.index[0] == "partial"
    assert table.loc["complete", "elpd_diff"] > 3 * table.loc["complete", "dse"]
