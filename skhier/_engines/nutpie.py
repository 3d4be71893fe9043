"""nutpie's interfaces, in one place: a model whose log density is a numba C
callback (nutpie's low-level interface, the one behind
``nutpie.compile_pymc_model``; chains run in Rust threads without the GIL), the
public Python-callback interface as its fallback, and the sampling call.

A density callback has the C signature ``int64(n_dim, x*, grad*, logp*, buf*)``
(:data:`C_LOGP_SIG`; status 0 = ok, 4 = non-finite, a divergence) and reads its
data from one float64 buffer ``buf``.
"""

from __future__ import annotations

import numpy as np

from skhier._numba.jit import cfunc
from skhier._util.warn import import_quietly

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None


def _c_expand(dim, n_expanded, x_ptr, out_ptr, buf_ptr):
    x = numba.carray(x_ptr, (dim,))
    out = numba.carray(out_ptr, (n_expanded,))
    for i in range(n_expanded):  # (a loop: a slice assignment compiles for seconds)
        out[i] = x[i]
    return 0


if numba is not None:
    _dbl = numba.types.CPointer(numba.types.double)
    C_LOGP_SIG = numba.types.int64(numba.types.uint64, _dbl, _dbl, _dbl, _dbl)
    _c_expand = cfunc(numba.types.int64(numba.types.uint64, numba.types.uint64, _dbl, _dbl, _dbl))(
        _c_expand
    )


class NativeModel:
    """A nutpie model over ``theta`` (``n_dim``) whose density is the C callback
    ``c_logp`` reading the buffer ``buf``; ``initial_point(seed)`` starts a chain."""

    dims: dict = {}

    def __init__(self, buf, c_logp, n_dim, initial_point):
        self._buf = np.ascontiguousarray(buf, dtype=np.float64)
        self._c_logp = c_logp
        self._n_dim = int(n_dim)
        self._initial_point = initial_point

    @property
    def n_dim(self):
        return self._n_dim

    @property
    def shapes(self):
        return {"theta": (self._n_dim,)}

    @property
    def coords(self):
        return {}

    def _make_model(self, init_mean):
        from nutpie import _lib

        addr = self._buf.ctypes.data
        logp_fn = _lib.LogpFunc(self._c_logp.address, addr, self)
        expand_fn = _lib.ExpandFunc(self._n_dim, self._n_dim, _c_expand.address, addr, self)
        sizes = {"param": self._n_dim}
        variables = _lib.PyVariable.new_variables(
            ["theta"], ["float64"], [(self._n_dim,)], sizes, {"theta": ("param",)}
        )
        return _lib.PyMcModel(
            logp_fn, expand_fn, variables, self._n_dim, sizes, {}, self._initial_point, None
        )

    def _make_sampler(self, settings, init_mean, cores, progress_type, store):
        from nutpie import _lib

        model = self._make_model(init_mean)
        return _lib.PySampler.from_pymc(settings, cores, model, progress_type, store)


def python_model(n_dim, log_density, initial_point):
    """The same kind of model through nutpie's public Python-callback interface;
    ``log_density(x) -> (value, grad)``."""
    from nutpie.compiled_pyfunc import from_pyfunc

    def make_logp_fn():
        def logp(x):
            value, grad = log_density(x)
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return -np.inf, np.zeros_like(x)
            return value, grad

        return logp

    def make_expand_fn(seed1, seed2, chain):
        return lambda x: {"theta": x.copy()}

    return from_pyfunc(
        n_dim,
        make_logp_fn,
        make_expand_fn,
        [np.dtype("float64")],
        [(n_dim,)],
        ["theta"],
        make_initial_point_fn=initial_point,
    )


def sample(native, fallback, *, draws, tune, chains, seed, target_accept, progressbar):
    """Run NUTS on the model ``native()`` (or ``fallback()``, the Python-callback one,
    when nutpie's low-level interface changed); ``(theta (C, D, n), diverging,
    saturated)``."""
    nutpie = import_quietly("nutpie")

    def run(model):
        # nutpie's blocking call turns Ctrl-C into the draws so far (a partial trace
        # that would look like a finished fit): wait here, and stop the chains and
        # re-raise instead
        sampler = nutpie.sample(
            model,
            draws=draws,
            tune=tune,
            chains=chains,
            seed=seed,
            progress_bar=progressbar,
            target_accept=target_accept,
            save_warmup=False,
            blocking=False,
        )
        try:
            return sampler.wait()
        except BaseException:
            sampler.cancel()
            raise

    try:
        trace = run(native())
    except (AttributeError, TypeError):
        if fallback is None:
            raise
        trace = run(fallback())
    theta = np.asarray(trace.posterior["theta"].values)
    stats = trace.sample_stats
    diverging = np.asarray(stats["diverging"].values, dtype=bool)
    saturated = np.asarray(stats["maxdepth_reached"].values, dtype=bool)
    return theta, diverging, saturated
