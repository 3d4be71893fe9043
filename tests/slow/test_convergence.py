"""Convergence problems are detected and reported; the automatic choices avoid them."""

import warnings

import numpy as np
import pytest

from skhier import HierarchicalRegressor
from skhier._model.spec import choose_parametrization
from skhier.exceptions import ConvergenceWarning

pytestmark = pytest.mark.slow


def funnel_data(seed=0):
    """Many groups with 2 rows and tiny between-group spread: the centered funnel."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(60), 2)
    X = rng.normal(size=(len(g), 1))
    y = 0.05 * rng.standard_normal(60)[g] + X[:, 0] + rng.normal(0, 1, len(g))
    return X, y, g


def rich_data(seed=0):
    """Few groups with many rows each: groups are well determined."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(6), 300)
    X = rng.normal(size=(len(g), 1))
    y = 2.0 * rng.standard_normal(6)[g] + X[:, 0] + rng.normal(0, 0.5, len(g))
    return X, y, g


def test_automatic_parametrization_rule():
    X, y, g = funnel_data()
    assert choose_parametrization((y - y.mean()) / y.std(), g, 60) == "non-centered"
    X, y, g = rich_data()
    assert choose_parametrization((y - y.mean()) / y.std(), g, 6) == "centered"


def test_centered_funnel_is_reported_and_the_default_avoids_it():
    X, y, g = funnel_data()
    bad = HierarchicalRegressor(
        engine="explicit",
        parametrization="centered",
        random_slopes=None,
        target_accept=0.8,
        random_state=1,
    )
    with pytest.warns(ConvergenceWarning, match="divergent|r_hat|ESS"):
        bad.fit(X, y, groups=g)
    assert (
        bad.convergence_["n_divergences"] > 0
        or bad.convergence_["max_r_hat"] > 1.01
        or bad.convergence_["min_ess_bulk"] < 400
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        good = HierarchicalRegressor(random_slopes=None, random_state=1).fit(X, y, groups=g)
    with warnings.catch_warnings():  # PyMC's NUTS may still give a stray divergence or
        warnings.simplefilter("ignore", ConvergenceWarning)  # two (its version, the CPU)
        auto = HierarchicalRegressor(engine="explicit", random_slopes=None, random_state=1).fit(
            X, y, groups=g
        )
    assert good.convergence_["n_divergences"] == 0
    assert auto.parametrization_ == "non-centered"
    n_draws = auto.convergence_["n_chains"] * auto.convergence_["n_draws"]
    assert auto.convergence_["n_divergences"] <= 0.001 * n_draws  # the funnel's are gone
    assert auto.convergence_["max_r_hat"] < 1.01


def _epilepsy():
    import pandas as pd

    from skhier.datasets import load_epilepsy

    d = load_epilepsy()
    X = pd.DataFrame({"lbase": d["lbase"], "lage": d["lage"], "V4": d["V4"].astype(float),
                      "trt": (d["trt"] == "progabide").astype(float)})  # fmt: skip
    return X, d["y"], d["subject"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_defaults_converge_on_epilepsy(seed):
    """The bundled epilepsy counts with every default (a random slope on the 4th-visit
    indicator, one row per patient where it is 1): no ConvergenceWarning, r_hat <=
    1.01 and bulk ESS >= 400 (centered slopes gave r_hat up to 1.035, ESS 129)."""
    from skhier import HierarchicalPoissonRegressor

    X, y, g = _epilepsy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = HierarchicalPoissonRegressor(random_state=seed).fit(X, y, groups=g)
    assert est.convergence_["max_r_hat"] <= 1.01
    assert est.convergence_["min_ess_bulk"] >= 400


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_defaults_converge_without_slope_variation(family):
    """The over-specified model: counts with exposure, group SD 0.5 and no true random
    slope, fit with the default random slope (30 groups x 20 rows, 6 data sets):
    never a ConvergenceWarning."""
    from skhier import HierarchicalPoissonRegressor

    for seed in range(6):
        rng = np.random.default_rng(seed)
        g = np.repeat(np.arange(30), 20)
        x = rng.normal(size=g.size)
        expo = rng.uniform(0.5, 2.0, g.size)
        y = rng.poisson(expo * np.exp(0.5 + 0.5 * rng.normal(size=30)[g] + 0.3 * x))
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            est = HierarchicalPoissonRegressor(family=family, random_state=seed)
            est.fit(x[:, None], y, groups=g, exposure=expo)
        assert est.convergence_["max_r_hat"] <= 1.01, seed
