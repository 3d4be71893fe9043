"""The "nuts" engine of generalized linear models: nutpie's NUTS on the explicit
model (non-centered or centered), whose log density and gradient are skhier's own numba code
(:mod:`skhier._engines.nuts.kernels`).

It is the model of :func:`skhier._engines.pymc.build_model` (the same priors; the
same parametrization, but for the centered form's intercepts, sampled at each
group's mean row) without PyMC: nothing is compiled per data set (numba compiles
the density once per machine and caches it), and chains run in nutpie's Rust
threads without the GIL.  One gradient streams over the rows, sorted by group
(:func:`rows_by_group`), three times (linear predictor, likelihood, group sums).
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np

from skhier._engines.collapsed.kernels import cov_chols
from skhier._engines.nutpie import C_LOGP_SIG, NativeModel, python_model
from skhier._engines.nutpie import sample as sample_nuts
from skhier._engines.nuts.kernels import FAMILY_CODES, FORMS, glmm_density
from skhier._model.spec import design
from skhier._numba.jit import cfunc
from skhier._numba.linalg import _njit_inline

_HEAD = 10  # total, family, n_rows, p, q, n_groups, correlated, eta, centered, n_values


def _layout(spec, n_groups):
    """(p, q, number of theta entries, offset of z, dimension of x)."""
    p, q = spec.n_fixed, spec.n_random
    n_theta = q + spec.n_corr
    z_off = p + n_theta
    n_dim = z_off + n_groups * q + (1 if spec.likelihood == "negative_binomial" else 0)
    return p, q, n_theta, z_off, n_dim


def rows_by_group(F, y, codes, offset, n_groups, weights=None):
    """The rows in the layout :func:`skhier._engines.nuts.kernels.glmm_density` reads:
    ``(y, offset, wts, Ft, starts, y_counts, y_values)``, rows sorted by group
    (``starts`` (G + 1) delimits each group's rows), their frequency weights (1:
    each row once), ``F`` transposed, and the distinct outcomes with their weighted
    counts."""
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_groups + 1))
    if starts[0] != 0 or starts[-1] != len(codes):  # every row in exactly one group
        raise ValueError(f"group codes must lie in [0, {n_groups}).")
    y = np.asarray(y, dtype=np.float64)[order]
    wts = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)[order]
    y_values, which = np.unique(y, return_inverse=True)
    y_counts = np.bincount(which.ravel(), weights=wts, minlength=len(y_values))
    Ft = np.ascontiguousarray(np.asarray(F, dtype=np.float64)[order].T)
    offset = np.asarray(offset, dtype=np.float64)[order]
    return y, offset, wts, Ft, starts, y_counts, y_values


def group_mean_rows(F, codes, n_groups, shift):
    """Each group's mean of ``F[:, 1:] + shift`` (G, p - 1); ``shift`` for a group
    without rows."""
    sizes = np.bincount(codes, minlength=n_groups)
    out = np.empty((n_groups, F.shape[1] - 1))
    for k in range(F.shape[1] - 1):
        sums = np.bincount(codes, weights=F[:, 1 + k], minlength=n_groups)
        out[:, k] = np.divide(sums, sizes, out=np.zeros(n_groups), where=sizes > 0) + shift[k]
    return out


def centered_coefs(z, beta, zbar, slope_idx):
    """The group coefficients ``c`` (S, G, q) from the sampled ``(d, c[..., 1:])``
    of the centered form (:func:`skhier._engines.nuts.kernels._centered_coefs`, per draw)."""
    out = z.copy()
    out[:, :, 0] -= beta[:, 1:] @ zbar.T  # every slope at its population value...
    for a, k in enumerate(slope_idx, start=1):  # ...but the group's own where it varies
        out[:, :, 0] -= (z[:, :, a] - beta[:, 1 + k, None]) * zbar[:, k]
    return out


def _pack(F, y, codes, offset, n_groups, spec, shift, weights=None):
    n_rows, p = F.shape
    q = spec.n_random
    y, offset, wts, Ft, starts, y_counts, y_values = rows_by_group(
        F, y, codes, offset, n_groups, weights
    )
    zbar = group_mean_rows(F, codes, n_groups, shift)
    head = [0.0, FAMILY_CODES[spec.likelihood], n_rows, p, q, n_groups]
    head += [float(spec.correlated and q > 1), float(spec.prior_corr_eta)]
    head += [float(FORMS[spec.parametrization]), len(y_values)]
    parts = [np.array(head), spec.beta_prior_sd, spec.sd_prior_rates[:q], shift]
    parts += [np.asarray(spec.slope_idx, dtype=np.float64), y, offset, wts, starts, y_counts]
    parts += [y_values, Ft, zbar]
    buf = np.concatenate([np.ravel(a).astype(np.float64) for a in parts])
    buf[0] = buf.size
    return buf


def _unpack(buf):
    family, n_rows, p, q, n_groups = int(buf[1]), int(buf[2]), int(buf[3]), int(buf[4]), int(buf[5])
    correlated, eta, form, n_values = buf[6] != 0.0, buf[7], int(buf[8]), int(buf[9])
    off = _HEAD
    prior_sd = buf[off : off + p]
    rates = buf[off + p : off + p + q]
    off += p + q
    shift = buf[off : off + p - 1]
    slope_idx = buf[off + p - 1 : off + p + q - 2].astype(np.int64)
    off += p + q - 2
    y = buf[off : off + n_rows]
    offset = buf[off + n_rows : off + 2 * n_rows]
    wts = buf[off + 2 * n_rows : off + 3 * n_rows]
    off += 3 * n_rows
    starts = buf[off : off + n_groups + 1].astype(np.int64)
    off += n_groups + 1
    y_counts = buf[off : off + n_values]
    y_values = buf[off + n_values : off + 2 * n_values]
    off += 2 * n_values
    Ft = buf[off : off + n_rows * p].reshape((p, n_rows))
    off += n_rows * p
    zbar = buf[off : off + n_groups * (p - 1)].reshape((n_groups, p - 1))
    return (family, y, offset, wts, Ft, starts, n_groups, q, correlated, eta, prior_sd, rates,
            form, shift, slope_idx, zbar, y_counts, y_values)  # fmt: skip


#: inlined into the C callback (a separate function costs ~1 s of compilation)
_unpack_inline = _njit_inline(_unpack)


def _c_logp_callback(dim, x_ptr, grad_ptr, logp_ptr, buf_ptr):
    """The density as nutpie's C callback (a module-level function, not a closure:
    a closure over a dispatcher gives numba's cache a key that changes with every
    process, so the callback would be compiled again by every new process)."""
    total = int(numba.carray(buf_ptr, (1,))[0])
    data = _unpack_inline(numba.carray(buf_ptr, (total,)))
    family, y, offset, wts, Ft, starts, n_groups, q, correlated, eta, prior_sd = data[:11]
    rates, form, shift, slope_idx, zbar, y_counts, y_values = data[11:18]
    x = numba.carray(x_ptr, (dim,))
    grad = numba.carray(grad_ptr, (dim,))
    logp = numba.carray(logp_ptr, (1,))
    try:
        value = glmm_density(
            x, family, y, offset, wts, Ft, starts, n_groups, q, correlated, eta, prior_sd,
            rates, form, shift, slope_idx, zbar, y_counts, y_values, grad,
        )  # fmt: skip
    except Exception:  # noqa: BLE001 - never let an error cross into Rust
        return 4
    logp[0] = value
    finite = np.isfinite(value)
    for i in range(dim):
        finite = finite and np.isfinite(grad[i])
    return 0 if finite else 4


def _make_c_logp():
    return cfunc(C_LOGP_SIG, fastmath=True)(_c_logp_callback)


@cache
def _c_logp():
    return _make_c_logp()


def _initial_point_fn(spec, n_dim):
    p, q = spec.n_fixed, spec.n_random

    nb = 1 if spec.likelihood == "negative_binomial" else 0

    def initial_point(seed):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-0.5, 0.5, size=n_dim)
        x[p : p + q] += np.log(0.5)  # group SDs about 0.5 on the link scale
        if spec.parametrization != "non-centered":  # coefficients near the population's
            x[p + spec.n_random + spec.n_corr : n_dim - nb] *= 0.5
        if spec.likelihood == "negative_binomial":
            x[-1] = 0.5 + 0.2 * x[-1]  # phi: dispersion phi^2 about 0.25
        return x

    return initial_point


def fit_glmm(X, y, codes, n_groups, spec, scaling, *, config, rng, offset, weights=None):
    """Sample the GLM of ``spec``; the standardized draws as a dict (as
    :func:`skhier._engines.pymc.fit_explicit` returns them).  ``weights``: the
    rows' frequency weights (a binary ``y`` may then be a share of successes, its
    weight the trials)."""
    F, _, _ = design(X, None, spec, scaling)
    y = np.asarray(y, dtype=np.float64)
    p, q, n_theta, z_off, n_dim = _layout(spec, n_groups)
    shift = scaling.x_mean / scaling.x_scale
    buf = _pack(F, y, codes, offset, n_groups, spec, shift, weights)
    init = _initial_point_fn(spec, n_dim)
    args = _unpack(buf)

    def log_density(x):
        grad = np.zeros(n_dim)
        return glmm_density(np.asarray(x, dtype=np.float64), *args, grad), grad

    x, diverging, saturated = sample_nuts(
        lambda: NativeModel(buf, _c_logp(), n_dim, init),
        lambda: python_model(n_dim, log_density, init),
        draws=int(config.draws),
        tune=int(config.tune),
        chains=int(config.chains),
        seed=int(config.seed),
        target_accept=float(config.target_accept),
        progressbar=bool(config.progressbar),
    )
    n_chains, n_draws = x.shape[:2]
    flat = x.reshape(n_chains * n_draws, n_dim)
    correlated = bool(spec.correlated and q > 1)
    chol = cov_chols(
        np.ascontiguousarray(flat[:, p : p + n_theta]), q, correlated, spec.prior_corr_eta
    )
    z = flat[:, z_off : z_off + n_groups * q].reshape(-1, n_groups, q)
    beta = flat[:, :p]
    if spec.parametrization == "centered":  # u = c - mu(beta)
        z = centered_coefs(z, beta, args[15], spec.slope_idx)  # the density's zbar
        mu = np.column_stack(
            [beta[:, 0] - beta[:, 1:] @ shift, beta[:, 1:][:, list(spec.slope_idx)]]
        )
        u = z - mu[:, None, :]
    elif spec.parametrization == "partial":  # u = C (u_0 / C_00, z_1, ...)
        mu0 = beta[:, 0] - beta[:, 1:] @ shift
        u0 = z[:, :, 0] - beta[:, 1:] @ args[15].T - mu0[:, None]
        z = z.copy()
        z[:, :, 0] = u0 / chol[:, 0, 0][:, None]
        u = np.einsum("sab,sgb->sga", chol, z)
    else:
        u = np.einsum("sab,sgb->sga", chol, z)
    sigma = chol @ np.swapaxes(chol, 1, 2)
    tau = np.sqrt(np.diagonal(sigma, axis1=1, axis2=2))
    shape = (n_chains, n_draws)
    out = {
        "beta": flat[:, :p].reshape(shape + (p,)),
        "u": u.reshape(shape + (n_groups, q)),
        "tau": tau.reshape(shape + (q,)),
        "s": np.ones(shape),
        "corr": None,
        "diverging": diverging,
        "max_treedepth": saturated,
        "dispersion": None,
        "inference": {"method": "nuts"},
    }
    if correlated:
        corr = sigma / (tau[:, :, None] * tau[:, None, :])
        out["corr"] = corr.reshape(shape + (q, q))
    if spec.likelihood == "negative_binomial":
        out["dispersion"] = (flat[:, -1] ** 2).reshape(shape)
    return out
