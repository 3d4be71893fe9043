"""numba kernels of the augmented engine: Student-t noise as a scale mixture.

``y_i = F_i beta + Z_i u_g + e_i`` with ``e_i ~ Student-t(nu, 0, s)`` is the same
as ``e_i | w_i ~ Normal(0, s^2 / w_i)`` with ``w_i ~ Gamma(nu/2, rate=nu/2)``.
Given the weights ``w`` the model is the Gaussian one with per-row precisions,
so the collapsed machinery of :mod:`skhier._engines.collapsed.kernels` applies unchanged to the
weighted sufficient statistics.  One sweep of the sampler updates two blocks,
each from its exact conditional (or a kernel leaving it invariant):

1. ``(x, beta, u) | w``: the variance parameters ``x = (log tau, corr, log s)``
   by Hamiltonian Monte Carlo on the collapsed density of the weighted model,
   then ``beta, u`` exactly from their Gaussian conditional;
2. ``(nu, w) | beta, u, s``: ``nu`` by slice sampling from its conditional with
   ``w`` integrated out (the Student-t likelihood of the residuals: much better
   mixing than ``nu | w``), then each ``w_i ~ Gamma((nu + 1)/2, rate=(nu + r_i^2)/2)``
   with ``r_i`` the residual in units of ``s``;
3. a joint rescaling of ``w`` and ``s`` (:func:`rescale_move`), which leaves the
   likelihood unchanged and removes the slow direction of the first two blocks.

The exact draws of ``beta, u``, of the weights and the rescaling repeat
``EFFECT_CYCLES`` times per sweep (recomputing the weighted statistics; the
slice for ``(s, nu)`` runs in the last one): a group holding outliers moves its
effects only as fast as its weights do.  Each repetition is a valid Gibbs
update, so this is thinning at the cost of the O(rows) work only.

Prior of the degrees of freedom: ``nu ~ Gamma(2, rate=0.1)`` restricted to
``nu > 1`` (brms' default, Juarez and Steel 2010; mean about 21, so the data
must show heavy tails for ``nu`` to be small; ``nu > 1`` keeps the mean of the
noise defined).

Each chain is one compiled loop (``nogil``) with its own
:class:`numpy.random.Generator`, so chains run in parallel threads and a seed
gives the same draws whatever the thread scheduling.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from skhier._engines.collapsed.grad import shape_class
from skhier._engines.collapsed.kernels import (
    _njit,
    _njit_inline,
    cov_chol,
    density_of,
    draw_one,
    n_corr_params,
)
from skhier._numba.jit import specialized

NU_PRIOR_SHAPE = 2.0
NU_PRIOR_RATE = 0.1
#: HMC: cap on leapfrog steps per transition; on the step size (whitened units: a
#: step of more than one posterior SD only reaches the steep tails of the
#: collapsed density, where the energy error explodes); transitions per sweep
MAX_LEAPFROG = 64
MAX_STEP = 1.0
HMC_PER_SWEEP = 2
#: cycles of (beta, u | w) -> (s, nu, w | beta, u) per sweep: the group effects of
#: groups holding outliers mix through the weights, the sampler's slowest part
EFFECT_CYCLES = 2


@_njit
def weighted_stats(F, Z, y, codes, w, zz, zw, ww):
    """Per-group ``Z'WZ``, ``Z'W[F, y]`` and ``[F, y]'W[F, y]`` (``W = diag(w)``) in place."""
    q, p = Z.shape[1], F.shape[1]
    zz[:] = 0.0
    zw[:] = 0.0
    ww[:] = 0.0
    row = np.empty(p + 1)
    for i in range(y.shape[0]):
        g = codes[i]
        wi = w[i]
        for a in range(p):
            row[a] = F[i, a]
        row[p] = y[i]
        for a in range(p + 1):
            ra = wi * row[a]
            for b in range(a, p + 1):
                ww[a, b] += ra * row[b]
        for j in range(q):
            zj = wi * Z[i, j]
            for k in range(j, q):
                zz[g, j, k] += zj * Z[i, k]
            for a in range(p + 1):
                zw[g, j, a] += zj * row[a]
    for a in range(p + 1):
        for b in range(a):
            ww[a, b] = ww[b, a]
    for g in range(zz.shape[0]):
        for j in range(q):
            for k in range(j):
                zz[g, j, k] = zz[g, k, j]


