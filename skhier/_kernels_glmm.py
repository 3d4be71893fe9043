"""numba log density (and gradient) of the explicit non-centered GLMM, for NUTS.

The sampled vector is ``x = (beta, theta, z, rho)``:

* ``beta`` (p): population coefficients on the standardized scale, ``Normal(0,
  prior_sd)``;
* ``theta`` (q + m): log group SDs (``Exponential(rate)`` prior, log-Jacobian
  included) and, for correlated effects, the ``m`` unconstrained correlation
  parameters (LKJ prior): :func:`skhier._kernels_linalg.cov_chol` maps them to the
  Cholesky factor ``C`` of the effects' covariance;
* ``z`` (G x q): standardized group effects, ``Normal(0, 1)``, ``u_g = C z_g``
  (non-centered); or, with ``centered``, the group coefficients themselves,
  ``c_g ~ Normal(mu, C C')`` with ``u_g = c_g - mu`` (better when every group's own
  rows inform its effects well).  ``mu`` are the population means of the group
  coefficients at the user's ``X = 0``: ``mu_0 = beta_0 - sum_k beta_k shift_k``
  (``F`` is centred, ``Z`` is not), ``mu_a = beta[1 + slope_idx[a - 1]]``;
* ``rho`` (negative binomial only): ``log phi`` with ``phi ~ HalfNormal(1)`` and
  ``alpha = 1 / phi^2`` (variance ``mu + phi^2 mu^2``).

The linear predictor is ``eta_i = offset_i + F_i beta + Z_i u_{g[i]}``; families
(``family``): 0 Bernoulli (logit), 1 Poisson (log), 2 negative binomial (log).  One
evaluation is one pass over the rows plus O(G q^2); the gradient in ``theta``
goes through ``C(theta)`` by complex step (a map of a handful of numbers, exact
to machine precision).
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels_linalg import _njit, cov_chol

FAMILY_CODES = {"bernoulli": 0, "poisson": 1, "negative_binomial": 2}


@_njit
def _digamma(x):
    """psi(x) for x > 0: recurrence up to 6, then the asymptotic series."""
    out = 0.0
    while x < 6.0:
        out -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    return (
        out
        + math.log(x)
        - 0.5 * inv
        - inv2 * (1.0 / 12.0 - inv2 * (1.0 / 120.0 - inv2 * (1.0 / 252.0 - inv2 * (1.0 / 240.0))))
    )


@_njit
def _forward_solve(chol, q, b, out):
    """``out = C^{-1} b`` (C lower triangular; real or complex)."""
    for a in range(q):
        acc = b[a]
        for k in range(a):
            acc -= chol[a, k] * out[k]
        out[a] = acc / chol[a, a]


@_njit
def _theta_part(theta, q, correlated, eta_lkj, chol, centered, u, g_chol):
    """The terms of the log density that depend on ``theta`` given the effects (for
    the complex-step derivative): the covariance's prior and, centered, the
    effects' Normal(0, C C') density; non-centered, ``sum(g_chol * C)``, whose
    derivative is the likelihood's through ``u = C z``."""
    out = cov_chol(theta, q, correlated, eta_lkj, chol)
    if centered:
        v = np.zeros(q, dtype=chol.dtype)
        for g in range(u.shape[0]):
            _forward_solve(chol, q, u[g], v)
            for a in range(q):
                out -= 0.5 * v[a] * v[a]
        for a in range(q):
            out -= u.shape[0] * np.log(chol[a, a])
    else:
        for a in range(q):
            for b in range(a + 1):
                out += g_chol[a, b] * chol[a, b]
    return out


