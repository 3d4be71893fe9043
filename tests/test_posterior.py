"""Posterior summaries: the fast paths against their plain numpy definitions."""

from types import SimpleNamespace

import numpy as np
import pytest

from skhier._posterior.group_draws import (
    _group_moments,
    full_blocks,
    kept_per_chain,
    kept_positions,
    quantiles,
)
from skhier._posterior.one_factor import Posterior


@pytest.mark.parametrize("probs", [[0.025, 0.975], [0.1, 0.5, 0.9], [0.0, 1.0], [0.3]])
@pytest.mark.parametrize("n", [1, 2, 7, 400])
def test_quantiles_equal_np_quantile(probs, n):
    rng = np.random.default_rng(n)
    draws = rng.normal(size=(n, 300, 2))
    draws[:, 3, 1] = 0.0
    draws[:, 4, 0] = np.inf
    draws[0, 5, 0] = np.nan
    draws[: n // 2, 6, 1] = -np.inf
    with np.errstate(invalid="ignore"):  # inf - inf, in both
        want = np.moveaxis(np.quantile(draws, probs, axis=0), 0, -1)
        got = quantiles(draws, probs, chunk=64)
    np.testing.assert_array_equal(got, want)
    assert quantiles(draws[:, 0, 0], probs).shape == (len(probs),)


def test_group_moments_equal_their_definition():
    rng = np.random.default_rng(0)
    intercepts = 100.0 + rng.normal(size=(500, 70))
    coefs = rng.normal(size=(500, 70, 3)) * [1.0, 0.01, 10.0]
    g = np.concatenate([intercepts[..., None], coefs], -1)
    centred = g - g.mean(axis=0)
    mean, cov = _group_moments(intercepts, coefs, chunk=16)
    np.testing.assert_array_equal(mean, g.mean(axis=0))
    want = np.einsum("sgi,sgj->gij", centred, centred) / 499
    np.testing.assert_allclose(cov, want, rtol=1e-12, atol=1e-15 * np.abs(want).max())


@pytest.mark.parametrize("slopes", [(0, 1, 2), (1,), ()])
def test_group_values_in_user_units(slopes):
    rng = np.random.default_rng(len(slopes))
    shape, k = (2, 5), len(slopes)
    draws = {
        "beta": rng.normal(size=shape + (4,)),
        "u": rng.normal(size=shape + (6, k + 1)),
        "tau": rng.uniform(0.1, 1, size=shape + (k + 1,)),
        "s": rng.uniform(0.1, 1, size=shape),
        "diverging": np.zeros(shape, bool),
        "max_treedepth": np.zeros(shape, bool),
    }
    scaling = SimpleNamespace(y_mean=3.0, y_scale=2.5, x_mean=rng.normal(size=3), x_scale=[1, 2, 4])
    scaling.x_scale = np.array(scaling.x_scale, dtype=float)
    post = Posterior.from_standardized(draws, SimpleNamespace(slope_idx=slopes), scaling)
    ys, u = scaling.y_scale, draws["u"]
    want = np.repeat(post.coef[..., None, :], 6, axis=-2)
    want[..., list(slopes)] += ys * u[..., 1:] / scaling.x_scale[list(slopes)]
    np.testing.assert_allclose(post.group_coef, want, rtol=1e-13, atol=1e-14)
    want_a = post.intercept[..., None] + ys * u[..., 0]
    np.testing.assert_allclose(post.group_intercept, want_a, rtol=1e-13, atol=1e-14)


def _standardized(rng, shape=(3, 40), n_groups=9, k=2):
    return {
        "beta": rng.normal(size=shape + (k + 1,)),
        "u": rng.normal(size=shape + (n_groups, k + 1)),
        "tau": rng.uniform(0.1, 1, size=shape + (k + 1,)),
        "s": rng.uniform(0.1, 1, size=shape),
        "diverging": np.zeros(shape, bool),
        "max_treedepth": np.zeros(shape, bool),
    }


_SCALING = SimpleNamespace(
    y_mean=3.0, y_scale=2.5, x_mean=np.array([0.5, -1.0]), x_scale=np.array([2.0, 4.0])
)


@pytest.mark.parametrize("store", ["all", 12, 1])
def test_reduced_group_draws_equal_those_of_every_draw(store):
    """Means, covariances and intervals of the group effects use every draw, block
    by block, whatever is kept; the kept draws are whole chains' evenly spread
    draws, and joint() aligns the population draws with them."""
    draws = _standardized(np.random.default_rng(0))
    spec = SimpleNamespace(slope_idx=(0, 1))
    full = Posterior.from_standardized(draws, spec, _SCALING, 0.9, "all")
    small = Posterior.from_standardized(
        dict(draws, u=full_blocks(draws["u"], max_bytes=8 * 120 * 3 * 2), n_groups=9),
        spec,
        _SCALING,
        0.9,
        store,
    )
    a, b = full.flat("group_intercept"), full.flat("group_coef")
    mean, cov = _group_moments(a, b)
    np.testing.assert_allclose(small.group_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(small.group_cov, cov, rtol=1e-10)
    np.testing.assert_allclose(small.interval("group_coef", 0.9), quantiles(b, [0.05, 0.95]))
    np.testing.assert_allclose(small.mean("group_intercept"), a.mean(axis=0))
    np.testing.assert_allclose(small.sd("group_intercept"), a.std(axis=0, ddof=1))
    n_kept = {"all": 40, 12: 4, 1: 1}[store]
    assert small.group_intercept.shape == (3, n_kept, 9)
    assert small.n_joint == 3 * n_kept and small.n_draws == 120
    pos = kept_positions(40, n_kept)
    np.testing.assert_array_equal(small.group_coef, full.group_coef[:, pos])
    np.testing.assert_array_equal(small.joint("noise_sd"), full.noise_sd[:, pos].ravel())
    np.testing.assert_array_equal(
        small.joint("group_intercept"), full.group_intercept[:, pos].reshape(-1, 9)
    )
    if n_kept < 3:  # ArviZ warns about more chains than draws
        return
    idata = small.to_inference_data(["x0", "x1"], list("abcdefghi"))
    assert idata.posterior.sizes["draw"] == n_kept
    np.testing.assert_array_equal(idata.posterior["eps"].values, full.noise_sd[:, pos])


def test_kept_draws_of_auto_are_bounded():
    """ "auto" keeps every draw of a small model and at most 2**24 numbers (but at
    least 64 draws) of a large one; an int is a total over the chains."""
    assert kept_per_chain("auto", 4, 1000, 500, 3) == 1000
    per_chain = kept_per_chain("auto", 4, 1000, 10_000, 3)
    assert 4 * per_chain * 10_000 * 3 <= 2**24 + 4 * 10_000 * 3
    assert kept_per_chain("auto", 4, 1000, 10**6, 3) == 16
    assert kept_per_chain(100, 4, 1000, 10, 3) == 25
    assert kept_per_chain(10**6, 4, 1000, 10, 3) == 1000
    pos = kept_positions(1000, 16)
    assert len(np.unique(pos)) == 16 and pos[0] == 0 and pos[-1] < 1000


@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
def test_store_draws_bounds_the_model_and_keeps_predictions_exact():
    """A model keeping 40 draws predicts exactly as one keeping all (means and
    return_std come from every draw), reports the same group intervals, is
    smaller, and its sample_y/idata_ use the kept draws."""
    import pickle

    from skhier import HierarchicalRegressor
    from skhier.datasets import make_hierarchical_regression

    X, y, g, _ = make_hierarchical_regression(30, 8, 2, random_state=1)
    kw = dict(draws=100, tune=100, chains=2, random_state=3)
    full = HierarchicalRegressor(**kw, store_draws="all").fit(X, y, groups=g)
    small = HierarchicalRegressor(**kw, store_draws=40).fit(X, y, groups=g)
    want, got = (
        full.predict(X, groups=g, return_std=True),
        small.predict(X, groups=g, return_std=True),
    )
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full.group_coef_interval_, small.group_coef_interval_)
    assert small.posterior_.group_coef.shape == (2, 20, 30, 2)
    assert len(pickle.dumps(small)) < 0.5 * len(pickle.dumps(full))
    assert small.sample_y(X[:5], groups=g[:5], n_samples=7, random_state=0).shape == (5, 7)
    assert small.idata_.posterior.sizes["draw"] == 20
    table = small.summary(group_diagnostics=True)
    assert table.loc["a[0]", "r_hat"] > 0 and np.isnan(small.summary().loc["a[0]", "r_hat"])
    np.testing.assert_allclose(table.loc["a[0]", "mean"], full.group_intercept_[0])


@pytest.mark.parametrize("path", ["kernel", "numpy"])
@pytest.mark.parametrize("n_draws", [1, 2, 3, 7, 400])
@pytest.mark.parametrize("order", ["random", "ascending", "descending", "ties"])
def test_reduced_intervals_equal_np_quantile(n_draws, order, path, monkeypatch):
    """The reduction's one-pass tail order statistics (numba kernel), and its numpy
    path for small blocks, give np.quantile's numbers."""
    from skhier._posterior import group_draws as _group_draws
    from skhier._posterior.group_draws import reduce_group_draws

    monkeypatch.setattr(_group_draws, "NUMPY_MAX_VALUES", -1 if path == "kernel" else 2**40)
    rng = np.random.default_rng(n_draws)
    u = rng.normal(size=(5, 2, n_draws))
    if order != "random":
        u = np.sort(u, axis=-1)[..., :: 1 if order == "ascending" else -1]
    if order == "ties":
        u = np.round(u, 1)
    pop = np.zeros((1, n_draws))
    out = reduce_group_draws(
        [(0, u)], pop, np.zeros((1, n_draws, 1)), 1.0, [1.0], [0], np.arange(n_draws), 0.9
    )
    want = np.moveaxis(np.quantile(u, [0.05, 0.95], axis=-1), 0, -1)
    np.testing.assert_allclose(out["bounds"], want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(out["mean"], u.mean(-1), rtol=1e-12, atol=1e-15)


def test_reduction_numpy_path_equals_the_kernel(monkeypatch):
    """Small blocks are reduced in numpy (no kernel to compile): the same means,
    covariances, intervals and kept draws as the kernel, with a coefficient that
    has no group effect, scales and several chains."""
    from skhier._posterior import group_draws as _group_draws

    rng = np.random.default_rng(3)
    n_chains, n_draws, n_groups = 2, 50, 9
    u = rng.normal(size=(n_groups, 2, n_chains * n_draws))
    intercept = rng.normal(size=(n_chains, n_draws))
    coef = rng.normal(size=(n_chains, n_draws, 2))
    args = (intercept, coef, 3.0, [0.5], [1], np.array([0, 7, 31]), 0.8)
    outs = []
    for limit in (-1, 2**40):
        monkeypatch.setattr(_group_draws, "NUMPY_MAX_VALUES", limit)
        blocks = [(0, u[:4]), (4, u[4:])]
        outs.append(_group_draws.reduce_group_draws(blocks, *args))
    for key in outs[0]:
        np.testing.assert_allclose(outs[1][key], outs[0][key], rtol=1e-12, atol=1e-13, err_msg=key)
