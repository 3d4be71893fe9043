"""numba's settings for every skhier kernel, and the rule that makes its kernel
cache safe: **every compiled function has a name of its own.**

numba names a function's machine code by its module, qualified name, argument
types and a per-process counter.  Functions made by a factory (one per shape
class, say) share a qualified name, so two of them compiled in two processes can
carry the same symbol; a third process that loads both from the cache links the
first body for both -- another model's code, silently.  Here:

- :func:`specialized` renames a factory-made function after its specialisation
  (``pass1`` of shape class (2, 3) becomes ``_make_passes.pass1__2_3``);
- :func:`njit`, :func:`njit_inline` and :func:`cfunc` record every function they
  compile by name and raise if a *different* function arrives under a name
  already taken -- a factory that forgets :func:`specialized` fails on its second
  use, in the test suite, instead of corrupting a user's cache -- or if a closure
  captures another compiled function (its cache key would differ in every process).

Whether compiled code is kept on disk is decided here, once, before any kernel
is built (:func:`skhier._numba.cache.usable`): where no cache directory is
writable, kernels compile in memory (numba would otherwise raise "no locator
available" at the first kernel).
"""

from __future__ import annotations

from skhier._numba import cache as _cache

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None

#: every compiled function of skhier by ``module.qualname`` (see the module docstring)
COMPILED: dict = {}


def _cells(f):
    try:
        return tuple(c.cell_contents for c in f.__closure__ or ())
    except ValueError:  # an empty cell
        return None


def _record(f):
    cells = _cells(f) or ()
    if any(hasattr(c, "py_func") or hasattr(c, "_pyfunc") for c in cells):
        raise RuntimeError(
            f"{f.__qualname__} captures a compiled function in its closure: numba keys its "
            "cache on the pickled closure, which for a dispatcher differs in every process, "
            "so it would compile again in each one. Refer to it as a module global."
        )
    name = f"{f.__module__}.{f.__qualname__}"
    known = COMPILED.get(name)
    if known is not None and known is not f:
        same = known.__code__ is f.__code__ and _cells(known) == _cells(f)
        if not same:
            raise RuntimeError(
                f"Two different compiled functions are named {name!r}: numba links machine "
                "code by name, so a process loading both from the cache would run one for the "
                "other. Name each specialisation with skhier._numba.jit.specialized."
            )
    COMPILED[name] = f
    return f


def specialized(*params):
    """Decorator for a function a factory makes for the specialisation ``params``
    (ints or strings): its name gets them appended, so each specialisation has
    machine-code symbols and cache files of its own."""
    tag = "_".join(str(p).replace("-", "m") for p in params)

    def rename(f):
        f.__name__ = f"{f.__name__}__{tag}"
        f.__qualname__ = f"{f.__qualname__.replace('.<locals>', '')}__{tag}"
        return f

    return rename


def caching() -> bool:
    """Whether kernels are kept on disk (see the module docstring)."""
    if not _cache.usable():
        _cache.warn_once(
            "unwritable",
            f"skhier cannot write its kernel cache ({_cache.cache_dir()} is not writable): "
            "its kernels are compiled in memory, so every new process compiles them again. "
            "Set SKHIER_CACHE_DIR to a writable directory to keep them.",
        )
        return False
    return True


FLAGS = {
    "nogil": True,
    "error_model": "numpy",
    # Value-exact floating point: no fast-math flags.  A function called by several
    # kernels is linked into each of them as a copy that LLVM optimizes again in its
    # new context, and a process runs whichever copy of the symbol it loaded first;
    # with "reassoc", "arcp" or "contract" two copies could round differently, so a
    # posterior would depend on which models the process had fit before, or on
    # whether a kernel was compiled or loaded (tests/test_numba_cache.py).  Without
    # them every copy computes the same bits.
}

#: fast-math for entry points only (:func:`cfunc`): a C callback is no other
#: kernel's callee, so its body -- with the ``njit_inline`` helpers inlined into it
#: -- exists once, and nothing else can run another optimization of it
ENTRY_FASTMATH = {"reassoc", "arcp"}


def njit(f):
    """numba's ``njit`` with skhier's settings (compiled on first call, cached)."""
    if numba is None:  # pragma: no cover
        return f
    return numba.njit(cache=caching(), **FLAGS)(_record(f))


def njit_inline(f):
    """As :func:`njit`, but inlined into the caller's numba IR before typing, so
    arguments that are compile-time constants there prune the callee's branches
    (nothing compiles for a branch never taken)."""
    if numba is None:  # pragma: no cover
        return f
    return numba.njit(inline="always", cache=caching(), **FLAGS)(_record(f))


def cfunc(signature, fastmath=False):
    """numba's ``cfunc`` for C callbacks (nutpie's densities), cached;
    ``fastmath``: :data:`ENTRY_FASTMATH` (see there)."""
    flags = {"fastmath": ENTRY_FASTMATH} if fastmath else {}

    def compile_(f):
        return numba.cfunc(signature, cache=caching(), error_model="numpy", **flags)(_record(f))

    return compile_