@_njit
def scaled_residuals(F, Z, y, codes, beta, u, s, out):
    """``(y - F beta - Z u_g) / s`` into ``out``."""
    for i in range(y.shape[0]):
        acc = y[i]
        for a in range(F.shape[1]):
            acc -= F[i, a] * beta[a]
        g = codes[i]
        for j in range(Z.shape[1]):
            acc -= Z[i, j] * u[g, j]
        out[i] = acc / s


@_njit
def log_noise_conditional(log_s, e, resid, freq, noise_rate):
    """Log density of ``(log s, e = log(nu - 1))`` given the residuals ``resid``
    (standardized units) with the weights integrated out: the Exponential prior
    on ``s``, the prior on ``nu``, both log-Jacobians and the Student-t likelihood
    (each row's times its frequency weight ``freq``)."""
    s = math.exp(log_s)
    nu = 1.0 + math.exp(e)
    n = 0.0
    for i in range(freq.shape[0]):
        n += freq[i]
    value = -noise_rate * s + log_s - n * log_s
    value += (NU_PRIOR_SHAPE - 1.0) * math.log(nu) - NU_PRIOR_RATE * nu + e
    value += n * (math.lgamma(0.5 * (nu + 1.0)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu))
    inv = 1.0 / (s * s * nu)
    acc = 0.0
    for i in range(resid.shape[0]):
        acc += freq[i] * math.log1p(resid[i] * resid[i] * inv)
    return value - 0.5 * (nu + 1.0) * acc


@_njit
def slice_noise(log_s, e, shear, resid, freq, noise_rate, rng):
    """Slice sampling of ``(log s, e)`` along the line ``(shear, 1)`` through the
    current point (stepping out, then shrinkage): with ``shear`` the regression
    slope of ``log s`` on ``e`` learned in warm-up, the line follows their
    posterior correlation (any fixed line leaves the conditional invariant)."""
    width = 1.0

    def at(t):
        return log_noise_conditional(log_s + shear * t, e + t, resid, freq, noise_rate)

    level = at(0.0) + math.log(rng.random())
    lo = -width * rng.random()
    hi = lo + width
    for _ in range(32):
        if at(lo) <= level:
            break
        lo -= width
    for _ in range(32):
        if at(hi) <= level:
            break
        hi += width
    for _ in range(100):
        t = lo + (hi - lo) * rng.random()
        if at(t) > level:
            return log_s + shear * t, e + t
        if t < 0.0:
            lo = t
        else:
            hi = t
    return log_s, e


@_njit
def draw_weights(r, nu, freq, w, rng):
    """``w_i ~ Gamma(f_i (nu + 1)/2, rate=(nu + r_i^2)/2)`` into ``w``: a row of
    frequency weight ``f_i`` stands for ``f_i`` copies, each with its own weight
    from ``Gamma((nu + 1)/2, ...)``, and the Gaussian step needs only their sum."""
    for i in range(r.shape[0]):
        w[i] = rng.gamma(0.5 * (nu + 1.0) * freq[i], 2.0 / (nu + r[i] * r[i]))


@_njit
def rescale_move(w, s, nu, n_obs, noise_rate, rng):
    """Joint rescaling ``w -> c w``, ``s -> sqrt(c) s`` (a generalized Gibbs step,
    Liu and Sabatti 2000): the likelihood depends on ``s^2 / w_i`` only, so ``c``
    is drawn exactly from ``c^(n nu/2 - 1/2) exp(-c nu sum(w)/2 - rate s sqrt(c))``
    (Gamma proposal, accepted with probability ``exp(-rate s sqrt(c))``), with
    ``n = n_obs`` the observations the rows stand for.  It breaks the coupling
    between ``s`` and the overall level of the weights.  Returns ``c`` (1.0 when
    no proposal was accepted)."""
    shape = 0.5 * nu * n_obs + 0.5
    scale = 2.0 / (nu * np.sum(w))
    for _ in range(1000):
        c = rng.gamma(shape, scale)
        if rng.random() < math.exp(-noise_rate * s * math.sqrt(c)):
            w *= c
            return c
    return 1.0


