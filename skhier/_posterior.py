"""Posterior: plain numpy draws of every parameter, in the user's units.

Everything a fitted estimator needs after sampling lives here as numpy arrays
(``(chain, draw, ...)``), so a pickled estimator never needs PyMC.  ArviZ is
imported only to build ``InferenceData`` or diagnostics on request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass
class Posterior:
    """Posterior draws on the original scale.

    Attributes
    ----------
    intercept : (C, D)            population intercept ``mu_a`` (at X = 0)
    coef : (C, D, K)              population slopes ``mu_b``
    group_intercept_sd : (C, D)   ``sigma_a``
    group_coef_sd : (C, D, K)     ``sigma_b`` (0 for features without random slopes)
    noise_sd : (C, D)             ``eps``
    group_intercept : (C, D, G)   ``a[g]``
    group_coef : (C, D, G, K)     ``b[g, k]``
    diverging : (C, D)            divergent transitions
    max_treedepth : (C, D)        transitions that hit NUTS' maximum tree depth
    group_corr : (C, D, K+1, K+1) correlations of ``[a[g], b[g, :]]``: identity
                                  for independent effects and in the rows of
                                  features without a random slope (None in models
                                  saved by skhier 0.1.0: independent)
    noise_df : (C, D) or None     ``nu``, degrees of freedom of Student-t noise
                                  (None for Gaussian noise)
    """

    intercept: np.ndarray
    coef: np.ndarray
    group_intercept_sd: np.ndarray
    group_coef_sd: np.ndarray
    noise_sd: np.ndarray
    group_intercept: np.ndarray
    group_coef: np.ndarray
    diverging: np.ndarray
    max_treedepth: np.ndarray
    group_corr: np.ndarray | None = None
    noise_df: np.ndarray | None = None

    @classmethod
    def from_standardized(cls, draws, spec, scaling) -> Posterior:
        """Map standardized draws (``beta``, ``u``, ``tau``, ``s``) to user units."""
        beta, u, tau, s = draws["beta"], draws["u"], draws["tau"], draws["s"]
        ys, xm, xsc = scaling.y_scale, scaling.x_mean, scaling.x_scale
        slopes = list(spec.slope_idx)
        coef = ys * beta[..., 1:] / xsc
        intercept = scaling.y_mean + ys * (beta[..., 0] - (beta[..., 1:] * xm / xsc).sum(-1))
        group_coef_sd = np.zeros(coef.shape)
        group_coef_sd[..., slopes] = ys * tau[..., 1:] / xsc[slopes]
        return cls(
            intercept=intercept,
            coef=coef,
            group_intercept_sd=ys * tau[..., 0],
            group_coef_sd=group_coef_sd,
            noise_sd=ys * s,
            group_intercept=_group_values(intercept, u[..., 0], ys),
            group_coef=_group_values(coef, u[..., 1:], ys, xsc[slopes], slopes),
            diverging=np.asarray(draws["diverging"], dtype=bool),
            max_treedepth=np.asarray(draws["max_treedepth"], dtype=bool),
            group_corr=_padded_corr(draws.get("corr"), slopes, coef.shape),
            noise_df=draws.get("nu"),
        )

    # ------------------------------------------------------------------ shapes
    @property
    def n_draws(self) -> int:
        return self.intercept.shape[0] * self.intercept.shape[1]

    def flat(self, name: str) -> np.ndarray:
        """Draws of one parameter with chains and draws merged: (S, ...)."""
        arr = getattr(self, name, None)
        if arr is None:  # Gaussian noise: nu is infinite
            if name != "noise_df":
                raise AttributeError(name)
            arr = np.full(self.intercept.shape, np.inf)
        return arr.reshape((-1,) + arr.shape[2:])

    # --------------------------------------------------------------- summaries
    def mean(self, name: str) -> np.ndarray:
        return self.flat(name).mean(axis=0)

    def interval(self, name: str, prob: float) -> np.ndarray:
        """Equal-tailed credible interval, shape ``param_shape + (2,)``."""
        tail = (1.0 - prob) / 2.0
        return quantiles(self.flat(name), [tail, 1.0 - tail])

    def group_sd_and_corr(self):
        """Flat draws of ``[sigma_a, sigma_b]`` (S, K+1) and of their correlation
        matrix (S, K+1, K+1)."""
        sd = np.column_stack([self.flat("group_intercept_sd"), self.flat("group_coef_sd")])
        if self.group_corr is None:
            corr = np.broadcast_to(np.eye(sd.shape[1]), (len(sd),) + (sd.shape[1],) * 2)
        else:
            corr = self.flat("group_corr")
        return sd, corr

    @cached_property
    def moments(self):
        """Posterior means and covariances of ``[intercept, coef]``.

        Returns
        -------
        group_mean : (G, K + 1), group_cov : (G, K + 1, K + 1),
        pop_mean : (K + 1,), pop_cov : (K + 1, K + 1),
        pop_var : (K + 1, K + 1)  E[Sigma], the covariance of a new group's
        ``[a, b]`` around ``[mu_a, mu_b]`` (a vector of its diagonal in models
        saved by skhier 0.1.0).
        """
        group_mean, group_cov = _group_moments(
            self.flat("group_intercept"), self.flat("group_coef")
        )
        pop = np.column_stack([self.flat("intercept"), self.flat("coef")])
        sd, corr = self.group_sd_and_corr()
        return (
            group_mean,
            group_cov,
            pop.mean(axis=0),
            np.atleast_2d(np.cov(pop, rowvar=False)),
            np.einsum("si,sij,sj->ij", sd, corr, sd) / len(sd),
        )

    # ------------------------------------------------------------------ arviz
    def to_inference_data(self, feature_names, group_labels):
        """ArviZ ``InferenceData`` with named dimensions."""
        import arviz as az

        effects = ["intercept", *feature_names]
        coords = {
            "feature": list(feature_names),
            "group": list(group_labels),
            "effect": effects,
            "effect_bis": effects,
        }
        dims = {
            "mu_b": ["feature"],
            "sigma_b": ["feature"],
            "corr": ["effect", "effect_bis"],
            "a": ["group"],
            "b": ["group", "feature"],
        }
        posterior = {
            "mu_a": self.intercept,
            "mu_b": self.coef,
            "sigma_a": self.group_intercept_sd,
            "sigma_b": self.group_coef_sd,
            "eps": self.noise_sd,
            "corr": self.group_sd_and_corr()[1].reshape(self.intercept.shape + (len(effects),) * 2),
            "a": self.group_intercept,
            "b": self.group_coef,
        }
        if self.noise_df is not None:
            posterior["nu"] = self.noise_df
        return az.from_dict(
            posterior=posterior,
            sample_stats={"diverging": self.diverging},
            coords=coords,
            dims=dims,
        )


def _group_moments(intercepts, coefs, chunk=32):
    """Per-group posterior means (G, K + 1) and covariances (G, K + 1, K + 1) of
    ``[a[g], b[g]]`` from the draws ``intercepts`` (S, G) and ``coefs`` (S, G, K):
    centred draws of a block of groups, then one BLAS product per group (a
    group's (S, K + 1) draws are a strided matrix of the block)."""
    n_draws, n_groups = intercepts.shape
    mean = np.concatenate([intercepts.mean(axis=0)[:, None], coefs.mean(axis=0)], -1)
    cov = np.empty((n_groups,) + mean.shape[1:] * 2)
    for start in range(0, n_groups, chunk):
        sl = slice(start, start + chunk)
        block = np.empty((n_draws,) + mean[sl].shape)
        block[..., 0] = intercepts[:, sl]
        block[..., 1:] = coefs[:, sl]
        block -= mean[sl]
        np.matmul(block.transpose(1, 2, 0), block.transpose(1, 0, 2), out=cov[sl])
    cov /= max(n_draws - 1, 1)
    return mean, cov


def quantiles(draws, probs, chunk=256):
    """``np.quantile(draws, probs, axis=0)`` (its default linear method) with the
    probabilities last: shape ``draws.shape[1:] + (len(probs),)``, the same numbers.

    Faster on many columns: contiguous transposed blocks, and each order statistic
    from a partition at one position (numpy's SIMD selection; a partition at
    several positions at once, as np.quantile does, is several times slower).
    """
    n = len(draws)
    virtual = (n - 1) * np.asarray(probs, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    prev[virtual >= n - 1] = nxt[virtual >= n - 1] = -1  # np.quantile's conventions
    gamma = virtual - prev
    prev, nxt = prev.astype(np.intp) % n, nxt.astype(np.intp) % n
    cols = draws.reshape((n, -1))
    out = np.empty((cols.shape[1], len(gamma)))
    for start in range(0, cols.shape[1], chunk):
        block = _transposed(cols[:, start : start + chunk])  # partitioned in place
        lo = 0
        for k in np.unique(np.r_[prev, nxt]):  # later positions lie right of k
            block[:, lo:].partition(k - lo, axis=1)
            lo = k + 1
        res = out[start : start + chunk]
        for j, t in enumerate(gamma):  # numpy's lerp
            a, b = block[:, prev[j]], block[:, nxt[j]]
            res[:, j] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
        res[np.isnan(block).any(axis=1)] = np.nan
    return out.reshape(draws.shape[1:] + (len(gamma),))


def _transposed(a, tile=16):
    """``a.T`` as a new C-contiguous array, a few columns at a time (much faster
    than numpy's direct transposing copy of a large array)."""
    out = np.empty(a.shape[::-1])
    for start in range(0, a.shape[1], tile):
        out[start : start + tile] = np.ascontiguousarray(a[:, start : start + tile]).T
    return out


def _group_values(pop, u, ys, scale=None, cols=None):
    """Per-group values ``pop + ys * u / scale`` without temporaries as large as
    the result: ``pop`` (...) broadcast over the groups of ``u`` (..., G), or
    ``pop`` (..., K) over ``u`` (..., G, k) with group effects in the columns
    ``cols`` of ``pop`` only (the others equal ``pop``)."""
    if cols is None:
        out = np.multiply(u, ys)
        out += pop[..., None]
        return out
    pop = pop[..., None, :]
    if len(cols) < pop.shape[-1]:
        out = np.repeat(pop, u.shape[-2], axis=-2)
        out[..., cols] += ys * u / scale
        return out
    out = np.multiply(u, ys)
    out /= scale
    out += pop
    return out


def _padded_corr(corr, slopes, coef_shape):
    """Correlations of the random effects placed in a (K+1, K+1) identity."""
    k1 = coef_shape[-1] + 1
    out = np.broadcast_to(np.eye(k1), coef_shape[:-1] + (k1, k1)).copy()
    if corr is not None:
        idx = np.r_[0, np.asarray(slopes, dtype=int) + 1]
        out[..., idx[:, None], idx[None, :]] = corr
    return out
