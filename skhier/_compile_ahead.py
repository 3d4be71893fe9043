"""Compiling ahead: a cold first fit compiles in two processes at once.

The first fit on a machine waits for numba to compile, one function after
another, in one process.  Kernels that a fit needs only later (the collapsed
engine's exact draws, needed once sampling is over) can be compiled meanwhile by
a second Python process into the same per-user cache
(:mod:`skhier._numba_cache`); when this process gets to them it waits for that
process and loads them from the cache instead of compiling them itself.

Only where it can help: numba's caching and JIT on, at least two CPUs, a
writable cache directory, and a *marker* for this kind of kernel missing there
(it is written once this process has run the kernels, so later processes never
start a second process again).  Whatever goes wrong in the second process (no
interpreter to start, an error, a timeout) costs nothing but the wait: this
process then compiles the kernels itself, as it would have without it.  The
kernels are the same code either way, so results do not depend on it (a kernel
loaded from the cache is bit-identical to one compiled in place).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import _numba_cache

#: seconds this process waits for the other one before compiling by itself
WAIT_S = 120.0

_started: set = set()
_done: set = set()


def _n_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _marker(key):
    import numba

    name = f"{key}-numba{numba.__version__}-{_numba_cache.sources_digest()[:16]}"
    return _numba_cache.cache_dir() / "compiled" / name


def _enabled():
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    if numba.config.DISABLE_JIT or os.environ.get("SKHIER_COMPILE_AHEAD", "1") == "0":
        return False
    return not getattr(sys, "frozen", False) and bool(sys.executable) and _n_cpus() >= 2


def start(key, function, *args):
    """Run ``function(*args)`` (a module-level function of skhier, given as
    ``"module:name"``; ``args`` ints or bools) in a second process, unless the
    kernels of ``key`` are known to be compiled (or this process started that
    already).  Returns the process to pass to :func:`wait`, or None."""
    if key in _started or not _enabled():
        return None
    _started.add(key)
    try:
        marker = _marker(key)
        if marker.exists():
            return None
        marker.parent.mkdir(parents=True, exist_ok=True)
        module, name = function.split(":")
        root = str(Path(__file__).resolve().parent.parent)
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            f"from {module} import {name}; {name}(*{tuple(args)!r})"
        )
        env = dict(os.environ, SKHIER_COMPILE_AHEAD="0")
        return subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except Exception:  # noqa: BLE001 - no second process: compile here, as without it
        return None


def wait(process):
    """Wait for ``process`` (from :func:`start`; None: nothing to wait for); one
    that does not finish within :data:`WAIT_S` is stopped."""
    if process is None:
        return
    try:
        process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def done(key):
    """Record that the kernels of ``key`` are compiled and cached."""
    if key in _done or not _enabled():
        return
    _done.add(key)
    try:
        marker = _marker(key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
