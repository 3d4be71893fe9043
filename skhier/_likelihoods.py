"""Likelihoods: the one place the outcome distribution's math lives.

A :class:`~skhier._posterior.Posterior` knows its likelihood (``family``, or for
models saved before families existed, ``noise_df`` draws mean Student-t noise);
prediction asks the likelihood for the inverse link and for predictive draws
instead of branching itself.
"""

from __future__ import annotations

import numpy as np


class Gaussian:
    """``y ~ Normal(mean, eps)``."""

    name = "normal"

    @staticmethod
    def sample_noise(post, draw_idx, n_rows, rng):
        """Noise draws of shape (n_rows, len(draw_idx))."""
        sd = post.joint("noise_sd")[draw_idx]
        return sd[None, :] * rng.standard_normal((n_rows, len(draw_idx)))


class StudentT:
    """``y ~ Student-t(nu, mean, eps)``: ``eps`` is the scale, ``nu`` the degrees of
    freedom (the SD is ``eps * sqrt(nu / (nu - 2))`` for ``nu > 2``)."""

    name = "student_t"

    @staticmethod
    def sample_noise(post, draw_idx, n_rows, rng):
        scale = post.joint("noise_sd")[draw_idx]
        nu = post.joint("noise_df")[draw_idx]
        return scale[None, :] * rng.standard_t(nu[None, :], size=(n_rows, len(draw_idx)))


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
        return rng.poisson(mean)


class NegativeBinomial(Poisson):
    """``y ~ NegativeBinomial``: mean ``mu``, variance ``mu + dispersion * mu^2``
    (``dispersion = 1 / alpha`` of PyMC's parametrization), ``log(mu) = eta``."""

    name = "negative_binomial"

    @staticmethod
    def sample(mean, dispersion, rng):
        d = np.maximum(np.broadcast_to(dispersion[None, :], mean.shape), 1e-12)
        return rng.poisson(rng.gamma(1.0 / d, mean * d))


FAMILIES = {cls.name: cls for cls in (Gaussian, StudentT, Bernoulli, Poisson, NegativeBinomial)}
#: families of the generalized linear models (a link function, no noise SD)
GLM_FAMILIES = ("bernoulli", "poisson", "negative_binomial")


def of_posterior(post):
    """The likelihood whose draws ``post`` holds."""
    family = getattr(post, "family", None)
    if family is not None:
        return FAMILIES[family]
    return StudentT if getattr(post, "noise_df", None) is not None else Gaussian
