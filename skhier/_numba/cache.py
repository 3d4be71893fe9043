"""Where numba keeps skhier's compiled kernels, and why what it loads is always
the code that was asked for.

**Place.**  numba's default cache lives in ``__pycache__`` next to the installed
sources and is keyed on their modification times, so every ``pip install`` and
every new virtual environment starts cold.  skhier's functions are cached in a
per-user directory instead (``$SKHIER_CACHE_DIR``, else the platform's user
cache directory, e.g. ``~/.cache/skhier``) under the package version.  A
user-provided ``NUMBA_CACHE_DIR`` still wins.

**One file per compiled function, named by everything it depends on.**  numba's
own layout keeps an index per function (signature -> numbered data file) that
several processes rewrite without a lock.  skhier's entries have no index: the
file of an entry is named by a SHA-256 of its *key* -- numba's key (the
signature, the target CPU's name and features, the function's bytecode and
closure values) together with the :func:`stamp` (the contents of every skhier
module, numba's, llvmlite's and numpy's versions).  The file repeats that key and
holds a checksum of its payload: a load reads one file, checks both, and treats
any mismatch or read error as a miss.  So a truncated, garbage, foreign or
half-written file is compiled again and overwritten, never loaded; two processes
saving the same function at once write equivalent files through an atomic
rename; nothing needs a lock, and no lock or claim can be left behind.

**What a cache cannot fix by itself** -- two different functions carrying the same
machine-code symbol (numba names a function's code by its module, qualified name
and a per-process counter, so closures made by one factory in two processes can
clash when one process loads both) -- is excluded where functions are made:
:func:`skhier._numba.jit.specialized` gives every specialisation its own name,
and :mod:`skhier._numba.jit` refuses two compiled functions with one name.

**Faults.**  An unwritable or missing cache directory is found before any kernel
is built (:func:`usable`); kernels then compile in memory, with one
:class:`~skhier.exceptions.KernelCacheWarning`.  A failed write (a full disk)
warns once and the fit goes on with the code in memory.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import uuid
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

#: file format of an entry; part of every entry's name
_FORMAT = 2


def cache_dir() -> Path:
    """The directory of this version's compiled kernels."""
    from skhier._version import __version__

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
    """SHA-256 of the contents of every skhier module with numba code: a module
    that mentions numba or defines kernels with ``njit``.  Editing any of them
    invalidates every entry (a kernel inlined from another module is never stale)."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        source = path.read_bytes()
        if b"numba" in source or b"njit" in source:
            digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
            digest.update(source)
    return digest.hexdigest()


@cache
def stamp() -> str:
    """Everything an entry depends on besides numba's own key: skhier's sources and
    the versions of the compiler stack (numba, llvmlite, numpy, Python)."""
    import llvmlite
    import numba
    import numpy

    parts = (sources_digest(), numba.__version__, llvmlite.__version__, numpy.__version__,
             sys.version_info[:3], _FORMAT)  # fmt: skip
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".probe-{uuid.uuid4().hex[:12]}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except Exception:  # noqa: BLE001 - no home directory, read-only, full...
        return False


@cache
def usable() -> bool:
    """Whether compiled kernels can be kept on disk: a user-provided
    ``NUMBA_CACHE_DIR`` or skhier's directory is writable.  Decided once, before
    any kernel is built; where it is False kernels compile in memory."""
    user = os.environ.get("NUMBA_CACHE_DIR")
    try:
        return _writable(Path(user) if user else cache_dir())
    except Exception:  # noqa: BLE001 - no home directory
        return False


_warned: set = set()


def warn_once(kind: str, message: str) -> None:
    """One :class:`~skhier.exceptions.KernelCacheWarning` per kind and process."""
    if kind in _warned:
        return
    _warned.add(kind)
    import warnings

    from skhier.exceptions import KernelCacheWarning

    warnings.warn(message, KernelCacheWarning, stacklevel=3)


def _ours(path) -> bool:
    try:
        return cache_dir().parent in Path(path).parents
    except Exception:  # noqa: BLE001 - no home directory: not skhier's cache
        return False


def _entry(store, key):
    """``(path, key text)`` of ``key``'s file in ``store`` (numba's
    IndexDataCacheFile), or None when the key has no stable text."""
    text = repr((store._index_name, stamp(), store._version, key))
    if " at 0x" in text:  # an object known only by its address: not reproducible
        return None
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return os.path.join(store._cache_path, f"{store._index_name[:-4]}.{digest}.nbc"), text


def _load(store, key):
    entry = _entry(store, key)
    if entry is None:
        return None
    path, text = entry
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:  # no entry yet (or unreadable): compile
        return None
    try:
        stored, checksum, payload = pickle.loads(blob)
        if stored != text or hashlib.sha256(payload).hexdigest() != checksum:
            raise ValueError("entry of another key, or damaged")
        return pickle.loads(payload)
    except Exception:  # noqa: BLE001 - truncated, garbage, foreign: a miss, rewritten
        _discard(path)
        return None


def _discard(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _save(store, key, data):
    entry = _entry(store, key)
    if entry is None:
        return
    path, text = entry
    payload = store._dump(data)
    blob = pickle.dumps((text, hashlib.sha256(payload).hexdigest(), payload), protocol=-1)
    tmp = f"{path}.tmp.{uuid.uuid4().hex[:16]}"
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    except OSError as exc:
        _discard(tmp)
        warn_once(
            "write",
            f"skhier could not save its compiled kernels in {store._cache_path} ({exc}). "
            "Fits are correct, but a new process compiles them again. Free disk space, or set "
            "SKHIER_CACHE_DIR to a writable directory.",
        )


def _register():
    from numba.core import caching

    base = getattr(caching, "_CacheLocator", None) or caching.CacheLocator
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # numba < 0.61

    class SkhierCacheLocator(base):
        """numba cache locator for functions defined in skhier's modules."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file  # numba reads it in messages
            self._lineno = py_func.__code__.co_firstlineno
            relative = Path(py_file).resolve().relative_to(_PACKAGE_DIR).with_suffix("")
            # one folder per module, named by its dotted name (folders of one stem never collide)
            self._cache_path = str(cache_dir() / ".".join(relative.parts))

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return stamp()

        def get_disambiguator(self):
            return str(self._lineno)

        @classmethod
        def from_function(cls, py_func, py_file):
            try:
                if _PACKAGE_DIR not in Path(py_file).resolve().parents:
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


