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
    "from skhier._numba.linalg import n_corr_params as f; f(3, True); "
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
    assert path == cache / skhier.__version__ / "_numba.linalg"
    assert list(path.glob("*n_corr_params*.nbc"))
    assert _run(first, cache)[:2] == (1, 0)
    assert _run(_install(tmp_path / "env2"), cache)[:2] == (1, 0)  # reinstalled elsewhere
    edited = _install(tmp_path / "env3")
    with open(edited / "skhier" / "_engines" / "collapsed" / "grad.py", "a") as f:  # a kernel
        f.write("\n# edited\n")
    assert _run(edited, cache)[:2] == (0, 1)
    with open(edited / "skhier" / "_posterior" / "summary.py", "a") as f:  # no numba code
        f.write("\n# edited\n")
    assert _run(edited, cache)[:2] == (1, 0)


def test_modules_of_one_name_in_two_folders_get_their_own_cache_folders():
    """Kernels live beside their engine (``_engines/collapsed/kernels.py``,
    ``_engines/nuts/kernels.py``): each module's entries go to a folder named by its
    dotted module name, so the two never share one."""
    from numba.core import caching

    from skhier._engines.collapsed import kernels as collapsed
    from skhier._engines.nuts import kernels as nuts

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locator = next(c for c in impl._locator_classes if c.__name__ == "SkhierCacheLocator")
    func = collapsed.density_of
    paths = {Path(locator(func, mod.__file__).get_cache_path()).name for mod in (collapsed, nuts)}
    assert paths == {"_engines.collapsed.kernels", "_engines.nuts.kernels"}


def test_no_usable_cache_directory_falls_back_to_numbas_cache(monkeypatch):
    """No home directory (a service account) or no permission: numba's next locator."""
    from numba.core import caching

    from skhier._numba import cache as _numba_cache
    from skhier._numba import linalg as _kernels_linalg

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
@pytest.mark.parametrize("ahead", ["0", "1"], ids=["one process", "compiling ahead"])
def test_a_fit_is_the_same_whether_its_kernels_were_compiled_or_loaded(tmp_path, ahead):
    """The same seed gives the same posterior in the process that compiles the
    kernels and in one that loads them from the cache: without the ``contract``
    fast-math flag LLVM fuses no multiply-adds differently in the two situations,
    a difference NUTS would amplify from the last bit to the third digit.  (With a
    second process compiling ahead, the first fit loads the exact-draw kernels.)"""
    cache = tmp_path / "cache"
    env = {**os.environ, "SKHIER_CACHE_DIR": str(cache), "SKHIER_COMPILE_AHEAD": ahead}
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
    """skhier._numba.ahead with an empty cache directory and nothing started."""
    from numba import config

    from skhier._numba import ahead as _compile_ahead

    if config.DISABLE_JIT:
        pytest.skip("numba's JIT is off: nothing to compile ahead")
    monkeypatch.setenv("SKHIER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SKHIER_COMPILE_AHEAD", "1")  # whatever else the machine runs
    monkeypatch.setattr(_compile_ahead, "_started", set())
    monkeypatch.setattr(_compile_ahead, "_done", set())
    monkeypatch.setattr(_compile_ahead, "_n_cpus", lambda: 2)
    return _compile_ahead


CHEAP = "skhier._numba.cache:sources_digest"  # stands in for a compiling function


def test_compile_ahead_starts_one_process_per_kind_until_its_marker_exists(ahead, monkeypatch):
    process = ahead.start("k1", CHEAP)
    assert process is not None
    monkeypatch.setattr(ahead, "_started", set())
    assert ahead.start("k1", CHEAP) is None  # parallel first fits do not start one each
    process.wait()
    assert process._process.returncode == 0
    claim = ahead._claim(ahead._marker("k1"))
    assert claim is not None  # released
    claim.close()
    assert ahead.start("k1", CHEAP) is None  # this process started it already
    ahead.done("k2")
    assert ahead._marker("k2").exists()
    assert ahead.start("k2", CHEAP) is None  # compiled already
    monkeypatch.setenv("SKHIER_COMPILE_AHEAD", "0")
    assert ahead.start("k3", CHEAP) is None  # switched off...
    ahead.done("k3")
    assert ahead._marker("k3").exists()  # ...but what is compiled is recorded
    monkeypatch.setenv("SKHIER_COMPILE_AHEAD", "1")
    monkeypatch.setattr(ahead, "_n_cpus", lambda: 1)
    assert ahead.start("k4", CHEAP) is None  # one CPU: nothing to gain
    monkeypatch.setattr(ahead, "_n_cpus", lambda: 2)
    monkeypatch.setattr(sys, "executable", "/usr/sbin/httpd")  # embedded: no interpreter
    assert ahead.start("k5", CHEAP) is None


