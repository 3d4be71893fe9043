"""Compiling ahead: a cold first fit compiles in two processes at once.

The first fit on a machine waits for numba to compile, one function after
another, in one process.  Kernels that a fit needs only later (the collapsed
engine's exact draws, needed once sampling is over) can be compiled meanwhile by
a second Python process into the same per-user cache
(:mod:`skhier._numba.cache`, whose entries are written atomically); when this process gets to
them it waits for that process and loads them from the cache instead of
compiling them itself.

Only where it can help: numba's JIT on, at least two CPUs, a Python interpreter
to start, a writable cache directory, no other process compiling the same kernels
ahead, and a *marker* for these kernels missing from the cache (written once a
process has run them, so that later processes never start a second process
again).  Whatever goes wrong in the second process (an error, a timeout) costs
nothing but the wait: this process then compiles the kernels itself, as it would
have without it.  The kernels are the same code either way, so results do not
depend on it (a kernel loaded from the cache is bit-identical to one compiled in
place).  ``SKHIER_COMPILE_AHEAD=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from skhier._numba import cache as _numba_cache

#: seconds this process waits for the other one before compiling by itself
WAIT_S = 120.0

_started: set = set()
_done: set = set()


def _n_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _jit_on():
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    return not numba.config.DISABLE_JIT


def _python():
    """The interpreter to start, or None (an embedding host, a frozen program)."""
    exe = sys.executable
    if getattr(sys, "frozen", False) or not exe:
        return None
    return exe if Path(exe).name.lower().startswith(("python", "pypy")) else None


def _idle_cpus():
    """CPUs not busy now, where the platform tells: on Linux from the tasks running
    at this moment (``/proc/loadavg``; this one is among them), elsewhere from the
    1-minute load average."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        return float(_n_cpus() - (running - 1))
    except (OSError, ValueError, IndexError):
        pass
    try:
        return _n_cpus() - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        return float(_n_cpus())


def _enabled():
    """``SKHIER_COMPILE_AHEAD``: ``0`` off, ``1`` on wherever there are two CPUs,
    unset (``auto``) also only while a CPU is idle: on a busy machine a second
    process compiling would slow the first fit down, not speed it up."""
    setting = os.environ.get("SKHIER_COMPILE_AHEAD", "auto").strip().lower()
    if setting in {"0", "false", "no", "off"} or not _jit_on() or _n_cpus() < 2:
        return False
    return setting in {"1", "true", "yes", "on"} or _idle_cpus() >= 0.75


def _marker(key):
    """The marker of ``key``'s kernels, named by everything numba's cache entries
    depend on: the sources, numba, Python, the CPU and a user's own cache place."""
    import llvmlite.binding as llvm
    import numba

    parts = (
        _numba_cache.stamp(),
        numba.__version__,
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
        os.environ.get("NUMBA_CACHE_DIR", ""),
    )
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return _numba_cache.cache_dir() / "compiled" / f"{key}-{digest}"


class Ahead:
    """A second process compiling kernels (see :func:`start`)."""

    def __init__(self, process, claim):
        self._process = process
        self._claim = claim

    def wait(self):
        """Wait for it; one that does not finish within :data:`WAIT_S` is stopped."""
        try:
            self._process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._release()

    def stop(self):
        """Stop it (this fit failed or was interrupted)."""
        self._process.kill()
        self._process.wait()
        self._release()

    def _release(self):
        """Remove the claim file, then release its lock (a process killed before
        this leaves an empty file whose lock the system has released: harmless)."""
        try:
            os.unlink(self._claim.name)
        except (OSError, TypeError):
            pass
        self._claim.close()


def _try_lock(fh):
    """An exclusive lock on the open file ``fh`` without waiting (OSError if taken)."""
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NLCK, 1)
        return
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _claim(marker):
    """Claim the compiling of ``marker``'s kernels: an open file holding an
    exclusive lock (parallel first fits start one second process, not one each).
    The operating system releases the lock when this process ends, however it
    ends (Ctrl-C, a kill), so a claim never outlives its process to block or slow
    a later fit.  None if another process holds it, or the directory is read-only."""
    path = marker.with_name(marker.name + ".compiling")
    try:
        fh = open(path, "a+b")  # noqa: SIM115 - held open by the Ahead while it runs
    except OSError:
        return None
    try:
        _try_lock(fh)
    except OSError:
        fh.close()
        return None
    return fh


def start(key, function, *args):
    """Run ``function(*args)`` (a module-level function of skhier, given as
    ``"module:name"``; ``args`` ints) in a second process, unless that cannot help
    (see the module's docstring).  Returns an :class:`Ahead`, or None."""
    if key in _started or not _enabled() or _python() is None:
        return None
    _started.add(key)
    try:
        marker = _marker(key)
        if marker.exists():
            return None
        marker.parent.mkdir(parents=True, exist_ok=True)
        claim = _claim(marker)  # (fails, as an OSError, where the directory is read-only)
        if claim is None:
            return None
        module, name = function.split(":")
        code = (
            f"import sys; sys.path[:] = {list(sys.path)!r}; "
            f"from {module} import {name}; {name}(*{tuple(int(a) for a in args)!r})"
        )
        env = dict(os.environ, SKHIER_COMPILE_AHEAD="0")
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console
        process = subprocess.Popen(
            [_python(), "-c", code],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            creationflags=flags,
        )
        return Ahead(process, claim)
    except Exception:  # noqa: BLE001 - no second process: compile here, as without it
        return None


def done(key):
    """Record that the kernels of ``key`` are compiled and cached (whether or not
    a second process compiled them)."""
    if key in _done or not _jit_on():
        return
    _done.add(key)
    try:
        marker = _marker(key)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except Exception:  # noqa: BLE001 - no cache directory: nothing to record
        pass
