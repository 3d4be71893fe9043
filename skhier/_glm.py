"""What skhier's generalized linear estimators share (binary outcomes, counts).

The linear predictor ``eta = a[g] + X @ b[g]`` (summed over factors when there are
several) lives on the link scale; the likelihood (:mod:`skhier._likelihoods`)
maps it to the mean.  Everything about groups, priors on the standardized scale,
posterior summaries and persistence comes from
:class:`~skhier._base.HierarchicalBase`; this module adds the fit skeleton
without a noise SD, the link-scale centring of the intercept, offsets
(``exposure``) and the prediction primitives that average over the posterior
draws on the response scale.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.utils import check_random_state

from . import _memory, _predict
from ._base import _SEED_MAX, FitInputs, HierarchicalBase
from ._factors import n_factors
from ._likelihoods import FAMILIES

#: bound on the (rows x draws) block of predictions held at once
_CHUNK = 2**22


#: a typical group SD on the link scale, for :func:`glm_parametrization`
_TYPICAL_GROUP_SD = 0.5


def glm_parametrization(y, codes, n_groups, family, exposure=None):
    """The automatic rule for the NUTS engines: centered when the median group's
    own rows carry more information about its intercept than a typical spread of
    the groups (``info_g * 0.5^2 >= 1``), non-centered (no funnel) otherwise.

    ``info_g`` is the Fisher information of the group's intercept at its raw mean:
    ``n_g p (1 - p)`` for binary outcomes (``p`` the overall share of 1s);
    ``sum(mu) / (1 + m phi)`` for counts (``m`` the group's mean count, ``phi`` a
    moment estimate of the over-dispersion, 0 for Poisson)."""
    n = np.bincount(codes, minlength=n_groups).astype(float)
    if family == "bernoulli":
        p = float(np.mean(y))
        info = n * p * (1.0 - p)
    else:
        total = np.bincount(codes, weights=y, minlength=n_groups)
        mean = total / np.maximum(n, 1.0)
        m, v = float(np.mean(y)), float(np.var(y))
        phi = max(0.0, (v - m) / max(m * m, 1e-12)) if family == "negative_binomial" else 0.0
        info = (total + 0.5) / (1.0 + mean * phi)
    med = float(np.median(info[n > 0])) if (n > 0).any() else 0.0
    return "centered" if med * _TYPICAL_GROUP_SD**2 >= 1.0 else "non-centered"


class HierarchicalGLMBase(HierarchicalBase):
    """Shared machinery of the binary and count estimators (not public)."""

    #: engines that can fit the family, the first is ``engine="auto"``'s choice
    _ENGINES: tuple = ("explicit",)

    # ------------------------------------------------------------------ fit
    def _glm_inputs(self, X, y, groups, exposure=None):
        """The engine's inputs, with ``y`` already numeric (0/1 or counts) and
        ``exposure`` per row or None."""
        self._check_engine()
        if n_factors(groups, self.group_col) > 1:
            if "gibbs" not in self._ENGINES:
                families = ", ".join(self._gibbs_families())
                raise ValueError(
                    f"{type(self).__name__} takes one grouping factor (several grouping "
                    f"factors need the Gibbs engine, which fits {families} outcomes only); "
                    f"got {n_factors(groups, self.group_col)}. Fit one factor, or combine "
                    "the factors' labels into one (e.g. 'school:class')."
                )
            if self.engine not in ("auto", "gibbs"):
                raise ValueError(
                    f"{type(self).__name__} with several grouping factors needs the Gibbs "
                    f"engine, which fits {', '.join(self._gibbs_families())} outcomes; got "
                    f"likelihood {self.likelihood!r} with engine={self.engine!r}. Use one "
                    "grouping factor, or engine='auto'."
                )
            return self._several_inputs(X, y, groups, exposure)
        X, y, codes = self._validate_training_data(X, y, groups)
        exposure = self._check_exposure(exposure, X.shape[0])
        slope_idx = self._resolve_design(X, codes)
        scaling = self._scaling(X, y, exposure)
        self.engine_ = self._ENGINES[0] if self.engine == "auto" else self.engine
        self.parametrization_ = (
            glm_parametrization(y, codes, len(self.groups_), self.likelihood, exposure)
            if self.parametrization == "auto"
            else self.parametrization
        )
        spec = self._spec(X.shape[1], slope_idx, self.engine_, self.parametrization_)
        offset = self._offset(scaling, X.shape[0], exposure)
        return FitInputs(X, y, codes, spec, scaling, offset)

    @staticmethod
    def _gibbs_families():
        return ("binary",)

    def _check_engine(self):
        if self.engine != "auto" and self.engine not in self._ENGINES:
            raise ValueError(
                f"engine={self.engine!r} cannot fit {type(self).__name__}'s likelihood "
                f"{self.likelihood!r}; use engine='auto' or one of {list(self._ENGINES)}."
            )
        if self.inference != "auto" and self.inference != "nuts":
            raise ValueError(
                f"inference={self.inference!r} is for Gaussian models; "
                f"{type(self).__name__} takes inference='auto'."
            )

    def _check_exposure(self, exposure, n_rows):
        if exposure is None:
            return None
        exposure = np.asarray(exposure, dtype=np.float64)
        if exposure.ndim == 0:  # one exposure for every row
            exposure = np.full(n_rows, float(exposure))
        exposure = exposure.ravel()
        if exposure.shape[0] != n_rows:
            raise ValueError(f"`exposure` has {exposure.shape[0]} values for {n_rows} rows of X.")
        if not (np.isfinite(exposure).all() and (exposure > 0).all()):
            raise ValueError(
                "`exposure` must be positive and finite (the time, area or population "
                "each count was observed over)."
            )
        return exposure

    def _scaling(self, X, y, exposure=None):
        """Features standardized; the intercept centred at the link of the mean
        response (per unit of exposure), so its prior concerns departures from it.
        ``standardize=False``: neither (the priors then apply as written, on the
        user's scale, centred at 0)."""
        base = super()._scaling(X, y)
        if not self.standardize:
            return replace(base, y_mean=0.0, y_scale=1.0)
        total = y.sum() / (exposure.sum() if exposure is not None else len(y))
        return replace(base, y_mean=FAMILIES[self.likelihood].link(total), y_scale=1.0)

    @staticmethod
    def _offset(scaling, n_rows, exposure=None):
        offset = np.full(n_rows, scaling.y_mean)
        return offset if exposure is None else offset + np.log(exposure)

    # ------------------------------------------------------------- predict
    def predict_linear(self, X, *, groups=None):
        """Posterior mean of the linear predictor ``a[g] + X @ b[g]`` (log-odds or log
        rate, without ``exposure``), exactly, from the group effects' moments.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like, POPULATION or None
            As in :meth:`HierarchicalRegressor.predict`.

        Returns
        -------
        eta : ndarray of shape (n_samples,)
        """
        X, codes, new_codes = self._prepare(X, groups)
        return self._linear_mean(X, codes, new_codes)

    def _linear_mean(self, X, codes, new_codes):
        """Posterior mean of the linear predictor (exact, from the group moments)."""
        if self._is_multi():
            return self.posterior_.predict_moments(X, codes, new_codes, with_var=False)[0]
        return _predict.linear_moments(self.posterior_, X, codes, new_codes >= 0, False)[0]

    def _mean_draws(self, X, codes, new_codes, idx, rng, log_exposure=None):
        """Draws of the mean response (n, len(idx)): the inverse link of ``eta``."""
        eta = self._eta_draws(X, codes, new_codes, idx, rng)
        if log_exposure is not None:
            eta += log_exposure[:, None]
        return FAMILIES[self.posterior_.family].inverse_link(eta)

    def _chunks(self, n_rows, n_draws):
        step = max(1, _CHUNK // max(n_draws, 1))
        for start in range(0, n_rows, step):
            yield slice(start, start + step)

    def _response_summary(self, X, groups, prob=None, exposure=None):
        """Posterior mean of the mean response per row and, with ``prob``, its
        equal-tailed credible interval (over every joint draw)."""
        X, codes, new_codes = self._prepare(X, groups)
        log_exposure = self._log_exposure(exposure, X.shape[0])
        idx = np.arange(self.posterior_.n_joint)
        rng = np.random.default_rng(self._predict_seed)
        mean = np.empty(X.shape[0])
        bounds = None if prob is None else np.empty((X.shape[0], 2))
        for sl in self._chunks(X.shape[0], len(idx)):
            le = None if log_exposure is None else log_exposure[sl]
            draws = self._mean_draws(X[sl], codes[sl], new_codes[sl], idx, rng, le)
            mean[sl] = draws.mean(axis=1)
            if prob is not None:
                tail = (1.0 - prob) / 2.0
                bounds[sl] = np.quantile(draws, [tail, 1.0 - tail], axis=1).T
        return mean, bounds

    def _log_exposure(self, exposure, n_rows):
        exposure = self._check_exposure(exposure, n_rows)
        return None if exposure is None else np.log(exposure)

    def _outcome_draws(self, X, groups, n_samples, random_state, exposure=None):
        """Posterior predictive draws of the outcome, (n_rows, n_samples)."""
        self._check_n_samples(n_samples)
        X, codes, new_codes = self._prepare(X, groups)
        _memory.check_samples(X.shape[0], n_samples, X.shape[1])
        log_exposure = self._log_exposure(exposure, X.shape[0])
        rng = np.random.default_rng(check_random_state(random_state).randint(_SEED_MAX))
        total = self.posterior_.n_joint
        idx = rng.choice(total, size=n_samples, replace=n_samples > total)
        mean = self._mean_draws(X, codes, new_codes, idx, rng, log_exposure)
        post = self.posterior_
        disp = None if post.dispersion is None else post.joint("dispersion")[idx]
        return FAMILIES[post.family].sample(mean, disp, rng)