@_njit_inline
def _leapfrog(Q, PP1, x, mom, grad, eps, metric, n_leap, stats, prior_sd, rate, correlated, eta):
    """``n_leap`` leapfrog steps in the metric's whitened coordinates
    (``x = x0 + metric @ z``); returns the final log density and gradient."""
    zz, zw, ww, n_obs = stats
    d = x.shape[0]
    logp = 0.0
    for _ in range(n_leap):
        gz = metric.T @ grad
        for k in range(d):
            mom[k] += 0.5 * eps * gz[k]
        x += eps * (metric @ mom)
        logp, grad = density_of(Q, PP1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta)
        if not np.isfinite(logp):
            return -np.inf, grad
        gz = metric.T @ grad
        for k in range(d):
            mom[k] += 0.5 * eps * gz[k]
    return logp, grad


@_njit_inline
def hmc_transition(Q, PP1, x, eps, metric, path_len, stats, prior_sd, rate, correlated, eta, rng):
    """One HMC transition; returns ``(x, accept_prob, diverged, hit_cap)``."""
    zz, zw, ww, n_obs = stats
    d = x.shape[0]
    logp0, grad0 = density_of(Q, PP1, x, n_obs, zz, zw, ww, prior_sd, rate, correlated, eta)
    mom = rng.standard_normal(d)
    h0 = -logp0 + 0.5 * np.sum(mom * mom)
    length = path_len * (0.5 + rng.random())
    n_leap = int(math.ceil(length / eps))
    hit_cap = n_leap > MAX_LEAPFROG
    n_leap = min(max(n_leap, 1), MAX_LEAPFROG)
    xn = x.copy()
    logp, _ = _leapfrog(
        Q, PP1, xn, mom, grad0, eps, metric, n_leap, stats, prior_sd, rate, correlated, eta
    )
    h1 = -logp + 0.5 * np.sum(mom * mom)
    if not np.isfinite(h1) or h1 - h0 > 1000.0:
        return x, 0.0, True, hit_cap
    accept = min(1.0, math.exp(h0 - h1))
    if rng.random() < accept:
        return xn, accept, False, hit_cap
    return x, accept, False, hit_cap


@_njit
def _chol_or_keep(cov, metric):
    """Cholesky factor of ``cov`` (regularized sample covariance); ``metric`` if it fails."""
    try:
        return np.linalg.cholesky(cov)
    except Exception:  # noqa: BLE001 - numerically singular: keep the current metric
        return metric


@_njit
def _adapted(collected, metric, i_log_s):
    """Warm-up estimates from the draws ``collected`` of ``(x, e_nu)``: the HMC
    metric (Cholesky factor of the regularized covariance of ``x``, as Stan's) and
    the regression slope of ``log s`` on ``e_nu`` (the noise slice's direction)."""
    k, d = collected.shape[0], collected.shape[1] - 1
    centred = collected - collected.sum(axis=0) / k
    xs = np.ascontiguousarray(centred[:, :d])
    cov = (xs.T @ xs) / (k - 1) * (k / (k + 5.0))
    cov += np.eye(d) * (1e-3 * 5.0 / (k + 5.0))
    var_e = np.sum(centred[:, d] ** 2)
    shear = np.sum(centred[:, i_log_s] * centred[:, d]) / var_e if var_e > 0.0 else 0.0
    return _chol_or_keep(cov, metric), shear


def chain_for(q, pp1):
    """:func:`run_chain` compiled for the density's shape class of ``(q, p + 1)``
    only (numba compiles nothing for the other classes)."""
    return _chain_of_class(*shape_class(q, pp1))


@cache
def _chain_of_class(Q, PP1):
    @_njit
    @specialized(Q, PP1)
    def chain(rng, x0, metric, data, spec_arrays, draws, tune, target_accept, out, stop):
        return run_chain(
            Q, PP1, rng, x0, metric, data, spec_arrays, draws, tune, target_accept, out, stop
        )

    return chain


