"""Where numba keeps skhier's compiled kernels: a per-user cache that survives
reinstalling.

numba's default cache lives in ``__pycache__`` next to the installed sources and
is keyed on their modification times, so every ``pip install`` (which rewrites
the files) and every new virtual environment starts cold: the first fit pays the
compilation again.  skhier's functions are cached instead in a per-user
directory (``$SKHIER_CACHE_DIR``, else the platform's user cache directory, e.g.
``~/.cache/skhier``) under the package version, and they are keyed on the
*contents* of skhier's modules with numba code: reinstalling the same version, or
installing it into another environment, finds the kernels compiled; editing any
such module invalidates them all (a kernel inlined from another module can never
be stale).
numba itself keys each entry on its own version and on the CPU (name and
features), so one directory serves several machines and numba versions.

A user-provided ``NUMBA_CACHE_DIR`` still wins.  Registering the locator uses
numba's internal ``CacheImpl._locator_classes``; if that ever changes, numba's
default (in-tree) cache is used and nothing else changes.

Several processes may compile into one directory at once (a second process
compiling ahead, parallel workers).  numba saves an entry by reading a function's
index, choosing a free data file and writing both, with no lock: two processes
saving at once could pick the same data file and leave the index mapping one
signature to the other's machine code.  Saves into skhier's directory therefore
hold a lock on the function's directory, and write the data before the index.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import sys
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The directory of this version's compiled kernels."""
    from . import __version__

    root = os.environ.get("SKHIER_CACHE_DIR")
    if not root:
        if sys.platform == "win32":
            base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
        elif sys.platform == "darwin":
            base = Path.home() / "Library" / "Caches"
        else:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(base) / "skhier"
    return Path(root) / __version__


@cache
def sources_digest() -> str:
    """SHA-256 of the contents of every skhier module with numba code (the cache's
    source stamp): a module that mentions numba or defines kernels with ``_njit``."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.glob("*.py")):
        source = path.read_bytes()
        if b"numba" in source or b"_njit" in source:
            digest.update(path.name.encode())
            digest.update(source)
    return digest.hexdigest()


def _register():
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - numba is a dependency
        return

    base = getattr(caching, "_CacheLocator", None) or caching.CacheLocator
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # numba < 0.61

    class SkhierCacheLocator(base):
        """numba cache locator for functions defined in skhier's modules."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file  # numba reads it in messages
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(cache_dir() / Path(py_file).stem)

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return sources_digest()

        def get_disambiguator(self):
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file):
            try:
                if Path(py_file).resolve().parent != _PACKAGE_DIR:
                    return None
                self = cls(py_func, py_file)
                self.ensure_cache_path()
            except Exception:  # noqa: BLE001 - not writable, no home directory...: numba's next
                return None
            return self

    classes = impl._locator_classes
    if not any(c.__name__ == "SkhierCacheLocator" for c in classes):
        after = [
            i for i, c in enumerate(classes) if c.__name__.lstrip("_") == "UserProvidedCacheLocator"
        ]
        classes.insert(after[0] + 1 if after else 0, SkhierCacheLocator)


def _lock_functions(fh):
    """``(lock, unlock)`` of the open file ``fh``: whole-file exclusive locks."""
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte
        import msvcrt

        def locking(mode):
            fh.seek(0)
            msvcrt.locking(fh.fileno(), mode, 1)

        return (lambda: locking(msvcrt.LK_LOCK)), (lambda: locking(msvcrt.LK_UNLCK))
    return (lambda: fcntl.flock(fh, fcntl.LOCK_EX)), (lambda: fcntl.flock(fh, fcntl.LOCK_UN))


@contextlib.contextmanager
def _locked(path):
    """An exclusive lock on the file ``path`` (created) while the block runs; none
    where the file system gives none."""
    fh = None
    try:
        fh = open(path, "a+b")  # noqa: SIM115 - closed below
        lock, unlock = _lock_functions(fh)
        lock()
    except OSError:
        if fh is not None:
            fh.close()
        yield
        return
    try:
        yield
    finally:
        unlock()
        fh.close()


def _lock_saves():
    from numba.core import caching

    cls = caching.IndexDataCacheFile
    if getattr(cls.save, "_skhier", False):
        return
    numbas_save = cls.save

    def save(self, key, data):
        path = Path(self._cache_path)
        try:
            ours = cache_dir().parent in path.parents
        except Exception:  # noqa: BLE001 - no home directory: not skhier's cache
            ours = False
        if not ours:
            return numbas_save(self, key, data)
        with _locked(path / ".lock"):
            overloads = self._load_index()  # under the lock: the latest index
            name = overloads.get(key)
            if name is None:
                taken = set(overloads.values())
                name = next(
                    n for n in (self._data_name(i) for i in itertools.count(1)) if n not in taken
                )
            self._save_data(name, data)  # data first: an index never names missing data
            overloads[key] = name
            self._save_index(overloads)

    save._skhier = True
    cls.save = save


try:
    _register()
    _lock_saves()
except Exception:  # noqa: BLE001 - numba's internals changed: keep its default cache
    pass
