"""numba log density (and gradient) of the explicit GLMM, for NUTS.

The sampled vector is ``x = (beta, theta, z, rho)``:

* ``beta`` (p): population coefficients on the standardized scale, ``Normal(0,
  prior_sd)``;
* ``theta`` (q + m): log group SDs (``Exponential(rate)`` prior, log-Jacobian
  included) and, for correlated effects, the ``m`` unconstrained correlation
  parameters (LKJ prior): :func:`skhier._numba.linalg.cov_chol` maps them to the
  Cholesky factor ``C`` of the effects' covariance;
* ``z`` (G x q): standardized group effects, ``Normal(0, 1)``, ``u_g = C z_g``
  (``form`` 0, non-centered); or (``form`` 1, centered) the group coefficients
  themselves, ``c_g ~ Normal(mu, C C')`` with ``u_g = c_g - mu`` (better when every
  group's own rows inform its effects well), the intercept sampled at the group's
  mean row (:func:`_centered_coefs`); or (``form`` 2, partial) the intercept
  centered, at the group's mean row with the population slopes, and the slopes
  non-centered: ``u_g0 = d_g - zbar_g . beta_slopes - mu_0 ~ Normal(0, C_00^2)`` and
  ``u_g = C (u_g0 / C_00, z_g1, ...)`` (well-informed intercepts with weakly
  informed slopes, e.g. a slope on a feature that varies in few of a group's rows).
  ``mu`` are the population means of the group coefficients at the user's
  ``X = 0``: ``mu_0 = beta_0 - sum_k beta_k shift_k`` (``F`` is centred, ``Z`` is
  not), ``mu_a = beta[1 + slope_idx[a - 1]]``;
* ``rho`` (negative binomial only): ``phi`` on the whole line (its sign unused:
  Poisson, ``phi = 0``, is an ordinary point, not a funnel's end) with ``|phi| ~ HalfNormal(1)`` and
  ``alpha = 1 / phi^2`` (variance ``mu + phi^2 mu^2``).

The linear predictor is ``eta_i = offset_i + F_i beta + Z_i u_{g[i]}``; families
(``family``): 0 Bernoulli (logit), 1 Poisson (log), 2 negative binomial (log).  One
evaluation streams over the rows (sorted by group) three times, plus O(G (p + q^2));
the gradient in ``theta`` goes through ``C(theta)`` with
:func:`skhier._numba.linalg.cov_chol_grad`.
"""

from __future__ import annotations

import math

import numpy as np

from skhier._numba.linalg import _njit, _njit_inline, cov_chol, cov_chol_grad

FAMILY_CODES = {"bernoulli": 0, "poisson": 1, "negative_binomial": 2}
#: the density's ``form`` of each parametrization (see the module docstring)
FORMS = {"non-centered": 0, "centered": 1, "partial": 2}


@_njit
def _forward_solve(chol, q, b, out):
    """``out = C^{-1} b`` (C lower triangular)."""
    for a in range(q):
        acc = b[a]
        for k in range(a):
            acc -= chol[a, k] * out[k]
        out[a] = acc / chol[a, a]


@_njit_inline
def _group_coefs(x, u, shift, slope_idx, out):
    """Each group's coefficients on the columns of ``F``: ``F_i b_g = F_i beta + Z_i
    u_g``, as ``Z = [1, F[:, 1 + slope_idx] + shift[slope_idx]]`` (``F`` is centred,
    ``Z`` only scaled), so a row costs p multiply-adds, not p + q."""
    n_groups, q = u.shape
    p = out.shape[1]
    for g in range(n_groups):
        for a in range(p):
            out[g, a] = x[a]
        out[g, 0] += u[g, 0]
        for a in range(1, q):
            k = slope_idx[a - 1]
            out[g, 1 + k] += u[g, a]
            out[g, 0] += u[g, a] * shift[k]


@_njit_inline
def _centered_coefs(x, zoff, p, slope_idx, zbar, out):
    """The centered form's group coefficients ``c_g`` (G, q) from the sampled
    ``(d_g, c_g[1:])``: ``d_g`` is the group's linear predictor at its own mean
    row, ``c_g[0] = d_g - sum_k zbar_gk b_gk`` its intercept at ``X = 0`` (``b_gk``
    its slope on column k: ``c_g[a]`` for a random slope, ``beta_k`` otherwise).
    A shear with unit Jacobian, so the model is unchanged; but the data inform
    ``d_g`` directly, and the population coefficients of features that differ
    between groups (group-level predictors above all) are no longer confounded
    with every group's intercept, a ridge NUTS crawls along."""
    n_groups, q = out.shape
    for g in range(n_groups):
        c0 = x[zoff + g * q]
        for k in range(p - 1):
            c0 -= zbar[g, k] * x[1 + k]
        for a in range(1, q):
            k = slope_idx[a - 1]
            out[g, a] = x[zoff + g * q + a]
            c0 -= zbar[g, k] * (out[g, a] - x[1 + k])
        out[g, 0] = c0