def _install_store():
    """skhier's entries (see the module docstring) in place of numba's index and
    numbered data files, for functions cached in skhier's directory; a failure to
    rebuild a loaded entry is a miss there, a failure to save one a warning."""
    from numba.core import caching

    files, caches = caching.IndexDataCacheFile, caching.Cache
    if getattr(files.save, "_skhier", False):
        return
    numbas = (files.save, files.load, caches.load_overload, caches.save_overload)

    def save(self, key, data):
        return _save(self, key, data) if _ours(self._cache_path) else numbas[0](self, key, data)

    def load(self, key):
        return _load(self, key) if _ours(self._cache_path) else numbas[1](self, key)

    def load_overload(self, sig, target_context):
        try:
            return numbas[2](self, sig, target_context)
        except Exception:  # noqa: BLE001 - an entry numba cannot rebuild: compile
            if not _ours(self._cache_path):
                raise
            return None

    def save_overload(self, sig, data):
        try:
            return numbas[3](self, sig, data)
        except Exception as exc:  # noqa: BLE001 - the code in memory is still right
            if not _ours(self._cache_path):
                raise
            warn_once("write", f"skhier could not save a compiled kernel ({exc}).")

    save._skhier = True
    files.save, files.load = save, load
    caches.load_overload, caches.save_overload = load_overload, save_overload


try:
    _register()
    _install_store()
except Exception:  # noqa: BLE001 - numba's internals changed: keep its default cache
    pass
