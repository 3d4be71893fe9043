"""The collapsed engine: NUTS on the variance parameters only.

The population coefficients and all group effects are integrated out (see
:mod:`skhier._collapsed` for the algebra), so NUTS explores just the
``q + 1`` log standard deviations ``(log tau_0..tau_{q-1}, log s)``.  The
density is a small numba function over per-group sufficient statistics: each
evaluation costs O(groups * q^3) whatever the number of rows.  Its gradient
is analytic (Fisher's identity with the Gaussian posterior moments of the
integrated-out parameters), about as cheap as the value itself.
NUTS itself is nutpie's (Rust), the sampler PyMC uses for its fast path.
The integrated-out parameters are then drawn exactly from their Gaussian
conditional posterior for every posterior draw.

numba compiles the density once per machine (``cache=True``); later fits and
processes reuse the machine code, so a warm fit costs only sampling time.
"""

from __future__ import annotations

import numpy as np

from ._collapsed import draw_conditional, sufficient_stats
from ._spec import design

try:  # pragma: no cover - exercised implicitly
    import numba

    _njit = numba.njit(cache=True, nogil=True, error_model="numpy")
except ImportError:  # pragma: no cover
    _njit = None


def _log_density_and_grad(x, n_obs, zz, zw, ww, prior_sd, rate):
    """Log posterior of ``x = (log tau, log s)`` (up to a constant) and its gradient.

    Value: the collapsed marginal likelihood (see :mod:`skhier._collapsed`) plus
    the Exponential priors and the log-Jacobian of ``x = log sd``.

    Gradient: Fisher's identity, ``d log p(y | x) = E[d log p(y, beta, u | x) | y]``,
    with the Gaussian posterior moments of ``(beta, u)`` given ``x``:

        d/d log tau_j = -G + T_j,          T_j = sum_g E[u_gj^2] / tau_j^2
        d/d log s     = -N + E||y - F beta - Z u||^2 / s^2
                      = -N + quad - beta_hat' S0^{-1} beta_hat - tr(S0^{-1} P^{-1})
                        + p + G q - sum_j T_j

    (the last line uses ``||y - A psi_hat||^2 / s^2 + psi_hat' Lambda psi_hat = quad``
    and ``tr(A'A Q^{-1}) / s^2 = dim(psi) - tr(Lambda Q^{-1})`` for the joint
    posterior precision ``Q = A'A / s^2 + Lambda``).  Cost: two passes over the
    groups of O(q^3 + q^2 p + q p^2) each.
    """
    q = zz.shape[1]
    pp1 = zw.shape[2]
    p = pp1 - 1
    n_groups = zz.shape[0]
    tau2 = np.exp(2.0 * x[:q])
    s2 = np.exp(2.0 * x[q])
    g = ww / s2
    chol = np.empty((n_groups, q, q))
    h = np.empty((n_groups, q, pp1))
    logdet_m = 0.0
    for gi in range(n_groups):
        lg = chol[gi]
        hg = h[gi]
        # Cholesky of M_g = D^{-1} + Z'Z / s^2
        for j in range(q):
            acc = zz[gi, j, j] / s2 + 1.0 / tau2[j]
            for k in range(j):
                acc -= lg[j, k] * lg[j, k]
            d = np.sqrt(acc)
            lg[j, j] = d
            logdet_m += np.log(d)
            for i in range(j + 1, q):
                acc = zz[gi, i, j] / s2
                for k in range(j):
                    acc -= lg[i, k] * lg[j, k]
                lg[i, j] = acc / d
            for i in range(j):
                lg[i, j] = 0.0
        # H_g = L^{-1} Z'W / s^2 ; G -= H'H
        for i in range(q):
            for a in range(pp1):
                acc = zw[gi, i, a] / s2
                for k in range(i):
                    acc -= lg[i, k] * hg[k, a]
                hg[i, a] = acc / lg[i, i]
        for a in range(pp1):
            for b in range(a, pp1):
                acc = 0.0
                for i in range(q):
                    acc += hg[i, a] * hg[i, b]
                g[a, b] -= acc
    # P = F'V^{-1}F + S0^{-1}: Cholesky, beta_hat = P^{-1} c, P^{-1}
    lp = np.zeros((p, p))
    logdet_p = 0.0
    for j in range(p):
        acc = g[j, j] + 1.0 / prior_sd[j] ** 2
        for k in range(j):
            acc -= lp[j, k] * lp[j, k]
        d = np.sqrt(acc)
        lp[j, j] = d
        logdet_p += np.log(d)
        for i in range(j + 1, p):
            acc = g[j, i]
            for k in range(j):
                acc -= lp[i, k] * lp[j, k]
            lp[i, j] = acc / d
    v = np.empty(p)
    quad = g[p, p]
    for i in range(p):
        acc = g[i, p]
        for k in range(i):
            acc -= lp[i, k] * v[k]
        v[i] = acc / lp[i, i]
        quad -= v[i] * v[i]
    beta = _back_substitute(lp, v)
    lp_inv = _lower_inverse(lp)
    logdet_v = 2.0 * n_obs * x[q] + 2.0 * n_groups * np.sum(x[:q]) + 2.0 * logdet_m
    value = -0.5 * (logdet_v + quad + 2.0 * logdet_p)

    # Second pass: T_j = sum_g (ubar_gj^2 + Var u_gj) / tau_j^2
    t = np.zeros(q)
    rhs = np.empty(q)
    k_mat = np.empty((q, p))
    for gi in range(n_groups):
        lg = chol[gi]
        hg = h[gi]
        for i in range(q):
            acc = hg[i, p]
            for a in range(p):
                acc -= hg[i, a] * beta[a]
            rhs[i] = acc
        ubar = _back_substitute(lg, rhs)
        lg_inv = _lower_inverse(lg)
        # K = L^{-T} H_F  (q x p)
        for a in range(p):
            k_mat[:, a] = _back_substitute(lg, hg[:, a].copy())
        for j in range(q):
            var_m = 0.0
            for k in range(j, q):
                var_m += lg_inv[k, j] * lg_inv[k, j]
            var_k = 0.0  # (K P^{-1} K')_jj = ||row_j(K) L_P^{-T}||^2
            for m in range(p):
                acc = 0.0
                for a in range(m + 1):
                    acc += k_mat[j, a] * lp_inv[m, a]
                var_k += acc * acc
            t[j] += (ubar[j] * ubar[j] + var_m + var_k) / tau2[j]

    grad = np.empty(q + 1)
    for j in range(q):
        grad[j] = -n_groups + t[j]
    s_term = -n_obs + quad + p + n_groups * q - np.sum(t)
    for a in range(p):
        s_term -= (beta[a] * beta[a] + np.sum(lp_inv[a:, a] ** 2)) / prior_sd[a] ** 2
    grad[q] = s_term
    # Exponential priors on exp(x), with the log-Jacobian x
    for j in range(q + 1):
        value += x[j] - rate[j] * np.exp(x[j])
        grad[j] += 1.0 - rate[j] * np.exp(x[j])
    return value, grad


