"""Posterior summaries: the fast paths against their plain numpy definitions."""

from types import SimpleNamespace

import numpy as np
import pytest

from skhier._posterior import Posterior, _group_moments, quantiles


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
    np.testing.assert_array_equal(post.group_coef, want)
    np.testing.assert_array_equal(post.group_intercept, post.intercept[..., None] + ys * u[..., 0])