def test_compile_ahead_waits_for_an_idle_cpu_unless_forced(ahead, monkeypatch):
    """Left to itself (``auto``), a first fit compiles ahead only while a CPU is
    idle: on a busy machine a second compiling process slows the fit down."""
    monkeypatch.delenv("SKHIER_COMPILE_AHEAD")
    monkeypatch.setattr(ahead, "_idle_cpus", lambda: 0.3)
    assert ahead.start("busy", CHEAP) is None
    monkeypatch.setattr(ahead, "_started", set())
    monkeypatch.setattr(ahead, "_idle_cpus", lambda: 1.2)
    process = ahead.start("busy", CHEAP)
    assert process is not None
    process.wait()
    monkeypatch.setattr(ahead, "_started", set())
    monkeypatch.setattr(ahead, "_idle_cpus", lambda: 0.3)
    monkeypatch.setenv("SKHIER_COMPILE_AHEAD", "1")  # forced
    process = ahead.start("forced", CHEAP)
    assert process is not None
    process.wait()


def test_a_claim_left_by_a_killed_process_blocks_nothing(ahead, monkeypatch):
    """The claim is a lock the operating system releases with its process: a
    first fit killed (or interrupted) while compiling ahead leaves nothing that
    stops or delays the next one."""
    marker = ahead._marker("k")
    marker.parent.mkdir(parents=True)
    code = (
        "import sys, time; from pathlib import Path; from skhier._numba import ahead; "
        f"c = ahead._claim(Path({str(marker)!r})); print(c is not None, flush=True); "
        "time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "True"
    assert ahead.start("k", CHEAP) is None  # held: another process is compiling these
    holder.kill()
    holder.wait()
    holder.stdout.close()
    monkeypatch.setattr(ahead, "_started", set())
    process = ahead.start("k", CHEAP)  # at once, not after a time-out
    assert process is not None
    process.wait()

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(ahead._numba_cache, "cache_dir", no_home)
    assert ahead.start("other", CHEAP) is None
    ahead.done("other")  # a fit that has sampled must not fail here


def test_compile_ahead_stops_a_process_that_does_not_finish(ahead, monkeypatch, tmp_path):
    monkeypatch.setattr(ahead, "WAIT_S", 0.2)
    claim = open(tmp_path / "claim", "a+b")  # noqa: SIM115 - closed by the Ahead
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ahead.Ahead(sleeper, claim).wait()
    assert sleeper.returncode is not None and sleeper.returncode != 0
    assert claim.closed


LOADS = (
    "import numpy as np; from skhier import HierarchicalRegressor; "
    "from skhier._engines.collapsed import kernels as _kernels; "
    "from skhier._engines.collapsed.draw import _kernels_of_class; "
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
    ahead = "from skhier._engines.collapsed.engine import compile_draws; compile_draws(1, 3); "
    ahead += "compile_draws(3, 3)"
    for code in (ahead, LOADS):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0"]


AHEAD = FIT.split("; print(")[0] + (
    "; from skhier._engines.collapsed import kernels as _kernels; "
    "from skhier._engines.collapsed.draw import _kernels_of_class; "
    "fs = (*_kernels_of_class(2, 3), _kernels.cov_chols); "
    "print(sum(sum(f.stats.cache_hits.values()) for f in fs), "
    "sum(sum(f.stats.cache_misses.values()) for f in fs))"
)


@pytest.mark.slow
def test_a_cold_first_fit_loads_the_kernels_compiled_ahead(tmp_path):
    """End to end: a first fit with an empty cache starts the second process, and
    loads every exact-draw kernel it compiled instead of compiling it again."""
    from skhier._numba.ahead import _n_cpus

    if _n_cpus() < 2:
        pytest.skip("one CPU: nothing is compiled ahead")
    env = {**os.environ, "SKHIER_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    env["SKHIER_COMPILE_AHEAD"] = "1"  # (left to "auto", a busy test machine would skip it)
    out = subprocess.run([sys.executable, "-c", AHEAD], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    hits, misses = map(int, out.stdout.split())
    assert (hits, misses) == (3, 0)
    assert len(list((tmp_path / skhier.__version__ / "compiled").iterdir())) == 1  # the marker


# fits some shapes of skhier._precompile's registry in one process; one line per fit
SHAPES_IN_ONE = (
    "import sys, warnings; warnings.simplefilter('ignore')\n"
    "from skhier._precompile import data, fit, shapes\n"
    "for name in sys.argv[1:]:\n"
    "    est = fit(name); X, y, g = data(shapes()[name])\n"
    "    out = est.predict_proba(X, groups=g) if hasattr(est, 'predict_proba') else "
    "est.predict(X, groups=g)\n"
    "    print(name, repr(out.ravel().tolist()), flush=True)\n"
)


def _fit_shapes(names, cache, ahead="0"):
    env = {**os.environ, "SKHIER_CACHE_DIR": str(cache), "SKHIER_COMPILE_AHEAD": ahead}
    env.pop("NUMBA_CACHE_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-c", SHAPES_IN_ONE, *names], env=env, stdout=subprocess.PIPE, text=True
    )


def _results(process):
    out, _ = process.communicate()
    assert process.returncode == 0, f"exit {process.returncode}"
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.mark.slow
def test_one_cache_of_every_specialisation_serves_each_model_its_own_code(tmp_path):
    """The failure of numba's per-process symbol names, caught: a cache filled
    with every specialisation of the registry (skhier._precompile), each compiled
    in its own process, two at once; then one process fits several models from it,
    in two orders, and each fit equals its fit with an empty cache to the last bit."""
    from skhier._engines.collapsed.grad import SHAPE_CLASSES
    from skhier._precompile import shapes

    registry = shapes()
    names = [n for n in registry if n.startswith("normal-nuts-")]
    assert len(names) == len(SHAPE_CLASSES)
    names += ["normal-importance-1features-1effects", "student_t-1features-2effects"]
    names += ["binary-one-factor", "counts-negative-binomial", "normal-crossed"]
    shared = tmp_path / "shared"
    env = {**os.environ, "SKHIER_CACHE_DIR": str(shared)}
    env.pop("NUMBA_CACHE_DIR", None)
    fill = "from skhier import precompile; precompile(jobs=2)"
    filling = subprocess.run([sys.executable, "-c", fill], env=env, capture_output=True, text=True)
    assert filling.returncode == 0, filling.stderr
    fresh = {}
    for i in range(0, len(names), 2):  # each with an empty cache of its own, two at once
        procs = [_fit_shapes([n], tmp_path / f"empty-{n}") for n in names[i : i + 2]]
        for p in procs:
            fresh.update(_results(p))
    for order in (names, names[::-1]):
        got = _results(_fit_shapes(order, shared))
        differs = [n for n in order if got[n] != fresh[n]]
        assert not differs, f"fits that are not their empty-cache fit (order {order}): {differs}"


LITERALS = """
import json, sys, warnings
from collections import Counter
from numba.core import event, types
from skhier._precompile import fit

seen = Counter()

class Listener(event.Listener):
    def on_start(self, ev):
        func = ev.data["dispatcher"].py_func
        if func.__module__.startswith("skhier."):
            plain = tuple(types.unliteral(a) for a in ev.data["args"])
            seen[f"{func.__module__}.{func.__qualname__} {plain}"[:300]] += 1

    def on_end(self, ev):
        pass

event.register("numba:compile", Listener())
warnings.simplefilter("ignore")
for name in sys.argv[1:]:
    fit(name, draws=5, tune=5)
print(json.dumps([key for key, n in seen.items() if n > 1]))
"""


@pytest.mark.slow
def test_no_kernel_is_compiled_for_a_literal_argument(tmp_path):
    """numba compiles a function again for every literal value a caller passes
    (``f(x, 0)``, ``f(x, 1)`` and ``f(x, k)`` are three compilations, each seconds
    long on a first fit): with an empty cache, fits of one shape of each engine
    compile none of skhier's functions twice for the same argument types."""
    import json

    names = ["normal-crossed", "normal-nested-slope", "binary-one-factor", "counts-poisson",
             "student_t-1features-2effects", "normal-nuts-1features-2effects",
             "normal-importance-1features-2effects"]  # fmt: skip
    env = {**os.environ, "SKHIER_CACHE_DIR": str(tmp_path), "SKHIER_COMPILE_AHEAD": "0"}
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", LITERALS, *names], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert not found, "\n".join(found)
