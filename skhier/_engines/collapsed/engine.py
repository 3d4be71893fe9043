"""The collapsed engine: NUTS on the variance parameters only.

The population coefficients and all group effects are integrated out (see
:mod:`skhier._engines.collapsed.reference` for the algebra), so NUTS explores just the ``q + 1``
log standard deviations ``(log tau_0..tau_{q-1}, log s)`` and, for correlated
effects, the ``q(q-1)/2`` unconstrained correlation parameters.  The
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

from functools import cache

import numpy as np

from skhier._engines.collapsed import kernels as _kernels
from skhier._engines.collapsed.draw import DRAW_BLOCK, draw_population, group_draws_in_chunks
from skhier._engines.collapsed.grad import shape_class
from skhier._engines.collapsed.kernels import density_of
from skhier._engines.collapsed.reference import SufficientStats, sufficient_stats
from skhier._engines.nutpie import C_LOGP_SIG, NativeModel, python_model
from skhier._engines.nutpie import sample as sample_nuts
from skhier._model.spec import design
from skhier._numba import ahead as _compile_ahead
from skhier._numba.jit import cfunc, specialized
from skhier._numba.linalg import numba


def log_density(x, stats, spec):
    """Log posterior density of the unconstrained variance parameters and its gradient."""
    return _kernels.density_for(*stats.zw.shape[1:])(
        np.asarray(x, dtype=np.float64),
        float(stats.n_obs),
        stats.zz,
        stats.zw,
        stats.ww,
        spec.beta_prior_sd,
        spec.sd_prior_rates,
        spec.correlated,
        float(spec.prior_corr_eta),
    )


def n_params(spec):
    """Dimension of the sampled vector ``(log tau, correlation parameters, log s)``."""
    return spec.n_random + spec.n_corr + 1


def _pack(stats, spec):
    """All data of the density in one float64 buffer (read by the C callback)."""
    n_groups, q, pp1 = stats.zw.shape
    parts = [
        np.array([0.0, stats.n_obs, n_groups, q, pp1 - 1, spec.correlated, spec.prior_corr_eta]),
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
    correlated, eta = buf[5] != 0.0, buf[6]
    off = 7
    zz = buf[off : off + n_groups * q * q].reshape((n_groups, q, q))
    off += n_groups * q * q
    zw = buf[off : off + n_groups * q * (p + 1)].reshape((n_groups, q, p + 1))
    off += n_groups * q * (p + 1)
    ww = buf[off : off + (p + 1) ** 2].reshape((p + 1, p + 1))
    off += (p + 1) ** 2
    prior_sd = buf[off : off + p]
    rate = buf[off + p : off + p + q + 1]
    return n_obs, zz, zw, ww, prior_sd, rate, correlated, eta


def _make_c_logp(Q, PP1):
    def c_logp(dim, x_ptr, grad_ptr, logp_ptr, buf_ptr):
        """C callback for nutpie: status 0 = ok, 4 = non-finite (a divergence)."""
        total = int(numba.carray(buf_ptr, (1,))[0])
        n_obs, zz, zw, ww, prior_sd, rate, correlated, eta = _unpack(
            numba.carray(buf_ptr, (total,))
        )
        x = numba.carray(x_ptr, (dim,))
        grad = numba.carray(grad_ptr, (dim,))
        logp = numba.carray(logp_ptr, (1,))
        try:
            value, g = density_of(Q, PP1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta)
        except Exception:  # noqa: BLE001 - never let an error cross into Rust
            return 4
        logp[0] = value
        finite = np.isfinite(value)
        for i in range(dim):  # (a loop: array expressions compile slowly)
            grad[i] = g[i]
            finite = finite and np.isfinite(g[i])
        return 0 if finite else 4

    return cfunc(C_LOGP_SIG)(specialized(Q, PP1)(c_logp))


@cache
def _c_logp_of_class(Q, PP1):
    return _make_c_logp(Q, PP1)


def _c_logp_for(q, pp1):
    """The C callback of the density, compiled (once per machine: numba's cache
    holds one entry per shape class) for the shape class of ``(q, p + 1)`` only."""
    return _c_logp_of_class(*shape_class(q, pp1))


# inlined into each C callback (a separately compiled function costs about a second
# of numba's one-time compilation); the kernel cache's stamp covers this module
if numba is not None:
    _unpack = _kernels._njit_inline(_unpack)


def _start(spec):
    """Centre of the initial points: SDs 0.5 (standardized scale), correlations 0."""
    return np.r_[np.full(spec.n_random, np.log(0.5)), np.zeros(spec.n_corr), np.log(0.5)]


def _initial_point_fn(spec):
    centre = _start(spec)

    def initial_point(seed):
        rng = np.random.default_rng(seed)
        return centre + rng.uniform(-0.5, 0.5, size=len(centre))

    return initial_point


def _sample_nutpie(
    stats, spec, *, draws, tune, chains, seed, target_accept, progressbar, native=True
):
    n_dim = n_params(spec)

    def native_model():
        c_logp = _c_logp_for(*stats.zw.shape[1:])
        return NativeModel(_pack(stats, spec), c_logp, n_dim, _initial_point_fn(spec))

    def python():
        return python_model(n_dim, lambda x: log_density(x, stats, spec), _initial_point_fn(spec))

    return sample_nuts(
        native_model if native else python,
        python if native else None,
        draws=draws, tune=tune, chains=chains, seed=seed, target_accept=target_accept,
        progressbar=progressbar,
    )  # fmt: skip


def laplace_fit(stats, spec):
    """Posterior mode of the log SDs and the Cholesky factor of ``-H^{-1}`` there.

    The mode comes from L-BFGS with the analytic gradient, the Hessian from
    central differences of that gradient.  Returns ``(mode, chol, ok)``; when the
    mode or the Hessian is not well defined, ``ok`` is False and ``chol`` is a
    small diagonal.
    """
    from scipy import optimize

    def neg(x):
        value, grad = log_density(x, stats, spec)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(x)
        return -value, -grad

    n_dim = n_params(spec)
    res = optimize.minimize(neg, _start(spec), jac=True, method="L-BFGS-B")
    mode = res.x
    step = 1e-5
    hess = np.empty((n_dim, n_dim))
    for i in range(n_dim):
        e = np.zeros(n_dim)
        e[i] = step
        hess[:, i] = (neg(mode + e)[1] - neg(mode - e)[1]) / (2 * step)
    hess = 0.5 * (hess + hess.T)
    try:
        chol = np.linalg.cholesky(np.linalg.inv(hess))
    except np.linalg.LinAlgError:
        return mode, np.diag(np.full(n_dim, 1e-6)), False
    return mode, chol, bool(res.success)


def _laplace(stats, spec, *, draws, chains, seed, **_):
    """Laplace approximation of the posterior of the log SDs (fast, approximate):
    ``x ~ Normal(mode, -H^{-1})`` drawn independently."""
    from skhier._util.warn import warn
    from skhier.exceptions import ConvergenceWarning

    mode, chol, ok = laplace_fit(stats, spec)
    if not ok:
        warn(
            "The Laplace approximation failed (no well-defined posterior mode of the "
            "log SDs). Use inference='nuts'.",
            ConvergenceWarning,
        )
    z = np.random.default_rng(seed).standard_normal((chains, draws, len(mode)))
    none = np.zeros((chains, draws), dtype=bool)
    return mode + z @ chol.T, none, none


def _importance(stats, spec, *, draws, chains, seed, **_):
    """Pareto-smoothed importance sampling from the Laplace approximation
    (:mod:`skhier._engines.collapsed.importance`): ``(theta (C, D, n_params), info)``, theta None
    when the weights are unreliable or the mode is not well defined."""
    from skhier._engines.collapsed.importance import adaptive_importance

    mode, chol, ok = laplace_fit(stats, spec)
    n = chains * draws
    if not ok:
        return None, {"method": "importance", "pareto_k": float("inf"), "n_proposals": 0}

    value = _kernels.value_for(*stats.zw.shape[1:])
    args = (float(stats.n_obs), stats.zz, stats.zw, stats.ww, spec.beta_prior_sd)
    rest = (spec.sd_prior_rates, spec.correlated, float(spec.prior_corr_eta))

    def logp(x):
        v = value(x, *args, *rest)
        return v if np.isfinite(v) else -np.inf

    rng = np.random.default_rng(seed)
    threads = numba.get_num_threads() if numba is not None else 1
    x, info = adaptive_importance(logp, mode, chol, n, n, rng, threads)
    info["method"] = "importance"
    return (None if x is None else x.reshape(chains, draws, -1)), info


def _sample_theta(stats, spec, config):
    """Draws of the sampled parameters: ``(theta (C, D, n_params), diverging,
    saturated, info)`` by the inference method the config names."""
    kwargs = config.nuts()
    inference = config.inference
    info = {"method": inference}
    if inference == "importance":
        theta, info = _importance(stats, spec, **kwargs)
        diverging = saturated = np.zeros(theta.shape[:2], dtype=bool) if theta is not None else None
        if theta is None:  # unreliable weights: MCMC instead, and say so
            info = {
                "method": "nuts",
                "fallback": f"importance sampling's pareto_k {info['pareto_k']:.2f} > 0.7",
            }
            theta, diverging, saturated = _sample_nutpie(stats, spec, **kwargs)
    else:
        sampler = _laplace if inference == "laplace" else _sample_nutpie
        theta, diverging, saturated = sampler(stats, spec, **kwargs)
    return theta, diverging, saturated, info


def fit_collapsed(X, y, codes, n_groups, spec, scaling, *, config, rng, stats=None,
                  weights=None):  # fmt: skip
    """Sample the collapsed posterior and draw everything integrated out.

    Returns the standardized-scale draws as a dict: ``beta`` (C, D, p),
    ``u`` (an iterator of ``(start, u)`` over blocks of groups, each ``u`` of
    shape (C * D, c, q): the group effects are drawn a block at a time, as the
    caller reduces them), ``tau`` (C, D, q), ``corr`` (C, D, q, q), ``s`` (C, D),
    ``diverging`` and ``max_treedepth`` (C, D).  ``stats``: the sufficient
    statistics computed elsewhere (out of core); ``X``, ``y`` and ``codes`` are
    then unused; ``weights``: the rows' frequency weights.
    """
    if stats is None:
        F, Z, ys = design(X, y, spec, scaling)
        stats = sufficient_stats(F, Z, ys, codes, n_groups, weights=weights)
        del F, Z, ys
    n_random, pp1 = stats.zw.shape[1:]
    key = "draws-{}-{}".format(*shape_class(n_random, pp1))
    ahead = _compile_ahead.start(key, f"{__name__}:compile_draws", n_random, pp1 - 1)
    try:
        theta, diverging, saturated, info = _sample_theta(stats, spec, config)
    except BaseException:
        if ahead is not None:
            ahead.stop()
        raise
    if ahead is not None:
        ahead.wait()
    args = (spec.n_random, spec.correlated, float(spec.prior_corr_eta), spec.beta_prior_sd)
    chol_cov, beta, groups = exact_draws(theta, stats, *args, rng)
    _compile_ahead.done(key)
    result = standardized_draws(theta, beta, groups, spec, diverging, saturated, chol_cov)
    result["n_groups"] = n_groups
    result["inference"] = info
    return result


def exact_draws(theta, stats, q, correlated, eta, beta_prior_sd, rng):
    """Exact draws of everything integrated out, one per draw of ``theta`` (C, D,
    n_params): ``(chol_cov (C * D, q, q), beta (C * D, p), blocks of u)`` (the
    blocks: an iterator, see :func:`fit_collapsed`)."""
    n_chains, n_draws, _ = theta.shape
    x = theta.reshape(n_chains * n_draws, -1)
    chol_cov = _kernels.cov_chols(np.ascontiguousarray(x[:, :-1]), q, correlated, eta)
    s = np.exp(x[:, -1])
    beta = draw_population(stats, chol_cov, s, beta_prior_sd, rng)
    return chol_cov, beta, group_draws_in_chunks(stats, chol_cov, s, beta, rng)


def compile_draws(q, p):
    """Compile (or load) the exact-draw kernels of ``q`` group effects and ``p``
    coefficients by running :func:`exact_draws` on a tiny problem with the
    argument types of a fit's (run in a second process by
    :mod:`skhier._numba.ahead`; every array the kernels take is contiguous, so
    the sizes here do not matter)."""
    rng = np.random.default_rng(0)
    n_groups = 3
    zz = np.broadcast_to(np.eye(q), (n_groups, q, q)).copy()
    zw = rng.standard_normal((n_groups, q, p + 1))
    ww = np.eye(p + 1) * 10.0
    stats = SufficientStats(n=np.full(n_groups, 5.0), zz=zz, zw=zw, ww=ww)
    theta = np.zeros((2, DRAW_BLOCK + 1, q + q * (q - 1) // 2 + 1))
    draws = exact_draws(theta, stats, q, True, 2.0, np.ones(p), rng)
    for _ in draws[2]:
        pass


def standardized_draws(theta, beta, u, spec, diverging, saturated, chol_cov=None):
    """The engines' common result from the sampled ``theta`` (C, D, n_params) and
    the flat draws ``beta`` (C * D, p) and ``u``: (C * D, G, q) or an iterator of
    blocks of groups (see :func:`fit_collapsed`); ``chol_cov`` (C * D, q, q) when
    the caller already has the covariance factors of ``theta``."""
    shape = theta.shape[:2]
    x = theta.reshape((-1, theta.shape[-1]))
    q = spec.n_random
    if chol_cov is None:
        chol_cov = _kernels.cov_chols(x[:, :-1], q, spec.correlated, float(spec.prior_corr_eta))
    tau, s = np.exp(x[:, :q]), np.exp(x[:, -1])
    corr_chol = chol_cov / tau[:, :, None]
    return {
        "beta": beta.reshape(shape + beta.shape[1:]),
        "u": u if not isinstance(u, np.ndarray) else u.reshape(shape + u.shape[1:]),
        "tau": tau.reshape(shape + tau.shape[1:]),
        "corr": (corr_chol @ np.swapaxes(corr_chol, -1, -2)).reshape(shape + (q, q)),
        "s": s.reshape(shape),
        "diverging": diverging,
        "max_treedepth": saturated,
    }
