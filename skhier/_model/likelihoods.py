"""Likelihoods: the one place the outcome distribution's math lives.

A :class:`~skhier._posterior.one_factor.Posterior` knows its likelihood (``family``, or for
models saved before families existed, ``noise_df`` draws mean Student-t noise);
prediction asks the likelihood for the inverse link and for predictive draws
instead of branching itself.
"""

from __future__ import annotations

import numpy as np


def _noise_sd(post, idx):
    """``eps`` at joint draws ``idx`` (one factor's Posterior or several factors')."""
    if hasattr(post, "joint_noise"):
        return post.joint_noise()[idx]
    return post.joint("noise_sd")[idx]


class Gaussian:
    """``y ~ Normal(mean, eps)``.

    Every likelihood offers ``draw(eta, post, idx, rng)`` (outcome draws given the
    linear predictor ``eta`` (n, S) at joint draws ``idx``) and ``log_density(y,
    eta, post, idx)`` (the pointwise log likelihood, (n, S)).
    """

    name = "normal"

    @staticmethod
    def sample_noise(post, draw_idx, n_rows, rng):
        """Noise draws of shape (n_rows, len(draw_idx))."""
        sd = post.joint("noise_sd")[draw_idx]
        return sd[None, :] * rng.standard_normal((n_rows, len(draw_idx)))

    @staticmethod
    def draw(eta, post, idx, rng):
        return eta + _noise_sd(post, idx)[None, :] * rng.standard_normal(eta.shape)

    @staticmethod
    def log_density(y, eta, post, idx):
        sd = _noise_sd(post, idx)[None, :]
        z = (y[:, None] - eta) / sd
        return -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2.0 * np.pi)


class StudentT:
    """``y ~ Student-t(nu, mean, eps)``: ``eps`` is the scale, ``nu`` the degrees of
    freedom (the SD is ``eps * sqrt(nu / (nu - 2))`` for ``nu > 2``)."""

    name = "student_t"

    @staticmethod
    def sample_noise(post, draw_idx, n_rows, rng):
        scale = post.joint("noise_sd")[draw_idx]
        nu = post.joint("noise_df")[draw_idx]
        return scale[None, :] * rng.standard_t(nu[None, :], size=(n_rows, len(draw_idx)))

    @classmethod
    def draw(cls, eta, post, idx, rng):
        return eta + cls.sample_noise(post, idx, eta.shape[0], rng)

    @staticmethod
    def log_density(y, eta, post, idx):
        from scipy.stats import t

        scale = post.joint("noise_sd")[idx][None, :]
        nu = post.joint("noise_df")[idx][None, :]
        return t.logpdf((y[:, None] - eta) / scale, nu) - np.log(scale)


class Bernoulli:
    """``y ~ Bernoulli(p)``, ``logit(p) = eta`` (the linear predictor)."""

    name = "bernoulli"

    @staticmethod
    def inverse_link(eta):
        from scipy.special import expit

        return expit(eta)

    @staticmethod
    def link(mean):
        mean = np.clip(mean, 1e-6, 1 - 1e-6)
        return float(np.log(mean / (1.0 - mean)))

    @staticmethod
    def sample(mean, dispersion, rng):
        """Outcome draws given the means (n, S); ``dispersion`` (S,) is unused."""
        return (rng.random(mean.shape) < mean).astype(np.int64)

    @classmethod
    def draw(cls, eta, post, idx, rng):
        return cls.sample(cls.inverse_link(eta), None, rng)

    @staticmethod
    def log_density(y, eta, post, idx):
        """``y`` is 0/1 (1: the second class)."""
        return y[:, None] * eta - np.logaddexp(0.0, eta)