def _back_substitute(lower, rhs):
    """Solve ``lower.T @ out = rhs`` for a lower-triangular matrix."""
    n = lower.shape[0]
    out = np.empty(n)
    for i in range(n - 1, -1, -1):
        acc = rhs[i]
        for k in range(i + 1, n):
            acc -= lower[k, i] * out[k]
        out[i] = acc / lower[i, i]
    return out


def _lower_inverse(lower):
    """Inverse of a lower-triangular matrix (forward substitution)."""
    n = lower.shape[0]
    inv = np.zeros((n, n))
    for c in range(n):
        inv[c, c] = 1.0 / lower[c, c]
        for i in range(c + 1, n):
            acc = 0.0
            for k in range(c, i):
                acc -= lower[i, k] * inv[k, c]
            inv[i, c] = acc / lower[i, i]
    return inv


if _njit is not None:
    _back_substitute = _njit(_back_substitute)
    _lower_inverse = _njit(_lower_inverse)
    _log_density_and_grad = _njit(_log_density_and_grad)


def log_density(x, stats, spec):
    """Log posterior density of the unconstrained variance parameters and its gradient."""
    return _log_density_and_grad(
        np.asarray(x, dtype=np.float64),
        float(stats.n_obs),
        stats.zz,
        stats.zw,
        stats.ww,
        spec.beta_prior_sd,
        spec.sd_prior_rates,
    )