@_njit_inline
def _linear_predictor(offset, Ft, starts, coefs, out):
    """``eta = offset + F b_g`` for rows sorted by group (``starts``: each group's
    first row); ``Ft`` (p, n) holds ``F`` column by column, so every loop runs
    along contiguous rows.  (Loops over slices from 0: numba checks a signed index
    for wraparound, which costs 3x here, unless it provably counts up from 0.)"""
    for g in range(starts.shape[0] - 1):
        lo, hi = starts[g], starts[g + 1]
        seg = out[lo:hi]
        off = offset[lo:hi]
        for i in range(seg.shape[0]):
            seg[i] = off[i]
        for a in range(Ft.shape[0]):
            c = coefs[g, a]
            col = Ft[a, lo:hi]
            for i in range(seg.shape[0]):
                seg[i] += col[i] * c


@_njit_inline
def _group_sums(r, Ft, starts, out):
    """``t_g = sum_i r_i F_i`` over each group's rows into ``out`` (G, p)."""
    for g in range(starts.shape[0] - 1):
        lo, hi = starts[g], starts[g + 1]
        rg = r[lo:hi]
        for a in range(Ft.shape[0]):
            col = Ft[a, lo:hi]
            acc = 0.0
            for i in range(rg.shape[0]):
                acc += rg[i] * col[i]
            out[g, a] = acc


@_njit_inline
def _log_lik(family, y, wts, eta, alpha, r):
    """The rows' log likelihood given ``eta``, each row's times its frequency weight
    ``wts`` (without the negative binomial's per-count ``lgamma`` terms); ``r =
    d/deta`` into ``r``; returns ``(value, sum_i d/dalpha`` without the per-count
    ``digamma`` terms).  A binary ``y`` may be a share of successes (its weight the
    trials)."""
    value = 0.0
    d_alpha = 0.0
    if family == 0:  # y eta - log(1 + e^eta), with one exp: e = e^-|eta|
        for i in range(y.shape[0]):
            e_i = eta[i]
            ex = math.exp(-abs(e_i))
            value += wts[i] * (y[i] * e_i - (max(e_i, 0.0) + math.log1p(ex)))
            r[i] = wts[i] * (y[i] - (1.0 / (1.0 + ex) if e_i >= 0.0 else ex / (1.0 + ex)))
    elif family == 1:  # y eta - e^eta
        for i in range(y.shape[0]):
            mu = math.exp(eta[i])
            value += wts[i] * (y[i] * eta[i] - mu)
            r[i] = wts[i] * (y[i] - mu)
    else:  # negative binomial in v = phi^2 (``alpha`` here): Poisson at v = 0, finite
        v = alpha  # y eta - y log(1 + v mu) - log(1 + v mu) / v, and its d/dv
        for i in range(y.shape[0]):
            mu = math.exp(eta[i])
            t = v * mu
            value += wts[i] * (y[i] * eta[i] - y[i] * math.log1p(t) - mu * _log1p_ratio(t))
            r[i] = wts[i] * (y[i] - mu) / (1.0 + t)
            d_alpha += wts[i] * (-y[i] * mu / (1.0 + t) + mu * mu * _log1p_curvature(t))
    return value, d_alpha


@_njit_inline
def _log1p_ratio(t):
    """log(1 + t) / t, by its series near 0 (1 at t = 0)."""
    if t < 1e-4:
        return 1.0 - t / 2.0 + t * t / 3.0
    return math.log1p(t) / t


@_njit_inline
def _log1p_curvature(t):
    """(log(1 + t) / t^2 - 1 / (t (1 + t))): d/dv of -log(1 + v mu) / v is mu^2 times
    this at t = v mu; by its series near 0 (1/2 at t = 0)."""
    if t < 1e-3:
        return 0.5 - 2.0 * t / 3.0 + 0.75 * t * t
    return math.log1p(t) / (t * t) - 1.0 / (t * (1.0 + t))


