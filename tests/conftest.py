import warnings

import numpy as np
import pytest

from skhier import HierarchicalRegressor
from skhier.datasets import load_sleepstudy, make_hierarchical_regression
from skhier.exceptions import ConvergenceWarning

# Tiny sampler settings for fast unit tests; statistical tests use real settings.
FAST = {"draws": 150, "tune": 150, "chains": 2, "random_state": 0}


def fast_estimator(**kwargs):
    params = {**FAST, **kwargs}
    return HierarchicalRegressor(**params)


def assert_same_posterior(a, b, X, groups, scale=1.0, k=0.4):
    """Two fits of the same model agree up to Monte Carlo error.

    MCMC trajectories are chaotic: a last-bit change in the input (row order,
    memory layout, units) gives a different chain with the same stationary
    distribution, so compare predictions in units of their posterior SD.
    """
    mean_a, sd_a = a.predict(X, groups=groups, return_std=True)
    mean_b = b.predict(X * scale, groups=groups) / scale
    assert np.all(np.abs(mean_a - mean_b) < k * sd_a), np.max(np.abs(mean_a - mean_b) / sd_a)


def assert_same_draws(a, b, names, rtol=None):
    """Two fits' posteriors agree: means within 4 Monte Carlo SEs (from the smaller
    min bulk ESS) and SDs within ``rtol`` (per name; default 0.1)."""
    ess = min(a.convergence_["min_ess_bulk"], b.convergence_["min_ess_bulk"])
    for name in names:
        da, db = a.posterior_.flat(name), b.posterior_.flat(name)
        mc_se = np.sqrt(da.var(0) / ess + db.var(0) / ess)
        assert np.all(np.abs(da.mean(0) - db.mean(0)) < 4 * mc_se + 1e-12), name
        tol = (rtol or {}).get(name, 0.1)
        # (atol: a quantity fixed by construction, a correlation's diagonal, has SD 0 in
        # one engine and rounding noise of 1e-16 in another)
        np.testing.assert_allclose(db.std(0), da.std(0), rtol=tol, atol=1e-12, err_msg=name)


@pytest.fixture(scope="session")
def sim_data():
    return make_hierarchical_regression(n_groups=12, n_per_group=15, n_features=2, random_state=1)


@pytest.fixture(scope="session")
def fitted(sim_data):
    X, y, groups, _ = sim_data
    est = HierarchicalRegressor(draws=500, tune=500, chains=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # small settings, shared fixture
        return est.fit(X, y, groups=groups)


@pytest.fixture(scope="session")
def sleepstudy():
    return load_sleepstudy()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def predict_in_fresh_process(code):
    """Run ``code`` (which prints ``repr(list)`` of predictions and then the heavy
    modules it imported) in a new interpreter; return (predictions, heavy modules)."""
    import subprocess
    import sys

    code += (
        '\nheavy = [m for m in ("pymc", "pytensor", "numba", "nutpie") if m in sys.modules]'
        "\nprint(repr(pred.tolist()), heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    pred_repr, heavy = out.rsplit(" ", 1)
    return eval(pred_repr), heavy


@pytest.fixture
def python_sigint():
    """Tests that deliver Ctrl-C need Python's own SIGINT handling in this process:
    code run by earlier tests of a long session (a third-party library's worker
    set-up, say) can leave SIGINT ignored or blocked, and child processes inherit
    both.  Restore Python's default handler and unblock the signal first."""
    import signal

    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield

