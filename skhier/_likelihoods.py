"""Likelihoods: the one place the noise distribution's math lives.

A :class:`~skhier._posterior.Posterior` knows its likelihood from the draws it
holds (``noise_df`` draws mean Student-t noise); prediction asks the likelihood
for predictive noise instead of branching itself.
"""

from __future__ import annotations


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


def of_posterior(post):
    """The likelihood whose draws ``post`` holds."""
    return StudentT if getattr(post, "noise_df", None) is not None else Gaussian