@_njit_inline
def glmm_density(x, family, y, offset, wts, Ft, starts, n_groups, q, correlated, eta_lkj,
                 prior_sd, rates, form, shift, slope_idx, zbar, y_counts, y_values,
                 grad):  # fmt: skip
    """Log posterior density at ``x`` (up to a constant); its gradient into ``grad``.

    The rows are sorted by group (``starts``, G + 1, delimits each group's rows) and
    ``F`` is stored transposed (``Ft`` (p, n); ``Z`` follows from it):
    :func:`skhier._engines.nuts.engine.rows_by_group` puts the rows in this layout;
    ``wts`` are their frequency weights.  ``y_values`` are the distinct outcomes and
    ``y_counts`` how many rows have each (weighted): the negative
    binomial's ``lgamma(y + alpha)`` and ``digamma(y + alpha)`` are computed once per
    distinct count, not once per row.  ``zbar`` (G, p - 1): each group's mean of
    the columns of ``Z``'s scale (``F[:, 1:] + shift``), for the centered form's
    intercepts (:func:`_centered_coefs`)."""
    p, n_rows = Ft.shape
    m = q * (q - 1) // 2 if correlated else 0
    n_theta = q + m
    zoff = p + n_theta
    for k in range(x.shape[0]):
        grad[k] = 0.0
    chol = np.zeros((q, q))
    theta = np.zeros(n_theta)
    for k in range(n_theta):
        theta[k] = x[p + k]
    lp = cov_chol(theta, q, correlated, eta_lkj, chol)  # the covariance's prior
    centered = form == 1
    partial = form == 2
    mu = np.zeros(q)
    if centered or partial:
        mu[0] = x[0]
        for k in range(1, p):
            mu[0] -= x[k] * shift[k - 1]
        for a in range(1, q):
            mu[a] = x[1 + slope_idx[a - 1]]
    u = np.zeros((n_groups, q))
    cg = np.empty((n_groups, q))
    if centered:
        _centered_coefs(x, zoff, p, slope_idx, zbar, cg)
    z0 = np.zeros(n_groups)  # partial form: the standardized intercepts u_g0 / C_00
    for g in range(n_groups):
        if partial:
            c0 = x[zoff + g * q]
            for k in range(p - 1):
                c0 -= zbar[g, k] * x[1 + k]
            u[g, 0] = c0 - mu[0]
            z0[g] = u[g, 0] / chol[0, 0]
            for a in range(1, q):
                acc = chol[a, 0] * z0[g]
                for b in range(1, a + 1):
                    acc += chol[a, b] * x[zoff + g * q + b]
                u[g, a] = acc
            continue
        for a in range(q):
            if centered:
                u[g, a] = cg[g, a] - mu[a]
                continue
            acc = 0.0
            for b in range(a + 1):
                acc += chol[a, b] * x[zoff + g * q + b]
            u[g, a] = acc
    g_chol = np.zeros((q, q))  # d/dC of the density given the effects (lower part)
    if centered:  # the effects' Normal(0, C C') density: its log-determinant here
        for a in range(q):
            lp -= n_groups * math.log(chol[a, a])
    if partial:  # the intercepts' Normal(0, C_00^2) density: its log-determinant
        lp -= n_groups * math.log(chol[0, 0])
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
    g_u0 = np.zeros(n_groups)  # d/du_g0 of the density (partial form)
    for g in range(n_groups):
        if partial:  # -z0^2 / 2 with z0 = u_g0 / C_00; the slopes' z ~ Normal(0, 1)
            lp -= 0.5 * z0[g] * z0[g]
            g_u0[g] -= z0[g] / chol[0, 0]
            g_chol[0, 0] += z0[g] * z0[g] / chol[0, 0]
            for a in range(1, q):
                zv = x[zoff + g * q + a]
                lp -= 0.5 * zv * zv
                grad[zoff + g * q + a] -= zv
            continue
        if centered:  # -|C^-1 u|^2 / 2, whose d/du is -C^-T C^-1 u
            _forward_solve(chol, q, u[g], v)
            for a in range(q):
                lp -= 0.5 * v[a] * v[a]
            for a in range(q - 1, -1, -1):
                acc = v[a]
                for k in range(a + 1, q):
                    acc -= chol[k, a] * w[k]
                w[a] = acc / chol[a, a]
                grad[zoff + g * q + a] -= w[a]
                g_mu[a] += w[a]
            for a in range(q):  # d/dC of -|C^-1 u|^2 / 2 is w v' (lower part)
                for b in range(a + 1):
                    g_chol[a, b] += w[a] * v[b]
            continue
        for a in range(q):
            zv = x[zoff + g * q + a]
            lp -= 0.5 * zv * zv
            grad[zoff + g * q + a] -= zv
    alpha = 0.0
    d_alpha = 0.0
    if family == 2:
        # phi on the whole line (its sign unused): the dispersion phi^2 is 0 (Poisson)
        # at an ordinary point, not at log(phi) = -inf, the funnel a log scale made
        phi = x[x.shape[0] - 1]
        alpha = phi * phi  # v: variance mu + v mu^2
        lp -= 0.5 * phi * phi  # HalfNormal(1) on |phi|
        grad[x.shape[0] - 1] -= phi
        # lgamma(y + 1/v) - lgamma(1/v) - y log(1/v) = sum_{k<y} log(1 + k v), per count
        for k in range(y_values.shape[0]):
            acc = 0.0
            d_acc = 0.0
            for j in range(int(y_values[k])):
                acc += math.log1p(j * alpha)
                d_acc += j / (1.0 + j * alpha)
            lp += y_counts[k] * acc
            d_alpha += y_counts[k] * d_acc
    coefs = np.empty((n_groups, p))
    _group_coefs(x, u, shift, slope_idx, coefs)
    eta = np.empty(n_rows)
    _linear_predictor(offset, Ft, starts, coefs, eta)
    r = np.empty(n_rows)  # d/deta of each row's log likelihood
    value, d_rows = _log_lik(family, y, wts, eta, alpha, r)
    lp += value
    d_alpha += d_rows
    _group_sums(r, Ft, starts, coefs)  # (reused: t_g = sum_i r_i F_i)
    s = np.zeros((n_groups, q))  # sum over a group's rows of r_i Z_i, from t_g
    for g in range(n_groups):
        for a in range(p):
            grad[a] += coefs[g, a]
        s[g, 0] = coefs[g, 0]
        for a in range(1, q):
            k = slope_idx[a - 1]
            s[g, a] = coefs[g, 1 + k] + shift[k] * coefs[g, 0]
    if family == 2:
        grad[x.shape[0] - 1] += d_alpha * 2.0 * x[x.shape[0] - 1]  # v = phi^2
    for g in range(n_groups):
        d_z0 = 0.0  # partial form: d/dz0 of the likelihood, z0 standing for z_g0
        for a in range(q):
            if centered:
                grad[zoff + g * q + a] += s[g, a]
                g_mu[a] -= s[g, a]  # eta depends on u = c - mu
                continue
            if partial:
                g_chol[a, 0] += s[g, a] * z0[g]
                d_z0 += chol[a, 0] * s[g, a]
                for b in range(1, a + 1):
                    g_chol[a, b] += s[g, a] * x[zoff + g * q + b]
                    grad[zoff + g * q + b] += chol[a, b] * s[g, a]
                continue
            for b in range(a + 1):
                g_chol[a, b] += s[g, a] * x[zoff + g * q + b]
                grad[zoff + g * q + b] += chol[a, b] * s[g, a]
        if partial:  # z0 = u_g0 / C_00
            g_u0[g] += d_z0 / chol[0, 0]
            g_chol[0, 0] -= d_z0 * z0[g] / chol[0, 0]
    if centered:  # from the coefficients c_g to the sampled (d_g, c_g[1:]), and beta
        for g in range(n_groups):
            g0 = grad[zoff + g * q]
            for k in range(p - 1):
                grad[1 + k] -= zbar[g, k] * g0
            for a in range(1, q):
                k = slope_idx[a - 1]
                grad[1 + k] += zbar[g, k] * g0
                grad[zoff + g * q + a] -= zbar[g, k] * g0
    if partial:  # from u_g0 to the sampled d_g and beta (u_g0 = d_g - zbar_g beta - mu_0)
        for g in range(n_groups):
            grad[zoff + g * q] += g_u0[g]
            for k in range(p - 1):
                grad[1 + k] -= zbar[g, k] * g_u0[g]
            g_mu[0] -= g_u0[g]
    if centered or partial:  # mu's dependence on beta
        grad[0] += g_mu[0]
        for k in range(1, p):
            grad[k] -= g_mu[0] * shift[k - 1]
        for a in range(1, q):
            grad[1 + slope_idx[a - 1]] += g_mu[a]
    # d/dtheta of the theta-dependent terms: both are linear in C's entries given
    # g_chol (the centered prior's log-determinant adds -G / C_aa on the diagonal)
    if centered:
        for a in range(q):
            g_chol[a, a] -= n_groups / chol[a, a]
    if partial:
        g_chol[0, 0] -= n_groups / chol[0, 0]
    cov_chol_grad(theta, q, correlated, eta_lkj, chol, g_chol, grad[p : p + n_theta])
    return lp
