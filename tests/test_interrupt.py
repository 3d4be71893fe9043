"""Ctrl-C during a fit: KeyboardInterrupt reaches the caller within seconds, for
every engine and at several moments; the estimator is left as it was (a fitted
model keeps its fit, an unfitted one stays unfitted); no thread or child process
is left running; the next fit in the same process works."""

import _thread
import os
import signal
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalClassifier, HierarchicalRegressor

pytestmark = [
    pytest.mark.usefixtures("python_sigint"),
    pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc"),
]


def _data(binary=False, two_factors=False):
    rng = np.random.default_rng(0)
    n, n_groups = 400, 20
    g = np.arange(n) % n_groups
    X = rng.normal(size=(n, 1))
    eta = X[:, 0] + rng.normal(size=n_groups)[g]
    y = (
        (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
        if binary
        else eta + rng.normal(size=n)
    )
    groups = pd.DataFrame({"a": g, "b": rng.permutation(g)}) if two_factors else g
    return X, y, groups


CASES = {  # engine: (estimator, data, a long fit's settings)
    "collapsed-nuts": (HierarchicalRegressor(), {}, dict(draws=150000, tune=1000)),
    "augmented": (HierarchicalRegressor(likelihood="student_t"), {}, dict(draws=40000)),
    "gibbs": (HierarchicalRegressor(nested=False, random_slopes=None), {"two_factors": True},
              dict(draws=400000)),
    "polya-gamma": (HierarchicalClassifier(random_slopes=None), {"binary": True},
                    dict(draws=40000)),
    "explicit": (HierarchicalRegressor(engine="explicit", random_slopes=None), {},
                 dict(draws=20000)),
}  # fmt: skip


def _start_numba_pool():
    """numba's parallel threads start at their first use and then wait for work
    for the life of the process: start them before counting threads."""
    import numba

    @numba.njit(parallel=True)
    def total(n):
        acc = 0.0
        for i in numba.prange(n):
            acc += i
        return acc

    total(1000)


def _tasks():
    """This process's threads, Python's and native ones (nutpie's, numba's)."""
    return len(os.listdir("/proc/self/task"))


def _children():
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
        return f.read().split()


def _interrupted_fit(est, data, delay):
    timer = threading.Timer(delay, _thread.interrupt_main, args=(signal.SIGINT,))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            est.fit(*data[:2], groups=data[2])
    finally:
        timer.cancel()
        timer.join()
    return time.perf_counter() - start


def _check_case(case, delays):
    est, kind, long = CASES[case]
    data = _data(**kind)
    fitted = est.set_params(draws=60, tune=60, chains=2, random_state=0).fit(
        *data[:2], groups=data[2]
    )
    state = {k: v for k, v in vars(fitted).items() if k.endswith("_")}
    _start_numba_pool()
    tasks, children = _tasks(), set(_children())
    for delay in delays:
        est.set_params(**long)
        elapsed = _interrupted_fit(est, data, delay)
        assert elapsed < delay + 5.0, f"{case}: KeyboardInterrupt after {elapsed:.1f} s"
        after = {k: v for k, v in vars(est).items() if k.endswith("_")}
        assert after.keys() == state.keys()
        for k, v in state.items():  # the previous fit, untouched
            assert after[k] is v, f"{case}: {k} changed by an interrupted fit"
        deadline = time.perf_counter() + 5
        while _tasks() > tasks and time.perf_counter() < deadline:
            time.sleep(0.1)
        assert _tasks() <= tasks, (
            f"{case}: threads left running after Ctrl-C at {delay} s: {threading.enumerate()}"
        )
        while set(_children()) - children and time.perf_counter() < deadline:
            time.sleep(0.1)
        assert not set(_children()) - children, f"{case}: a child process outlived the fit"
    unfitted = est.__class__(**{**est.get_params(), **long})
    _interrupted_fit(unfitted, data, delays[len(delays) // 2])
    assert not [k for k in vars(unfitted) if k.endswith("_")], "half a fit kept"
    est.set_params(draws=60, tune=60).fit(*data[:2], groups=data[2])  # works again
    assert np.isfinite(est.intercept_)


def test_ctrl_c_during_a_collapsed_fit():
    _check_case("collapsed-nuts", [0.5])


@pytest.mark.slow
# a SIGINT injected while a finalizer runs (e.g. a weak dictionary's callback) is
# reported by Python as unraisable there; the fit still raises KeyboardInterrupt,
# since skhier records the signal itself (skhier._util.interrupts)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("case", list(CASES))
def test_ctrl_c_at_several_moments_of_every_engine(case):
    _check_case(case, [0.01, 0.3, 1.5, 3.0])