@_njit
def glmm_density(x, family, y, offset, F, Z, codes, n_groups, q, correlated, eta_lkj,
                 prior_sd, rates, centered, shift, slope_idx, y_index, y_values,
                 grad):  # fmt: skip
    """Log posterior density at ``x`` (up to a constant); its gradient into ``grad``.

    ``y_values`` are the distinct outcomes and ``y_index`` each row's position among
    them: the negative binomial's ``lgamma(y + alpha)`` and ``digamma(y + alpha)``
    are computed once per distinct count, not once per row."""
    n_rows, p = F.shape
    m = q * (q - 1) // 2 if correlated else 0
    n_theta = q + m
    zoff = p + n_theta
    for k in range(x.shape[0]):
        grad[k] = 0.0
    chol = np.zeros((q, q))
    theta = np.zeros(n_theta)
    for k in range(n_theta):
        theta[k] = x[p + k]
    cov_chol(theta, q, correlated, eta_lkj, chol)
    mu = np.zeros(q)
    if centered:
        mu[0] = x[0]
        for k in range(1, p):
            mu[0] -= x[k] * shift[k - 1]
        for a in range(1, q):
            mu[a] = x[1 + slope_idx[a - 1]]
    u = np.zeros((n_groups, q))
    for g in range(n_groups):
        for a in range(q):
            if centered:
                u[g, a] = x[zoff + g * q + a] - mu[a]
                continue
            acc = 0.0
            for b in range(a + 1):
                acc += chol[a, b] * x[zoff + g * q + b]
            u[g, a] = acc
    g_chol = np.zeros((q, q))
    lp = _theta_part(theta, q, correlated, eta_lkj, chol, centered, u, g_chol)
    for k in range(q):  # log-SDs: Exponential(rate) prior and the log-Jacobian
        tau = math.exp(theta[k])
        lp += theta[k] - rates[k] * tau
        grad[p + k] += 1.0 - rates[k] * tau
    for a in range(p):
        lp -= 0.5 * (x[a] / prior_sd[a]) ** 2
        grad[a] -= x[a] / prior_sd[a] ** 2
    v = np.zeros(q)
    w = np.zeros(q)
    g_mu = np.zeros(q)  # d/dmu of the density (centered form)
    for g in range(n_groups):
        if centered:  # d/du of -|C^-1 u|^2 / 2 is -C^-T C^-1 u
            _forward_solve(chol, q, u[g], v)
            for a in range(q - 1, -1, -1):
                acc = v[a]
                for k in range(a + 1, q):
                    acc -= chol[k, a] * w[k]
                w[a] = acc / chol[a, a]
                grad[zoff + g * q + a] -= w[a]
                g_mu[a] += w[a]
            continue
        for a in range(q):
            zv = x[zoff + g * q + a]
            lp -= 0.5 * zv * zv
            grad[zoff + g * q + a] -= zv
    alpha = 0.0
    d_alpha = 0.0
    if family == 2:
        rho = x[x.shape[0] - 1]
        phi2 = math.exp(2.0 * rho)
        alpha = 1.0 / phi2
        lp += rho - 0.5 * phi2  # HalfNormal(1) on phi, log-Jacobian of phi = e^rho
        grad[x.shape[0] - 1] += 1.0 - phi2
        lp += n_rows * (alpha * math.log(alpha) - math.lgamma(alpha))
        d_alpha += n_rows * (math.log(alpha) + 1.0 - _digamma(alpha))
    n_values = y_values.shape[0] if family == 2 else 0
    lg = np.zeros(n_values)
    dg = np.zeros(n_values)
    for k in range(n_values):
        lg[k] = math.lgamma(y_values[k] + alpha)
        dg[k] = _digamma(y_values[k] + alpha)
    s = np.zeros((n_groups, q))  # sum over a group's rows of r_i Z_i
    for i in range(n_rows):
        g = codes[i]
        eta = offset[i]
        for a in range(p):
            eta += F[i, a] * x[a]
        for a in range(q):
            eta += Z[i, a] * u[g, a]
        yi = y[i]
        if family == 0:  # y eta - log(1 + e^eta)
            soft = eta + math.log1p(math.exp(-eta)) if eta > 0 else math.log1p(math.exp(eta))
            lp += yi * eta - soft
            r = yi - 1.0 / (1.0 + math.exp(-eta))
        elif family == 1:  # y eta - e^eta
            mu = math.exp(eta)
            lp += yi * eta - mu
            r = yi - mu
        else:  # lgamma(y + a) - lgamma(a) + a log a - (a + y) log(a + mu) + y eta
            mu = math.exp(eta)
            log_am = math.log(alpha + mu)
            frac = (yi + alpha) / (alpha + mu)
            lp += lg[y_index[i]] + yi * eta - (alpha + yi) * log_am
            r = yi - frac * mu
            d_alpha += dg[y_index[i]] - log_am - frac
        for a in range(p):
            grad[a] += r * F[i, a]
        for a in range(q):
            s[g, a] += r * Z[i, a]
    if family == 2:
        grad[x.shape[0] - 1] += d_alpha * (-2.0 * alpha)  # alpha = e^(-2 rho)
    for g in range(n_groups):
        for a in range(q):
            if centered:
                grad[zoff + g * q + a] += s[g, a]
                g_mu[a] -= s[g, a]  # eta depends on u = c - mu
                continue
            for b in range(a + 1):
                g_chol[a, b] += s[g, a] * x[zoff + g * q + b]
                grad[zoff + g * q + b] += chol[a, b] * s[g, a]
    if centered:  # mu's dependence on beta
        grad[0] += g_mu[0]
        for k in range(1, p):
            grad[k] -= g_mu[0] * shift[k - 1]
        for a in range(1, q):
            grad[1 + slope_idx[a - 1]] += g_mu[a]
    # d/dtheta of the theta-dependent terms, by complex step
    tc = np.zeros(n_theta, dtype=np.complex128)
    cc = np.zeros((q, q), dtype=np.complex128)
    uc = u.astype(np.complex128)
    step = 1e-20
    for k in range(n_theta):
        for j in range(n_theta):
            tc[j] = theta[j]
        tc[k] += 1j * step
        grad[p + k] += _theta_part(tc, q, correlated, eta_lkj, cc, centered, uc, g_chol).imag / step
    return lp
