"""skhier's compiled kernels live in a per-user cache keyed on the sources'
contents: reinstalling the same version (new files, new place) finds them;
editing a module invalidates them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
