"""skhier's compiled kernels live in a per-user cache keyed on the sources'
contents: reinstalling the same version (new files, new place) finds them;
editing a module invalidates them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import skhier

CODE = (
    "import os, skhier; assert skhier.__file__.startswith(os.getcwd()), skhier.__file__; "
    "from skhier._kernels_linalg import n_corr_params as f; f(3, True); "
    "print(sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()), "
    "f.stats.cache_path)"
)


def _run(site, cache):
    env = {**os.environ, "SKHIER_CACHE_DIR": str(cache), "PYTHONPATH": str(site)}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=env, cwd=site, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    hits, misses, path = out.stdout.split()
    return int(hits), int(misses), Path(path)


def _install(dest):
    """A copy of the package, as a reinstall makes it: new files, new place."""
    shutil.copytree(
        Path(skhier.__file__).parent, dest / "skhier", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


def test_kernels_are_cached_per_user_and_survive_a_reinstall(tmp_path):
    cache = tmp_path / "cache"
    first = _install(tmp_path / "env1")
    hits, misses, path = _run(first, cache)
    assert (hits, misses) == (0, 1)
    assert path == cache / skhier.__version__ / "_kernels_linalg"
    assert list(path.glob("*n_corr_params*.nbi"))
    assert _run(first, cache)[:2] == (1, 0)
    assert _run(_install(tmp_path / "env2"), cache)[:2] == (1, 0)  # reinstalled elsewhere
    edited = _install(tmp_path / "env3")
    with open(edited / "skhier" / "_kernels_grad.py", "a") as f:  # any kernel module
        f.write("\n# edited\n")
    assert _run(edited, cache)[:2] == (0, 1)
    with open(edited / "skhier" / "_summary.py", "a") as f:  # no numba code there
        f.write("\n# edited\n")
    assert _run(edited, cache)[:2] == (1, 0)


def test_no_usable_cache_directory_falls_back_to_numbas_cache(monkeypatch):
    """No home directory (a service account) or no permission: numba's next locator."""
    from numba.core import caching

    from skhier import _kernels_linalg, _numba_cache

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locator = next(c for c in impl._locator_classes if c.__name__ == "SkhierCacheLocator")
    func = _kernels_linalg.n_corr_params.py_func

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(_numba_cache, "cache_dir", no_home)
    assert locator.from_function(func, _kernels_linalg.__file__) is None


FIT = (
    "from skhier import HierarchicalRegressor; from skhier.datasets import load_sleepstudy; "
    "d = load_sleepstudy(); est = HierarchicalRegressor(draws=100, tune=100, chains=2, "
    "random_state=0).fit(d[['Days']], d['Reaction'], groups=d['Subject']); "
    "print(repr(est.noise_sd_), repr(est.group_intercept_sd_), repr(est.group_coef_[0, 0]))"
)


@pytest.mark.slow
def test_a_fit_is_the_same_whether_its_kernels_were_compiled_or_loaded(tmp_path):
    """The same seed gives the same posterior in the process that compiles the
    kernels and in one that loads them from the cache: without the ``contract``
    fast-math flag LLVM fuses no multiply-adds differently in the two situations,
    a difference NUTS would amplify from the last bit to the third digit."""
    cache = tmp_path / "cache"
    env = {**os.environ, "SKHIER_CACHE_DIR": str(cache)}
    env.pop("NUMBA_CACHE_DIR", None)
    runs, written = [], []
    for _ in range(2):
        runs.append(
            subprocess.run([sys.executable, "-c", FIT], env=env, capture_output=True, text=True)
        )
        assert runs[-1].returncode == 0, runs[-1].stderr
        written.append({p: p.stat().st_mtime_ns for p in cache.rglob("*.nb[ic]")})
    assert written[0], "the first fit compiled nothing into the empty cache"
    assert written[1] == written[0], "the second fit did not just load the kernels"
    assert runs[0].stdout == runs[1].stdout


@pytest.fixture
def ahead(tmp_path, monkeypatch):
    """skhier._compile_ahead with an empty cache directory and nothing started."""
    from skhier import _compile_ahead

    monkeypatch.setenv("SKHIER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SKHIER_COMPILE_AHEAD", raising=False)
    monkeypatch.setattr(_compile_ahead, "_started", set())
    monkeypatch.setattr(_compile_ahead, "_done", set())
    monkeypatch.setattr(_compile_ahead, "_n_cpus", lambda: 2)
    return _compile_ahead


def test_compile_ahead_starts_one_process_per_kind_until_its_marker_exists(ahead, monkeypatch):
    process = ahead.start("k1", "skhier._numba_cache:cache_dir")
    assert process is not None
    ahead.wait(process)
    assert process.returncode == 0
    assert ahead.start("k1", "skhier._numba_cache:cache_dir") is None  # started already
    ahead.done("k2")
    assert ahead._marker("k2").exists()
    assert ahead.start("k2", "skhier._numba_cache:cache_dir") is None  # compiled already
    monkeypatch.setenv("SKHIER_COMPILE_AHEAD", "0")
    assert ahead.start("k3", "skhier._numba_cache:cache_dir") is None  # switched off
    monkeypatch.delenv("SKHIER_COMPILE_AHEAD")
    monkeypatch.setattr(ahead, "_n_cpus", lambda: 1)
    assert ahead.start("k4", "skhier._numba_cache:cache_dir") is None  # one CPU: no gain
    ahead.wait(None)


def test_compile_ahead_stops_a_process_that_does_not_finish(ahead, monkeypatch):
    monkeypatch.setattr(ahead, "WAIT_S", 0.2)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ahead.wait(process)
    assert process.returncode is not None and process.returncode != 0


LOADS = (
    "import numpy as np; from skhier import HierarchicalRegressor, _kernels; "
    "from skhier._kernels_draw import _kernels_of_class; "
    "rng = np.random.default_rng(0); X = rng.normal(size=(120, 2)); "
    "g = rng.integers(0, 6, 120); y = X @ [1.0, -1.0] + rng.normal(size=6)[g] "
    "+ rng.normal(size=120); misses = 0\n"
    "for slopes, cls in ((None, (1, 0)), ('all', (3, 4))):\n"
    "    HierarchicalRegressor(random_slopes=slopes, draws=100, tune=100, chains=2, "
    "random_state=0).fit(X, y, groups=g)\n"
    "    for f in (*_kernels_of_class(*cls), _kernels.cov_chols):\n"
    "        misses += sum(f.stats.cache_misses.values())\n"
    "print(misses)"
)


@pytest.mark.slow
def test_kernels_compiled_ahead_are_the_ones_a_fit_loads(tmp_path):
    """The second process compiles the exact-draw kernels with the argument types
    of a real fit: a fit afterwards loads every one of them from the cache
    (a signature that differed would be compiled again, and wasted)."""
    env = {**os.environ, "SKHIER_CACHE_DIR": str(tmp_path), "SKHIER_COMPILE_AHEAD": "0"}
    env.pop("NUMBA_CACHE_DIR", None)
    ahead = "from skhier._backend_collapsed import compile_draws; compile_draws(1, 3); "
    ahead += "compile_draws(3, 3)"
    for code in (ahead, LOADS):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0"]
