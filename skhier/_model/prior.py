"""Exact draws from the prior of a :class:`~skhier._model.spec.ModelSpec` (standardized scale).

Forward sampling, no MCMC: every parameter is drawn from its prior in the order
the model is written (:mod:`skhier._model.spec`), and the group effects from their
population distribution given the drawn SDs and correlations.  The result has
the layout of an engine's draws (one chain), so the posterior's own mapping to
the user's units (:meth:`Posterior.from_standardized`) turns it into a prior in
the user's units.
"""

from __future__ import annotations

import numpy as np

#: Student-t degrees of freedom: Gamma(2, rate=0.1) restricted to nu > 1
_NU_SHAPE, _NU_RATE, _NU_MIN = 2.0, 0.1, 1.0


def lkj_cholesky(q, eta, size, rng):
    """Cholesky factors of ``size`` LKJ(``eta``) correlation matrices, (size, q, q).

    The onion method (Lewandowski, Kurowicka & Joe 2009, section 3.2): row ``k``
    of the factor is ``sqrt(y_k)`` times a uniform direction in R^k on its first
    ``k`` entries, with ``y_k ~ Beta(k / 2, eta + (q - 2) / 2 - (k - 1) / 2)``,
    and ``sqrt(1 - y_k)`` on the diagonal.  Every correlation is then marginally
    ``2 Beta(eta + (q - 2) / 2, same) - 1``.
    """
    L = np.zeros((size, q, q))
    L[:, 0, 0] = 1.0
    marginal = eta + 0.5 * (q - 2)
    for k in range(1, q):
        y = rng.beta(0.5 * k, marginal - 0.5 * (k - 1), size=size)
        direction = rng.standard_normal((size, k))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        L[:, k, :k] = np.sqrt(y)[:, None] * direction
        L[:, k, k] = np.sqrt(np.clip(1.0 - y, 0.0, 1.0))
    return L


def _effects(n_levels, q, correlated, eta, group_sd_mean, n_samples, rng):
    """SDs (1, S, q), correlations (1, S, q, q) or None, effects (1, S, G, q)."""
    tau = rng.exponential(group_sd_mean, size=(n_samples, q))
    z = rng.standard_normal((n_samples, n_levels, q))
    if correlated and q > 1:
        chol = lkj_cholesky(q, eta, n_samples, rng)
        corr = chol @ np.swapaxes(chol, -1, -2)
        u = np.einsum("sgj,sij->sgi", z, chol) * tau[:, None, :]
        corr = corr[None]
    else:
        u, corr = z * tau[:, None, :], None
    return tau[None], corr, u[None]


def draw_prior(spec, n_levels, n_samples, rng):
    """Prior draws in the layout of an engine's (one chain of ``n_samples``).

    ``n_levels``: the number of groups (one factor) or a sequence, one per factor
    of ``spec.factors``.
    """
    beta = rng.normal(0.0, spec.beta_prior_sd, size=(n_samples, spec.n_fixed))
    out = {
        "beta": beta[None],
        "s": rng.exponential(spec.prior_noise_sd, size=(1, n_samples)),
        "diverging": np.zeros((1, n_samples), dtype=bool),
        "max_treedepth": np.zeros((1, n_samples), dtype=bool),
        "inference": {"method": "prior"},
    }
    eta, sd_mean = spec.prior_corr_eta, spec.prior_group_sd
    if spec.factors:
        out["kept"] = np.arange(n_samples)
        out["factors"] = []
        for term, n in zip(spec.factors, n_levels, strict=True):
            tau, corr, u = _effects(n, term.n_random, term.correlated, eta, sd_mean, n_samples, rng)
            mean = u[0].mean(axis=0)
            second = np.einsum("sgi,sgj->gij", u[0], u[0]) / n_samples
            cov = second - mean[:, :, None] * mean[:, None, :]
            out["factors"].append({"tau": tau, "corr": corr, "u": u, "mean": mean, "cov": cov})
    else:
        tau, corr, u = _effects(
            n_levels, spec.n_random, spec.correlated, eta, sd_mean, n_samples, rng
        )
        out.update(tau=tau, corr=corr, u=u)
    if spec.likelihood == "student_t":
        out["nu"] = _truncated_gamma(n_samples, rng)[None]
    elif spec.likelihood == "negative_binomial":
        phi = np.abs(rng.standard_normal((1, n_samples)))  # HalfNormal(1)
        out["dispersion"] = phi**2  # = 1 / alpha, alpha = 1 / phi^2
    return out


def _truncated_gamma(n, rng):
    """``nu ~ Gamma(2, rate=0.1)`` given ``nu > 1``, by rejection (accepts 99.5%)."""
    out = np.empty(0)
    while out.size < n:
        x = rng.gamma(_NU_SHAPE, 1.0 / _NU_RATE, size=2 * (n - out.size) + 8)
        out = np.r_[out, x[x > _NU_MIN]]
    return out[:n]
