"""Posterior: plain numpy draws and moments of every parameter, in the user's units.

Everything a fitted estimator needs after sampling lives here as numpy arrays
(``(chain, draw, ...)``), so a pickled estimator never needs PyMC.  ArviZ is
imported only to build ``InferenceData`` or diagnostics on request.

The population-level parameters keep every draw.  The group effects keep their
exact posterior means, covariances and intervals (computed from every draw) and
a bounded number of joint draws (``store_draws``), spread evenly over each
chain: see :mod:`skhier._posterior.group_draws`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from skhier._model.likelihoods import GLM_FAMILIES
from skhier._posterior import predict as _predict
from skhier._posterior.group_draws import (
    _group_moments,
    full_blocks,
    kept_per_chain,
    kept_positions,
    quantiles,
    reduce_group_draws,
)
from skhier._util.warn import import_quietly

#: parameters with one value per group (their draws are the kept ones only)
GROUP_NAMES = ("group_intercept", "group_coef")


@dataclass
class Posterior:
    """Posterior draws on the original scale.

    Attributes
    ----------
    intercept : (C, D)            population intercept ``mu_a`` (at X = 0)
    coef : (C, D, K)              population slopes ``mu_b``
    group_intercept_sd : (C, D)   ``sigma_a``
    group_coef_sd : (C, D, K)     ``sigma_b`` (0 for features without random slopes)
    noise_sd : (C, D) or None     ``eps`` (None: a likelihood without one)
    group_intercept : (C, D', G)  ``a[g]``: the kept draws (positions ``kept``)
    group_coef : (C, D', G, K)    ``b[g, k]``: the kept draws
    diverging : (C, D)            divergent transitions
    max_treedepth : (C, D)        transitions that hit NUTS' maximum tree depth
    group_corr : (C, D, K+1, K+1) correlations of ``[a[g], b[g, :]]``: identity
                                  for independent effects and in the rows of
                                  features without a random slope (None in models
                                  saved by skhier 0.1.0: independent)
    noise_df : (C, D) or None     ``nu``, degrees of freedom of Student-t noise
                                  (None for Gaussian noise)
    kept : (D',) or None          positions in each chain of the kept draws of the
                                  group effects (None: all draws are kept)
    group_mean : (G, K+1)         posterior means of ``[a[g], b[g]]`` from every
                                  draw (None in models saved by earlier versions:
                                  computed from the draws)
    group_cov : (G, K+1, K+1)     their posterior covariances, from every draw
    group_bounds : (G, K+1, 2)    their equal-tailed ``bounds_prob`` intervals,
                                  from every draw
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
    kept: np.ndarray | None = None
    group_mean: np.ndarray | None = None
    group_cov: np.ndarray | None = None
    group_bounds: np.ndarray | None = None
    bounds_prob: float | None = None
    #: the likelihood's name (None in models saved before there were several)
    family: str | None = None
    #: negative binomial counts' dispersion (variance ``mu + dispersion * mu^2``), (C, D)
    dispersion: np.ndarray | None = None

    @classmethod
    def from_standardized(cls, draws, spec, scaling, prob=0.95, store_draws="all") -> Posterior:
        """Map standardized draws (``beta``, ``u``, ``tau``, ``s``) to user units.

        ``u`` is (C, D, G, q) or an iterator of blocks of groups (see
        :func:`skhier._posterior.group_draws.reduce_group_draws`); the group effects are
        reduced to moments, ``prob`` intervals and ``store_draws`` kept draws.
        """
        beta, u, tau, s = draws["beta"], draws["u"], draws["tau"], draws["s"]
        family = getattr(spec, "likelihood", "normal")
        ys, xm, xsc = scaling.y_scale, scaling.x_mean, scaling.x_scale
        slopes = list(spec.slope_idx)
        coef = ys * beta[..., 1:] / xsc
        intercept = scaling.y_mean + ys * (beta[..., 0] - (beta[..., 1:] * xm / xsc).sum(-1))
        group_coef_sd = np.zeros(coef.shape)
        group_coef_sd[..., slopes] = ys * tau[..., 1:] / xsc[slopes]
        n_chains, n_draws = intercept.shape
        n_groups = u.shape[2] if isinstance(u, np.ndarray) else draws["n_groups"]
        kept = kept_positions(
            n_draws,
            kept_per_chain(store_draws, n_chains, n_draws, n_groups, coef.shape[-1] + 1),
        )
        blocks = full_blocks(u) if isinstance(u, np.ndarray) else u
        group = reduce_group_draws(blocks, intercept, coef, ys, xsc[slopes], slopes, kept, prob)
        return cls(
            intercept=intercept,
            coef=coef,
            group_intercept_sd=ys * tau[..., 0],
            group_coef_sd=group_coef_sd,
            noise_sd=None if family in GLM_FAMILIES else ys * s,
            group_intercept=group["group_intercept"],
            group_coef=group["group_coef"],
            diverging=np.asarray(draws["diverging"], dtype=bool),
            max_treedepth=np.asarray(draws["max_treedepth"], dtype=bool),
            group_corr=_padded_corr(draws.get("corr"), slopes, coef.shape),
            noise_df=draws.get("nu"),
            kept=None if len(kept) == n_draws else kept,
            group_mean=group["mean"],
            group_cov=group["cov"],
            group_bounds=group["bounds"],
            bounds_prob=float(prob),
            family=family,
            dispersion=draws.get("dispersion"),
        )

    # ------------------------------------------------------------------ shapes
    @property
    def n_draws(self) -> int:
        """Draws of the population-level parameters (chains x draws)."""
        return self.intercept.shape[0] * self.intercept.shape[1]

    # ---------------------------------- prediction: one interface for every layout
    def mean_and_var(self, X, codes, new_codes, with_var=True):
        """Exact posterior mean (and variance) of ``E[y | x, group]`` per row."""
        return _predict.linear_moments(self, X, codes, new_codes >= 0, with_var=with_var)

    def predictive_draws(self, X, codes, new_codes, idx, rng, new_normals=None):
        """``new_normals``: a list of one array, the standard normals (len(idx),
        n_new, K + 1) of the new groups, instead of draws from ``rng``."""
        normals = None if new_normals is None else new_normals[0]
        return _predict.predictive_draws(
            self, X, codes, new_codes, idx, rng, new_normals=normals
        )

    # ------------------------------------------- one interface for every layout
    def diagnose(self, groups="auto") -> dict:
        """r_hat and bulk ESS of every sampled parameter."""
        from skhier._posterior.diagnostics import parameter_diagnostics

        return parameter_diagnostics(self, groups=groups)

    def summary_table(self, est, group_level, diagnostics):
        from skhier._posterior.summary import summary_table

        return summary_table(est, group_level, diagnostics)

    def inference_data(self, est):
        return self.to_inference_data(est._feature_names(), est.groups_)

    def prediction_codes(self, est, labels, n_rows, counts=None):
        """``(codes, new_codes)`` of shape (n_rows,) for a prediction method's
        labels, after ``est.unseen_groups``; ``counts``: rows per label when
        ``labels`` are distinct labels."""
        from skhier._data.groups import prediction_codes

        return prediction_codes(
            labels, n_rows, est.groups_, est.unseen_groups,
            fit_with_groups=getattr(est, "_fit_with_groups", True), counts=counts,
        )  # fmt: skip

    def new_level_labels(self, est, labels, new_codes):
        """The label of each new group ``0..n_new - 1`` in ``new_codes`` (a list of
        one list: one factor)."""
        from skhier._data.groups import POPULATION, _plain

        found, rows = np.unique(new_codes, return_index=True)
        rows = rows[found >= 0]
        if labels is POPULATION:
            return [[POPULATION] * len(rows)]
        return [[_plain(np.asarray(labels)[r]) for r in rows]]

    def effect_sizes(self) -> list[int]:
        """The number of effects of the one factor (intercept and every feature)."""
        return [1 + self.coef.shape[-1]]

    def predictive_interval(self, X, codes, new_codes, prob, rng):
        return _predict.predictive_interval(self, X, codes, new_codes, prob, rng)

    def linear_draws(self, X, codes, idx, rng=None, new_codes=None):
        """Draws of the linear predictor (the mean for Gaussian noise), (n,
        len(idx)), at joint draws ``idx``; rows of one new group share its drawn
        effect."""
        return _predict.predictive_draws(self, X, codes, new_codes, idx, rng, noise=False)

    def sd_draws(self, feature_names, slope_mask=None) -> dict:
        """Every draw of each group-level SD, by its ``summary()`` row name
        (``slope_mask``: the features with a random slope; None: those whose SD is
        not 0)."""
        out = {"sigma_a": self.flat("group_intercept_sd")}
        coef_sd = self.flat("group_coef_sd")
        if slope_mask is None:
            slope_mask = np.any(coef_sd != 0.0, axis=0)
        for j in np.flatnonzero(slope_mask):
            out[f"sigma_b[{feature_names[j]}]"] = coef_sd[:, j]
        return out

    @property
    def n_joint(self) -> int:
        """Joint draws of every parameter: the kept draws of the group effects."""
        return self.group_intercept.shape[0] * self.group_intercept.shape[1]

    def flat(self, name: str) -> np.ndarray:
        """Draws of one parameter with chains and draws merged: (S, ...).  For the
        group effects these are the kept draws only."""
        arr = getattr(self, name, None)
        if arr is None:  # Gaussian noise: nu is infinite
            if name != "noise_df":
                raise AttributeError(name)
            arr = np.full(self.intercept.shape, np.inf)
        return arr.reshape((arr.shape[0] * arr.shape[1],) + arr.shape[2:])

    def joint(self, name: str) -> np.ndarray:
        """Flat draws of one parameter at the kept draws (``n_joint`` of them), so
        that the draws of every parameter at one index belong together."""
        draws = self.flat(name)
        if self.kept is None or name in GROUP_NAMES:
            return draws
        kept = self.chains(name)[:, self.kept]
        return kept.reshape((kept.shape[0] * kept.shape[1],) + draws.shape[1:])

    def chains(self, name: str) -> np.ndarray:
        """Draws of one parameter per chain: (C, D, ...) (group effects: (C, D', ...))."""
        draws = self.flat(name)
        return draws.reshape(self.intercept.shape[:1] + (-1,) + draws.shape[1:])

    # --------------------------------------------------------------- summaries
    def mean(self, name: str) -> np.ndarray:
        if name in GROUP_NAMES and self.group_mean is not None:
            return self.group_mean[:, 0] if name == "group_intercept" else self.group_mean[:, 1:]
        return self.flat(name).mean(axis=0)

    def sd(self, name: str) -> np.ndarray:
        """Posterior standard deviations (from every draw, for the group effects too)."""
        if name in GROUP_NAMES and self.group_cov is not None:
            sd = np.sqrt(np.diagonal(self.group_cov, axis1=1, axis2=2))
            return sd[:, 0] if name == "group_intercept" else sd[:, 1:]
        draws = self.flat(name)
        return draws.std(axis=0, ddof=1) if len(draws) > 1 else np.full(draws.shape[1:], np.nan)

    def interval(self, name: str, prob: float) -> np.ndarray:
        """Equal-tailed credible interval, shape ``param_shape + (2,)`` (the group
        effects' at ``bounds_prob`` from every draw, else from the kept draws)."""
        if name in GROUP_NAMES and self.group_bounds is not None and prob == self.bounds_prob:
            b = self.group_bounds
            return b[:, 0] if name == "group_intercept" else b[:, 1:]
        tail = (1.0 - prob) / 2.0
        return quantiles(self.flat(name), [tail, 1.0 - tail])

    def group_sd_and_corr(self, joint=False):
        """Flat draws of ``[sigma_a, sigma_b]`` (S, K+1) and of their correlation
        matrix (S, K+1, K+1): every draw, or the joint draws only."""
        flat = self.joint if joint else self.flat
        sd = np.column_stack([flat("group_intercept_sd"), flat("group_coef_sd")])
        if self.group_corr is None:
            corr = np.broadcast_to(np.eye(sd.shape[1]), (len(sd),) + (sd.shape[1],) * 2)
        else:
            corr = flat("group_corr")
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
        if self.group_mean is not None:
            group_mean, group_cov = self.group_mean, self.group_cov
        else:  # a model saved by an earlier version kept every draw
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
        """ArviZ ``InferenceData`` with named dimensions: the kept joint draws."""
        az = import_quietly("arviz")

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
        corr = self.group_sd_and_corr()[1].reshape(self.intercept.shape + (len(effects),) * 2)
        posterior = {
            "mu_a": self.intercept,
            "mu_b": self.coef,
            "sigma_a": self.group_intercept_sd,
            "sigma_b": self.group_coef_sd,
            "corr": corr,
        }
        extra = {"eps": self.noise_sd, "nu": self.noise_df, "dispersion": self.dispersion}
        posterior.update({k: v for k, v in extra.items() if v is not None})
        posterior = {k: v if self.kept is None else v[:, self.kept] for k, v in posterior.items()}
        posterior["a"], posterior["b"] = self.group_intercept, self.group_coef
        diverging = self.diverging if self.kept is None else self.diverging[:, self.kept]
        return az.from_dict(
            posterior=posterior,
            sample_stats={"diverging": diverging},
            coords=coords,
            dims=dims,
        )


def _padded_corr(corr, slopes, coef_shape):
    """Correlations of the random effects placed in a (K+1, K+1) identity."""
    k1 = coef_shape[-1] + 1
    out = np.broadcast_to(np.eye(k1), coef_shape[:-1] + (k1, k1)).copy()
    if corr is not None:
        idx = np.r_[0, np.asarray(slopes, dtype=int) + 1]
        out[..., idx[:, None], idx[None, :]] = corr
    return out
