"""The posterior of a model with several grouping factors, in the user's units.

Pure numpy, like :mod:`skhier._posterior.one_factor`: every draw of the population-level
parameters (``mu_a``, ``mu_b``, ``eps``, each factor's SDs and correlations);
each factor's effects as exact posterior means and covariances over every draw
plus their kept joint draws (``store_draws``).  A factor's effects are
*deviations* from the population (lme4's ``ranef``): a row's mean is
``mu_a + x @ mu_b + sum over factors of z_f(x) @ u_f[level]`` with
``z_f(x) = [1, x[slopes of f]]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skhier._model.likelihoods import GLM_FAMILIES, of_posterior
from skhier._posterior.group_draws import quantiles
from skhier._posterior.predict import interval_by_blocks


@dataclass
class FactorPosterior:
    """One factor's part of the posterior (``q`` effects: intercept, then slopes).

    Attributes
    ----------
    name : str
    slope_idx : (q - 1,)         features with a random slope on this factor
    sd : (C, D, q)               SDs of the effects (``sigma_a``, ``sigma_b``)
    corr : (C, D, q, q) or None  their correlations (None: independent)
    draws : (C, D', L, q)        kept draws of the effects of the L levels
    mean : (L, q)                posterior means, from every draw
    cov : (L, q, q)              posterior covariances, from every draw
    """

    name: str
    slope_idx: np.ndarray
    sd: np.ndarray
    corr: np.ndarray | None
    draws: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    def design(self, X):
        """``z_f(x) = [1, x[slopes]]`` for the rows of X: (n, q)."""
        return np.hstack([np.ones((X.shape[0], 1)), X[:, self.slope_idx]])

    def cov_draws(self, idx=None):
        """Draws of the effects' covariance ``Sigma_f``: (S, q, q)."""
        sd = self.sd.reshape(-1, self.sd.shape[-1])
        if idx is not None:
            sd = sd[idx]
        if self.corr is None:
            return sd[:, :, None] * np.eye(sd.shape[1]) * sd[:, None, :]
        corr = self.corr.reshape((-1,) + self.corr.shape[2:])
        corr = corr if idx is None else corr[idx]
        return sd[:, :, None] * corr * sd[:, None, :]


@dataclass
class FactorsPosterior:
    """Population-level draws ``(C, D, ...)`` and one :class:`FactorPosterior` each."""

    intercept: np.ndarray
    coef: np.ndarray
    noise_sd: np.ndarray | None  # None: a likelihood without one
    factors: list
    kept: np.ndarray
    diverging: np.ndarray
    max_treedepth: np.ndarray
    family: str | None = None  # the likelihood's name (None: Gaussian, saved earlier)
    noise_df: np.ndarray | None = None  # Student-t noise's degrees of freedom
    dispersion: np.ndarray | None = None  # the negative binomial's (0: Poisson)

    @classmethod
    def from_standardized(cls, draws, spec, scaling) -> FactorsPosterior:
        beta, s = draws["beta"], draws["s"]
        ys, xm, xsc = scaling.y_scale, scaling.x_mean, scaling.x_scale
        coef = ys * beta[..., 1:] / xsc
        intercept = scaling.y_mean + ys * (beta[..., 0] - (beta[..., 1:] * xm / xsc).sum(-1))
        factors = []
        for term, fd in zip(spec.factors, draws["factors"], strict=True):
            slopes = np.asarray(term.slope_idx, dtype=np.intp)
            scale = ys / np.r_[1.0, xsc[slopes]]
            factors.append(
                FactorPosterior(
                    name=term.name,
                    slope_idx=slopes,
                    sd=fd["tau"] * scale,
                    corr=fd["corr"],
                    draws=fd["u"] * scale,
                    mean=fd["mean"] * scale,
                    cov=fd["cov"] * scale[:, None] * scale[None, :],
                )
            )
        return cls(
            intercept=intercept,
            coef=coef,
            noise_sd=None if spec.likelihood in GLM_FAMILIES else ys * s,
            factors=factors,
            kept=draws["kept"],
            diverging=draws["diverging"],
            max_treedepth=draws["max_treedepth"],
            family=spec.likelihood,
            noise_df=draws.get("nu"),
            dispersion=draws.get("dispersion"),
        )

    # ------------------------------------------------------------------ shapes
    @property
    def n_draws(self) -> int:
        return self.intercept.size

    @property
    def n_joint(self) -> int:
        return self.intercept.shape[0] * len(self.kept)

    def population(self, joint=False):
        """Flat draws of ``[mu_a, mu_b]`` (S, K + 1) (at the kept draws if ``joint``)."""
        pop = np.concatenate([self.intercept[..., None], self.coef], axis=-1)
        if joint:
            pop = pop[:, self.kept]
        return pop.reshape(pop.shape[0] * pop.shape[1], pop.shape[-1])

    def joint_noise(self):
        return self.noise_sd[:, self.kept].ravel()

    # ------------------------------------------- named draws, as Posterior's
    def chains(self, name: str) -> np.ndarray:
        """Draws of a population-level parameter by name: (C, D, ...)."""
        return getattr(self, name)

    def flat(self, name: str) -> np.ndarray:
        draws = self.chains(name)
        return draws.reshape((draws.shape[0] * draws.shape[1],) + draws.shape[2:])

    def joint(self, name: str) -> np.ndarray:
        """Flat draws at the kept draws, so that index ``i`` of every parameter (and
        of each factor's kept effects) belongs to one joint draw."""
        draws = self.chains(name)[:, self.kept]
        return draws.reshape((draws.shape[0] * draws.shape[1],) + draws.shape[2:])

    def mean(self, name: str) -> np.ndarray:
        return self.chains(name).mean(axis=(0, 1))

    def interval(self, draws, prob):
        """Equal-tailed ``prob`` interval of ``draws`` (S, ...) or of a named parameter."""
        if isinstance(draws, str):
            draws = self.flat(draws)
        tail = (1.0 - prob) / 2.0
        return quantiles(draws, [tail, 1.0 - tail])

    # ------------------------------------------- one interface for every layout
    def diagnose(self, groups="auto") -> dict:
        """r_hat and bulk ESS of every sampled parameter (see
        :func:`skhier._posterior.factors_report.diagnostics`)."""
        from skhier._posterior.factors_report import diagnostics

        return diagnostics(self, groups)

    def summary_table(self, est, group_level, diagnostics):
        from skhier._posterior.factors_report import summary_table

        return summary_table(est, group_level, diagnostics)

    def inference_data(self, est):
        from skhier._posterior.factors_report import to_inference_data

        return to_inference_data(est)

    def prediction_codes(self, est, labels, n_rows, counts=None):
        """``(codes, new_codes)`` of shape (n_rows, factors) for a prediction
        method's labels, after ``est.unseen_groups``; ``counts``: rows per label
        combination when ``labels`` are distinct combinations."""
        from skhier._data.factors import prediction_factor_codes

        return prediction_factor_codes(labels, est._factors, n_rows, est.unseen_groups,
                                       counts=counts)  # fmt: skip

    def new_level_labels(self, est, labels, new_codes):
        """Per factor, the label of each new level ``0..n_new - 1`` in ``new_codes``
        (a tuple, outer to inner, for a nested factor)."""
        from skhier._data.factors import label_frame
        from skhier._data.groups import POPULATION

        layout = est._factors
        frame = None if labels is POPULATION else label_frame(
            labels, len(new_codes), names=list(layout.names)
        )  # fmt: skip
        out = []
        for f in range(len(self.factors)):
            found, rows = np.unique(new_codes[:, f], return_index=True)
            rows = rows[found >= 0]
            if frame is None:
                out.append([POPULATION] * len(rows))
                continue
            chain = [layout.names[c] for c in layout.chain(f)]
            out.append([tuple(frame[c].iloc[r] for c in chain) for r in rows])
        return out

    def effect_sizes(self) -> list[int]:
        """The number of effects (intercept and slopes) of each factor."""
        return [1 + len(fac.slope_idx) for fac in self.factors]

    # -------------------------------------------------------------- prediction
    def mean_and_var(self, X, codes, new_codes, with_var=True):
        """Exact posterior mean (and variance) of ``E[y | x, levels]`` per row."""
        return self.predict_moments(X, codes, new_codes, with_var)

    def predictive_draws(self, X, codes, new_codes, idx, rng, new_normals=None):
        return predictive_draws(self, X, codes, new_codes, idx, rng, new_normals)

    def predictive_interval(self, X, codes, new_codes, prob, rng):
        return predictive_interval(self, X, codes, new_codes, prob, rng)

    def predict_moments(self, X, codes, new_codes, with_var=True, chunk=2**22):
        """Posterior mean and variance of ``E[y | x, levels]`` per row.

        The mean is exact (means of every draw); the variance comes from the kept
        joint draws (the cross-factor covariances need them), plus, for a level
        not seen in training, ``z' E[Sigma_f] z``.
        """
        pop = self.population()
        mean = X @ pop[:, 1:].mean(0) + pop[:, 0].mean()
        var = np.zeros(X.shape[0])
        for f, fac in enumerate(self.factors):
            z = fac.design(X)
            seen = codes[:, f] >= 0
            mean[seen] += np.einsum("ij,ij->i", z[seen], fac.mean[codes[seen, f]])
            if with_var and (~seen).any():
                expected = fac.cov_draws().mean(axis=0)
                var[~seen] += np.einsum("ij,jk,ik->i", z[~seen], expected, z[~seen])
        if not with_var:
            return mean, None
        n_s = self.n_joint
        step = max(1, chunk // max(n_s, 1))
        for start in range(0, X.shape[0], step):
            sl = slice(start, start + step)
            values = self.linear_draws(X[sl], codes[sl], np.arange(n_s))
            var[sl] += values.var(axis=1, ddof=1) if n_s > 1 else 0.0
        return mean, np.maximum(var, 0.0)

    def sd_draws(self, feature_names, slope_mask=None) -> dict:
        """Every draw of each factor's SDs, by their ``summary()`` row names (each
        factor knows its slopes: ``slope_mask`` is not used)."""
        out = {}
        for fac in self.factors:
            sd = fac.sd.reshape(fac.sd.shape[0] * fac.sd.shape[1], -1)
            slopes = [f"sigma_b[{fac.name}, {feature_names[j]}]" for j in fac.slope_idx]
            out.update(zip([f"sigma_a[{fac.name}]", *slopes], sd.T, strict=True))
        return out

    def linear_draws(self, X, codes, idx, rng=None, new_codes=None, new_normals=None):
        """Draws of ``E[y | x, levels]`` (n, len(idx)) at joint draws ``idx``: seen
        levels from their kept draws; new levels (``new_codes >= 0``) drawn from
        ``Normal(0, Sigma_f)`` (one per new level and draw) when ``rng`` is given,
        else left out.  ``new_normals``: per factor, the standard normals
        (len(idx), n_new, q) of its new levels, instead of draws from ``rng``."""
        pop = self.population(joint=True)[idx]
        out = pop[:, 0][None, :] + X @ pop[:, 1:].T
        n_chains = self.intercept.shape[0]
        for f, fac in enumerate(self.factors):
            z = fac.design(X)
            seen = codes[:, f] >= 0
            if seen.any():
                u = fac.draws.reshape((n_chains * len(self.kept),) + fac.draws.shape[2:])
                u = u[idx][:, codes[seen, f]]  # (S, n_seen, q)
                out[seen] += np.einsum("nk,snk->ns", z[seen], u)
            if rng is not None and new_codes is not None and (new_codes[:, f] >= 0).any():
                new = new_codes[:, f] >= 0
                n_new = int(new_codes[:, f].max()) + 1
                chol = np.linalg.cholesky(self._joint_cov(fac, idx))
                e = (
                    rng.standard_normal((len(idx), n_new, z.shape[1]))
                    if new_normals is None
                    else new_normals[f]
                ) @ np.swapaxes(chol, 1, 2)
                out[new] += np.einsum("nk,snk->ns", z[new], e[:, new_codes[new, f]])
        return out

    def _joint_cov(self, fac, idx):
        n_chains = self.intercept.shape[0]
        flat = (np.arange(n_chains)[:, None] * self.intercept.shape[1] + self.kept).ravel()
        cov = fac.cov_draws(flat[idx])
        return cov + 1e-12 * np.eye(cov.shape[1]) * np.maximum(cov.max(), 1e-300)


@dataclass(frozen=True)
class FactorEffects:
    """One grouping factor's fitted effects, in the units of X and y.

    The effects are deviations from the population (``mu_a``, ``mu_b``), like
    lme4's ``ranef``: level ``l``'s intercept is ``intercept_ + intercept[l]``
    (plus the other factors' effects), its slopes ``coef_ + coef[l]``.

    Attributes
    ----------
    name : str
    levels : ndarray of shape (n_levels,)
        Labels (tuples ``(outer, ..., inner)`` for a nested factor).
    intercept, intercept_interval : (n_levels,), (n_levels, 2)
        Posterior means and credible intervals of the intercept deviations.
    coef, coef_interval : (n_levels, n_features), (n_levels, n_features, 2)
        Of the slope deviations (0 for features without a random slope here).
    intercept_sd, coef_sd : float, (n_features,)
        Posterior means of the SDs (``sigma_a``, ``sigma_b``) of this factor.
    corr : (n_features + 1, n_features + 1)
        Posterior mean correlations of ``[intercept, slopes]`` (NaN where an
        effect does not vary; identity for independent effects).
    random_slope_mask : (n_features,)
    """

    name: str
    levels: np.ndarray
    intercept: np.ndarray
    intercept_interval: np.ndarray
    coef: np.ndarray
    coef_interval: np.ndarray
    intercept_sd: float
    coef_sd: np.ndarray
    corr: np.ndarray
    random_slope_mask: np.ndarray


def predictive_draws(post, X, codes, new_codes, idx, rng, new_normals=None):
    """Posterior predictive draws (n, len(idx)) at joint draws ``idx``; rows of one
    new level share its drawn effect."""
    out = post.linear_draws(X, codes, idx, rng=rng, new_codes=new_codes, new_normals=new_normals)
    return out + of_posterior(post).sample_noise(post, idx, out.shape[0], rng)


def predictive_interval(post, X, codes, new_codes, prob, rng):
    """Equal-tailed posterior predictive interval per row, shape (n_rows, 2)."""
    idx = np.arange(post.n_joint)

    def draw_rows(sl):
        return predictive_draws(post, X[sl], codes[sl], new_codes[sl], idx, rng)

    # a block holds its linear predictor's draws and the noise added to them
    return interval_by_blocks(draw_rows, X.shape[0], len(idx), prob, width=2)