@_njit_inline
def run_chain(Q, PP1, rng, x0, metric, data, spec_arrays, draws, tune, target_accept, out, stop):
    """One chain of the Gibbs sampler (see the module docstring), warm-up included;
    ``(Q, PP1)`` is the density's shape class (compile-time constants through
    :func:`chain_for`).

    ``rng`` is the chain's :class:`numpy.random.Generator`; ``data = (F, Z, y,
    codes, n_groups, freq)`` (``freq``: the rows' frequency weights),
    ``spec_arrays = (prior_sd, rate, correlated, eta)``,
    ``out = (x, beta, u, nu, diverging, hit_cap)`` with a leading axis of
    ``draws``.  Warm-up adapts the HMC step size (dual averaging) throughout; at
    the end of its middle window (30% to 75%) it replaces the metric (the
    Cholesky factor of the covariance of ``x``, initially the Gaussian model's
    Laplace approximation) and the noise slice's direction by estimates from
    that window's draws (:func:`_adapted`).  Returns the final step size.
    """
    F, Z, y, codes, n_groups, freq = data
    prior_sd, rate, correlated, eta = spec_arrays
    x_out, beta_out, u_out, nu_out, div_out, cap_out = out
    n, p, q = y.shape[0], F.shape[1], Z.shape[1]
    n_cov = q + n_corr_params(q, correlated)
    d = x0.shape[0]
    zz = np.zeros((n_groups, q, q))
    zw = np.zeros((n_groups, q, p + 1))
    ww = np.zeros((p + 1, p + 1))
    n_obs = 0.0
    for i in range(n):
        n_obs += freq[i]
    stats = (zz, zw, ww, n_obs)
    w = freq.copy()
    r = np.empty(n)
    x = x0.copy()
    e_nu = math.log(9.0) + rng.uniform(-1.0, 1.0)
    beta = np.zeros(p)
    u = np.zeros((n_groups, q))
    chol_cov = np.zeros((q, q))
    path_len = 0.5 * math.pi
    # dual averaging (Hoffman and Gelman 2014)
    eps = 0.5
    mu_da, h_bar, log_eps_bar, m_da = math.log(10.0 * eps), 0.0, 0.0, 0
    window_lo, window_hi = int(0.3 * tune), int(0.75 * tune)
    collected = np.empty((max(window_hi - window_lo, 1), d + 1))  # (x, e_nu) draws
    shear = 0.0
    for it in range(tune + draws):
        if stop[0] != 0:  # interrupted (skhier._util.threads.thread_map)
            return eps
        weighted_stats(F, Z, y, codes, w, zz, zw, ww)
        div, cap = False, False
        for _ in range(HMC_PER_SWEEP):
            x, acc, dv, hc = hmc_transition(
                Q, PP1, x, eps, metric, path_len, stats, prior_sd, rate, correlated, eta, rng
            )
            div, cap = div or dv, cap or hc
            if it < tune:
                m_da += 1
                h_bar += ((target_accept - acc) - h_bar) / (m_da + 10.0)
                log_eps = mu_da - math.sqrt(m_da) / 0.05 * h_bar
                weight = m_da**-0.75
                log_eps_bar = weight * log_eps + (1.0 - weight) * log_eps_bar
                eps = min(math.exp(log_eps), MAX_STEP)
        cov_chol(x[:n_cov], q, correlated, eta, chol_cov)
        for cycle in range(EFFECT_CYCLES):
            if cycle > 0:
                weighted_stats(F, Z, y, codes, w, zz, zw, ww)
            s = math.exp(x[n_cov])
            e_beta = rng.standard_normal(p)
            e_u = rng.standard_normal((n_groups, q))
            if not draw_one(zz, zw, ww, prior_sd, chol_cov, s, e_beta, e_u, beta, u):
                div = True  # P numerically indefinite: beta, u keep their values
            scaled_residuals(F, Z, y, codes, beta, u, 1.0, r)
            if cycle == EFFECT_CYCLES - 1:  # O(rows) per evaluation: once per sweep
                x[n_cov], e_nu = slice_noise(x[n_cov], e_nu, shear, r, freq, rate[q], rng)
                s = math.exp(x[n_cov])
            r /= s
            nu = 1.0 + math.exp(e_nu)
            draw_weights(r, nu, freq, w, rng)
            x[n_cov] += 0.5 * math.log(rescale_move(w, s, nu, n_obs, rate[q], rng))
        if window_lo <= it < window_hi:
            collected[it - window_lo, :d] = x
            collected[it - window_lo, d] = e_nu
            if it == window_hi - 1 and window_hi - window_lo >= 20:
                metric, shear = _adapted(collected, metric, n_cov)
                mu_da, h_bar, log_eps_bar, m_da = math.log(10.0 * eps), 0.0, 0.0, 0
        if it == tune - 1:
            eps = min(math.exp(log_eps_bar), MAX_STEP)
        if it >= tune:
            k = it - tune
            x_out[k] = x
            beta_out[k] = beta
            u_out[k] = u
            nu_out[k] = 1.0 + math.exp(e_nu)
            div_out[k] = div
            cap_out[k] = cap
    return eps