def _pack(stats, spec):
    """All data of the density in one float64 buffer (read by the C callback)."""
    n_groups, q, pp1 = stats.zw.shape
    parts = [
        np.array([0.0, stats.n_obs, n_groups, q, pp1 - 1]),
        stats.zz.ravel(),
        stats.zw.ravel(),
        stats.ww.ravel(),
        spec.beta_prior_sd,
        spec.sd_prior_rates,
    ]
    buf = np.ascontiguousarray(np.concatenate(parts))
    buf[0] = buf.size
    return buf


def _unpack(buf):
    n_obs = buf[1]
    n_groups, q, p = int(buf[2]), int(buf[3]), int(buf[4])
    off = 5
    zz = buf[off : off + n_groups * q * q].reshape((n_groups, q, q))
    off += n_groups * q * q
    zw = buf[off : off + n_groups * q * (p + 1)].reshape((n_groups, q, p + 1))
    off += n_groups * q * (p + 1)
    ww = buf[off : off + (p + 1) ** 2].reshape((p + 1, p + 1))
    off += (p + 1) ** 2
    prior_sd = buf[off : off + p]
    rate = buf[off + p : off + p + q + 1]
    return n_obs, zz, zw, ww, prior_sd, rate


def _c_logp(dim, x_ptr, grad_ptr, logp_ptr, buf_ptr):
    """C callback for nutpie: status 0 = ok, 4 = non-finite (a divergence)."""
    total = int(numba.carray(buf_ptr, (1,))[0])
    n_obs, zz, zw, ww, prior_sd, rate = _unpack(numba.carray(buf_ptr, (total,)))
    x = numba.carray(x_ptr, (dim,))
    grad = numba.carray(grad_ptr, (dim,))
    logp = numba.carray(logp_ptr, (1,))
    try:
        value, g = _log_density_and_grad(x, n_obs, zz, zw, ww, prior_sd, rate)
    except Exception:  # noqa: BLE001 - never let an error cross into Rust
        return 4
    logp[0] = value
    grad[:] = g
    if not np.isfinite(value) or not np.all(np.isfinite(g)):
        return 4
    return 0


def _c_expand(dim, n_expanded, x_ptr, out_ptr, buf_ptr):
    x = numba.carray(x_ptr, (dim,))
    out = numba.carray(out_ptr, (n_expanded,))
    out[:] = x
    return 0


if _njit is not None:
    _unpack = _njit(_unpack)
    _dbl = numba.types.CPointer(numba.types.double)
    _c_logp = numba.cfunc(
        numba.types.int64(numba.types.uint64, _dbl, _dbl, _dbl, _dbl),
        cache=True,
        error_model="numpy",
    )(_c_logp)
    _c_expand = numba.cfunc(
        numba.types.int64(numba.types.uint64, numba.types.uint64, _dbl, _dbl, _dbl),
        cache=True,
    )(_c_expand)


def _initial_point_fn(n_dim):
    def initial_point(seed):
        # jittered around tau = s = 0.5 on the standardized scale
        rng = np.random.default_rng(seed)
        return np.log(0.5) + rng.uniform(-0.5, 0.5, size=n_dim)

    return initial_point


class _NativeModel:
    """A nutpie model whose density is a numba C callback: chains run in Rust
    threads without the GIL.  Uses nutpie's low-level model interface (the one
    behind ``nutpie.compile_pymc_model``); :func:`_python_model` is the
    public-API fallback."""

    dims: dict = {}

    def __init__(self, stats, spec):
        self._buf = _pack(stats, spec)
        self._n_dim = spec.n_random + 1

    @property
    def n_dim(self):
        return self._n_dim

    @property
    def shapes(self):
        return {"log_sd": (self._n_dim,)}

    @property
    def coords(self):
        return {}

    def _make_model(self, init_mean):
        from nutpie import _lib

        addr = self._buf.ctypes.data
        logp_fn = _lib.LogpFunc(_c_logp.address, addr, self)
        expand_fn = _lib.ExpandFunc(self._n_dim, self._n_dim, _c_expand.address, addr, self)
        sizes = {"param": self._n_dim}
        variables = _lib.PyVariable.new_variables(
            ["log_sd"], ["float64"], [(self._n_dim,)], sizes, {"log_sd": ("param",)}
        )
        return _lib.PyMcModel(
            logp_fn,
            expand_fn,
            variables,
            self._n_dim,
            sizes,
            {},
            _initial_point_fn(self._n_dim),
            None,
        )

    def _make_sampler(self, settings, init_mean, cores, progress_type, store):
        from nutpie import _lib

        model = self._make_model(init_mean)
        return _lib.PySampler.from_pymc(settings, cores, model, progress_type, store)


