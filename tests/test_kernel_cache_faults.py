"""Any state of the kernel cache gives a correct fit: damaged, foreign or
swapped entries, an unwritable directory, a full disk, two processes compiling
at once, a first fit interrupted while compiling.  And two specialisations of
one kernel can never share a machine-code symbol."""

import os
import signal
import subprocess
import sys
import time

import pytest

import skhier

# compiles one small kernel, reports its cache hits and misses and its value
KERNEL = (
    "import warnings; warnings.simplefilter('default'); {prelude}"
    "from skhier._numba.linalg import n_corr_params as f; v = f(3, True); "
    "print(sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()), v)"
)


def _env(cache, **extra):
    env = {**os.environ, "SKHIER_CACHE_DIR": str(cache), "SKHIER_COMPILE_AHEAD": "0", **extra}
    env.pop("NUMBA_CACHE_DIR", None)
    return env


def _kernel(cache, prelude=""):
    out = subprocess.run(
        [sys.executable, "-c", KERNEL.format(prelude=prelude)],
        env=_env(cache),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    hits, misses, value = out.stdout.split()
    return int(hits), int(misses), int(value), out.stderr


def _entries(cache):
    return sorted((cache / skhier.__version__).rglob("*n_corr_params*.nbc"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated: a write cut short
        lambda b: b"\x80\x05garbage" + bytes(range(256)),  # garbage
        lambda b: b"",  # empty
        lambda b: b[:-40] + bytes(40),  # the payload damaged: its checksum fails
    ],
    ids=["truncated", "garbage", "empty", "bad-checksum"],
)
def test_a_damaged_entry_is_compiled_again_and_replaced(tmp_path, damage):
    assert _kernel(tmp_path)[:3] == (0, 1, 3)
    (entry,) = _entries(tmp_path)
    entry.write_bytes(damage(entry.read_bytes()))
    hits, misses, value, err = _kernel(tmp_path)
    assert (hits, misses, value) == (0, 1, 3) and "Warning" not in err
    assert _kernel(tmp_path)[:3] == (1, 0, 3)  # rewritten whole


def test_an_entry_of_another_key_is_never_loaded(tmp_path):
    """An entry's file repeats its key: a file that holds another function's or
    another signature's code (a swapped, copied or mis-named file) is a miss."""
    code = (
        "from skhier._numba.linalg import n_corr_params as f; f(3, True); f(3.0, True); "
        "print(f.stats.cache_misses)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True)
    assert out.returncode == 0, out.stderr
    first, second = _entries(tmp_path)
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())  # each name now holds the other's code
    second.write_bytes(first_bytes)
    hits, misses, value, _ = _kernel(tmp_path)
    assert (hits, misses, value) == (0, 1, 3)


def test_entries_of_other_sources_or_compiler_versions_are_not_loaded(tmp_path):
    assert _kernel(tmp_path)[:2] == (0, 1)
    other = "import skhier._numba.cache as c; c.stamp = lambda: 'another numba or skhier'; "
    assert _kernel(tmp_path, prelude=other)[:3] == (0, 1, 3)
    assert _kernel(tmp_path)[:2] == (1, 0)  # the first entry is still there, still right


def test_an_unwritable_cache_directory_compiles_in_memory_with_one_warning(tmp_path):
    """A read-only home (clusters): the kernels compile in memory, decided before
    any is built (numba would raise 'no locator available'), and one warning says
    so and names the fix."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be made inside a file, even by root
    hits, misses, value, err = _kernel(blocker / "cache")
    assert (hits, misses, value) == (0, 1, 3)
    assert err.count("KernelCacheWarning") == 1 and "SKHIER_CACHE_DIR" in err


def test_a_full_disk_warns_once_and_the_fit_is_right(tmp_path):
    full = (  # every save fails as on a full disk; two kernels are compiled and saved
        "import errno, os, types; import numpy as np; import skhier._numba.cache as c\n"
        "def replace(*_): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "c.os = types.SimpleNamespace(**{**vars(os), 'replace': replace})\n"
        "from skhier._numba.linalg import _mul; _mul(np.eye(2), np.eye(2)); "
    )
    hits, misses, value, err = _kernel(tmp_path, prelude=full)
    assert (hits, misses, value) == (0, 1, 3)
    assert err.count("KernelCacheWarning") == 1 and "No space left" in err
    assert not list((tmp_path / skhier.__version__).rglob("*.tmp.*"))  # nothing half-written


def test_two_processes_compiling_the_same_kernels_at_once(tmp_path):
    code = KERNEL.format(prelude="")
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=_env(tmp_path), stdout=subprocess.PIPE)
        for _ in range(3)
    ]
    outs = [p.communicate()[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert {o[2] for o in outs} == {b"3"}
    assert _kernel(tmp_path)[:3] == (1, 0, 3)


def test_a_function_made_twice_under_one_name_is_refused():
    """Two different compiled functions with one name would share machine-code
    symbols; skhier._numba.jit refuses the second at once."""
    from skhier._numba import jit

    def factory(k):
        def kernel(x):
            return x + k

        return kernel

    jit.njit(factory(1))
    jit.njit(factory(1))  # the same function again: allowed
    with pytest.raises(RuntimeError, match="Two different compiled functions"):
        jit.njit(factory(2))
    named = [jit.njit(jit.specialized(k)(factory(k))) for k in (3, 4)]
    assert named[0](1) == 4 and named[1](1) == 5
    inner = jit.njit(jit.specialized("inner")(factory(5)))

    def closure_over_a_dispatcher(x):
        return inner(x)

    with pytest.raises(RuntimeError, match="captures a compiled function"):
        jit.njit(closure_over_a_dispatcher)


@pytest.mark.slow
def test_every_kernel_is_loaded_by_the_next_process(tmp_path):
    """A fit in a new process with the cache its predecessor filled compiles and
    writes nothing: every kernel's cache key is the same in every process (a
    closure over a dispatcher once made the GLMM callback's key differ each time,
    so every process compiled it again)."""
    fits = (
        "import warnings; warnings.simplefilter('ignore'); from skhier._precompile import fit; "
        "[fit(n) for n in ('counts-poisson', 'binary-one-factor', 'student_t-1features-2effects')]"
    )
    written = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", fits], env=_env(tmp_path), capture_output=True)
        assert out.returncode == 0, out.stderr[-2000:]
        written.append({p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nbc")})
    assert written[0], "nothing was cached"
    assert written[1] == written[0], sorted(set(written[1]) - set(written[0]))


def test_every_specialisation_has_a_name_of_its_own():
    """Make every specialisation of every factory: none is refused, and no two
    compiled functions share ``module.qualname`` (each would fail at creation)."""
    from skhier._engines.augmented import kernels as _augmented
    from skhier._engines.collapsed import draw as _kernels_draw
    from skhier._engines.collapsed import engine as _backend_collapsed
    from skhier._engines.collapsed import kernels as _kernels
    from skhier._engines.collapsed.grad import SHAPE_CLASSES
    from skhier._engines.nuts import engine as _backend_glmm
    from skhier._numba.jit import COMPILED

    for cls in SHAPE_CLASSES:
        _kernels._value_of_class(*cls)
        _kernels_draw._kernels_of_class(*cls)
        _augmented._chain_of_class(*cls)
        _backend_collapsed._c_logp_of_class(*cls)
    _backend_glmm._c_logp()
    names = [f"{f.__module__}.{f.__qualname__}" for f in COMPILED.values()]
    assert len(names) == len(set(names))
    specialised = [n for n in names if "__" in n.rsplit(".", 1)[-1]]
    assert len(specialised) >= 8 * len(SHAPE_CLASSES)


def _processes_using(cache):
    """Processes (Linux) whose environment names the kernel cache ``cache``."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if f"SKHIER_CACHE_DIR={cache}".encode() + b"\0" in environ:
            found.append(pid)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGINT, /proc")
@pytest.mark.usefixtures("python_sigint")
def test_a_first_fit_interrupted_while_compiling_leaves_nothing_behind(tmp_path):
    """Ctrl-C during the first fit's compilation (compiling ahead in a second
    process): the fit ends with KeyboardInterrupt, no process is left running,
    and the next fit is right and does not wait for anything left behind."""
    fit = (
        "import numpy as np; from skhier import HierarchicalRegressor as H; "
        "rng = np.random.default_rng(0); X = rng.normal(size=(60, 1)); g = np.arange(60) % 6; "
        "y = X[:, 0] + rng.normal(size=60); "
        "print(H(draws=50, tune=50, chains=2, random_state=0).fit(X, y, groups=g).noise_sd_)"
    )
    env = _env(tmp_path, SKHIER_COMPILE_AHEAD="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", fit], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    time.sleep(6)  # importing done, compiling (with a second process compiling ahead)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"KeyboardInterrupt" in err
    time.sleep(0.5)
    assert not _processes_using(tmp_path), "a process compiling ahead outlived the fit"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", fit], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert time.perf_counter() - start < 120