class Poisson:
    """``y ~ Poisson(mu)``, ``log(mu) = eta``."""

    name = "poisson"

    @staticmethod
    def inverse_link(eta):
        return np.exp(np.minimum(eta, 700.0))

    @staticmethod
    def link(mean):
        return float(np.log(max(mean, 1e-6)))

    @staticmethod
    def sample(mean, dispersion, rng):
        return _poisson(mean, rng)

    @classmethod
    def draw(cls, eta, post, idx, rng):
        disp = None if post.dispersion is None else post.joint("dispersion")[idx]
        return cls.sample(cls.inverse_link(eta), disp, rng)

    @staticmethod
    def log_density(y, eta, post, idx):
        from scipy.special import gammaln

        eta = np.minimum(eta, 700.0)
        return y[:, None] * eta - np.exp(eta) - gammaln(y + 1.0)[:, None]


class NegativeBinomial(Poisson):
    """``y ~ NegativeBinomial``: mean ``mu``, variance ``mu + dispersion * mu^2``
    (``dispersion = 1 / alpha`` of PyMC's parametrization), ``log(mu) = eta``."""

    name = "negative_binomial"

    @staticmethod
    def sample(mean, dispersion, rng):
        d = np.maximum(np.broadcast_to(dispersion[None, :], mean.shape), 1e-12)
        return _poisson(rng.gamma(1.0 / d, np.minimum(mean, _MAX_COUNT) * d), rng)

    @staticmethod
    def log_density(y, eta, post, idx):
        dispersion = post.joint("dispersion")[idx][None, :]
        return nb_log_pmf(y[:, None], np.minimum(eta, 700.0), dispersion)


def nb_log_pmf(y, eta, dispersion):
    """Negative binomial log pmf, mean ``mu = exp(eta)``, variance ``mu + dispersion
    mu^2``, accurate down to the Poisson limit ``dispersion = 0`` (arrays broadcast).

    With ``v = dispersion`` and ``alpha = 1 / v``: ``log Gamma(y + alpha) - log
    Gamma(alpha) - y log alpha = sum_{k<y} log(1 + k v)`` (by lgamma, or by its series
    below ``v = 1e-6``, where lgamma's difference cancels), and ``alpha log(alpha /
    (alpha + mu)) = -log(1 + v mu) / v``."""
    from scipy.special import gammaln

    v = np.asarray(dispersion, dtype=np.float64)
    small = v < 1e-6
    safe = np.where(small, 1.0, v)
    alpha = 1.0 / safe
    exact = gammaln(y + alpha) - gammaln(alpha) - y * np.log(alpha)
    series = v * y * (y - 1) / 2 - v**2 * (y - 1) * y * (2 * y - 1) / 12
    mu = np.exp(eta)
    t = v * mu
    tail = np.where(small, mu * (1 - t / 2 + t * t / 3), np.log1p(t) / safe)
    rising = np.where(small, series, exact)
    return rising - gammaln(y + 1.0) + y * eta - y * np.log1p(t) - tail


#: counts are capped here (prior draws can imply astronomically large means)
_MAX_COUNT = 1e18


def _poisson(mean, rng):
    """Poisson draws (int64); means above 1e12 by the normal approximation, which
    is exact to far below one part in a million there, and capped at 1e18."""
    mean = np.clip(np.nan_to_num(mean, nan=0.0, posinf=_MAX_COUNT), 0.0, _MAX_COUNT)
    big = mean > 1e12
    if not big.any():
        return rng.poisson(mean)
    out = rng.poisson(np.where(big, 0.0, mean))
    approx = np.rint(mean[big] + np.sqrt(mean[big]) * rng.standard_normal(big.sum()))
    out[big] = np.clip(approx, 0.0, _MAX_COUNT).astype(np.int64)
    return out


FAMILIES = {cls.name: cls for cls in (Gaussian, StudentT, Bernoulli, Poisson, NegativeBinomial)}
#: families of the generalized linear models (a link function, no noise SD)
GLM_FAMILIES = ("bernoulli", "poisson", "negative_binomial")


def of_posterior(post):
    """The likelihood whose draws ``post`` holds."""
    family = getattr(post, "family", None)
    if family is not None:
        return FAMILIES[family]
    return StudentT if getattr(post, "noise_df", None) is not None else Gaussian