def _python_model(stats, spec):
    """The same density through nutpie's public Python-callback interface."""
    from nutpie.compiled_pyfunc import from_pyfunc

    n_dim = spec.n_random + 1
    args = (
        float(stats.n_obs),
        stats.zz,
        stats.zw,
        stats.ww,
        spec.beta_prior_sd,
        spec.sd_prior_rates,
    )

    def make_logp_fn():
        def logp(x):
            value, grad = _log_density_and_grad(x, *args)
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                return -np.inf, np.zeros_like(x)
            return value, grad

        return logp

    def make_expand_fn(seed1, seed2, chain):
        return lambda x: {"log_sd": x.copy()}

    return from_pyfunc(
        n_dim,
        make_logp_fn,
        make_expand_fn,
        [np.dtype("float64")],
        [(n_dim,)],
        ["log_sd"],
        make_initial_point_fn=_initial_point_fn(n_dim),
    )


def _sample_nutpie(
    stats, spec, *, draws, tune, chains, seed, target_accept, progressbar, native=True
):
    import nutpie

    model = _NativeModel(stats, spec) if native else _python_model(stats, spec)
    try:
        trace = _run_nutpie(nutpie, model, draws, tune, chains, seed, target_accept, progressbar)
    except (AttributeError, TypeError):
        if not native:
            raise
        # nutpie's low-level interface changed: use its public callback interface
        model = _python_model(stats, spec)
        trace = _run_nutpie(nutpie, model, draws, tune, chains, seed, target_accept, progressbar)
    log_sd = np.asarray(trace.posterior["log_sd"].values)  # (chains, draws, q + 1)
    diverging = np.asarray(trace.sample_stats["diverging"].values, dtype=bool)
    return log_sd, diverging


def _run_nutpie(nutpie, model, draws, tune, chains, seed, target_accept, progressbar):
    return nutpie.sample(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progress_bar=progressbar,
        target_accept=target_accept,
        save_warmup=False,
    )


def fit_collapsed(X, y, codes, n_groups, spec, scaling, *, sampler_kwargs, rng):
    """Sample the collapsed posterior and draw everything integrated out.

    Returns the standardized-scale draws as a dict: ``beta`` (C, D, p),
    ``u`` (C, D, G, q), ``tau`` (C, D, q), ``s`` (C, D) and ``diverging`` (C, D).
    """
    F, Z, ys = design(X, y, spec, scaling)
    stats = sufficient_stats(F, Z, ys, codes, n_groups)
    del F, Z, ys
    log_sd, diverging = _sample_nutpie(stats, spec, **sampler_kwargs)
    n_chains, n_draws, _ = log_sd.shape
    sd = np.exp(log_sd.reshape(n_chains * n_draws, -1))
    tau, s = sd[:, :-1], sd[:, -1]
    beta, u = _draw_in_chunks(stats, tau, s, spec.beta_prior_sd, rng)
    shape = (n_chains, n_draws)
    return {
        "beta": beta.reshape(shape + beta.shape[1:]),
        "u": u.reshape(shape + u.shape[1:]),
        "tau": tau.reshape(shape + tau.shape[1:]),
        "s": s.reshape(shape),
        "diverging": diverging,
    }


def _draw_in_chunks(stats, tau, s, prior_sd, rng, max_bytes=64 * 2**20):
    n_groups, q, pp1 = stats.zw.shape
    per_draw = 8 * n_groups * q * (q + 2 * pp1 + 2)
    chunk = max(1, int(max_bytes // per_draw))
    betas, us = [], []
    for start in range(0, len(s), chunk):
        sl = slice(start, start + chunk)
        beta, u = draw_conditional(stats, tau[sl], s[sl], prior_sd, rng)
        betas.append(beta)
        us.append(u)
    return np.concatenate(betas), np.concatenate(us)
