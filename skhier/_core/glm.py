"""What skhier's generalized linear estimators share (binary outcomes, counts).

The linear predictor ``eta = a[g] + X @ b[g]`` (summed over factors when there are
several) lives on the link scale; the likelihood (:mod:`skhier._model.likelihoods`)
maps it to the mean.  Everything about groups, priors on the standardized scale,
posterior summaries and persistence comes from
:class:`~skhier._core.base.HierarchicalBase`; this module adds the fit skeleton
without a noise SD, the link-scale centring of the intercept, offsets
(``exposure``) and the prediction primitives that average over the posterior
draws on the response scale.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from skhier._core.base import FitInputs, HierarchicalBase
from skhier._data.factors import n_factors
from skhier._data.weights import weights_kind
from skhier._engines.registry import BY_NAME, select_engine
from skhier._model.likelihoods import FAMILIES
from skhier._posterior import memory as _memory
from skhier._posterior import predict as _predict
from skhier._util.seeds import generator

#: bound on the (rows x draws) block of predictions held at once


#: a typical group SD on the link scale, for :func:`glm_parametrization`
_TYPICAL_GROUP_SD = 0.5


def glm_parametrization(y, codes, n_groups, family, exposure=None, weights=None,
                        slopes=None, forms=("centered", "non-centered")):  # fmt: skip
    """The automatic rule for the NUTS engines: centered when the median group's
    own rows carry more information about its intercept than a typical spread of
    the groups (``info_g * 0.5^2 >= 1``), non-centered (no funnel) otherwise.

    ``info_g`` is the Fisher information of the group's intercept at its raw mean:
    ``n_g p (1 - p)`` for binary outcomes (``p`` the overall share of 1s);
    ``sum(mu) / (1 + m phi)`` for counts (``m`` the group's mean count, ``phi`` a
    moment estimate of the over-dispersion, 0 for Poisson); rows count by their
    frequency ``weights``.

    With centered intercepts and random slopes (``slopes``: their columns) on an
    engine with the ``"partial"`` form, each slope gets the same test with its own
    spread, a method-of-moments estimate from the groups' one-step slopes
    (:func:`_slope_reliability`): where a slope varies little next to what a
    group's rows say about it (a slope whose SD is near 0 above all), the slopes
    are non-centred (``"partial"``)."""
    n = np.bincount(codes, weights=weights, minlength=n_groups).astype(float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if family == "bernoulli":
        p = float(np.average(y, weights=weights))
        info = n * p * (1.0 - p)
        group_mean = np.bincount(codes, weights=w * y, minlength=n_groups) / np.maximum(n, 1e-12)
        mu = np.clip(group_mean, 0.02, 0.98)[codes]
        row_info, resid = mu * (1.0 - mu), y - mu
    else:
        total = np.bincount(codes, weights=w * y, minlength=n_groups)
        mean = total / np.maximum(n, 1.0)
        m = float(np.average(y, weights=weights))
        v = float(np.average((y - m) ** 2, weights=weights))
        phi = max(0.0, (v - m) / max(m * m, 1e-12)) if family == "negative_binomial" else 0.0
        info = (total + 0.5) / (1.0 + mean * phi)
        expo = np.ones(len(y)) if exposure is None else np.asarray(exposure, dtype=np.float64)
        size = np.bincount(codes, weights=w * expo, minlength=n_groups)
        mu = ((total + 0.5) / np.maximum(size, 1e-12))[codes] * expo
        row_info, resid = mu / (1.0 + mu * phi), (y - mu) / (1.0 + mu * phi)
    med = float(np.median(info[n > 0])) if (n > 0).any() else 0.0
    if med * _TYPICAL_GROUP_SD**2 < 1.0:
        return "non-centered"
    if slopes is None or slopes.shape[1] == 0 or "partial" not in forms:
        return "centered"
    for k in range(slopes.shape[1]):
        if _slope_reliability(slopes[:, k], codes, n_groups, w * row_info, w * resid) < 1.0:
            return "partial"
    return "centered"


def _slope_reliability(x, codes, n_groups, row_info, score) -> float:
    """``median_g info_g * tau^2`` for one random slope: ``info_g`` the information
    of group g's slope (``sum_i W_i (x_i - xbar_g)^2``), ``tau^2`` the slopes'
    between-group variance, by the method of moments from each group's one Fisher
    scoring step from its mean, ``b_g = sum_i (x_i - xbar_g) r_i / info_g``:
    ``var(b_g) - mean(1 / info_g)``."""
    sw = np.bincount(codes, weights=row_info, minlength=n_groups)
    xbar = np.bincount(codes, weights=row_info * x, minlength=n_groups) / np.maximum(sw, 1e-300)
    dx = x - xbar[codes]
    info = np.bincount(codes, weights=row_info * dx * dx, minlength=n_groups)
    step = np.bincount(codes, weights=dx * score, minlength=n_groups)
    ok = info > 1e-8 * max(float(info.max()), 1e-300)
    if ok.sum() < 3:
        return 0.0
    b = step[ok] / info[ok]
    tau2 = float(np.var(b, ddof=1) - np.mean(1.0 / info[ok]))
    return float(np.median(info[ok])) * max(tau2, 0.0)


class HierarchicalGLMBase(HierarchicalBase):
    """Shared machinery of the binary and count estimators (not public)."""


    # ------------------------------------------------------------------ fit
    def _glm_inputs(self, X, y, groups, exposure=None, weights=None):
        """The engine's inputs, with ``y`` already numeric (0/1 or proportions, or
        counts), ``exposure`` per row or None and the rows' frequency ``weights``
        (None: each row once) with the rows of weight 0 already dropped."""
        if n_factors(groups, self.group_col) > 1:
            return self._several_inputs(X, y, groups, exposure, weights)
        X, y, codes = self._validate_training_data(X, y, groups)
        engine = select_engine(
            self.engine, self.inference, self.likelihood, int(self._fit_with_groups),
            weights=weights_kind(weights),
        )  # fmt: skip
        exposure = self._check_exposure(exposure, X.shape[0])
        slope_idx = self._resolve_design(X, codes)
        scaling = self._scaling(X, y, exposure, weights)
        self.engine_ = engine
        self.parametrization_ = self.parametrization
        if self.parametrization == "auto":
            slopes = (X[:, list(slope_idx)] - scaling.x_mean[list(slope_idx)]) / scaling.x_scale[
                list(slope_idx)
            ]
            self.parametrization_ = glm_parametrization(
                y, codes, len(self.groups_), self.likelihood, exposure, weights,
                slopes=slopes, forms=BY_NAME[engine].forms,
            )  # fmt: skip
        spec = self._spec(X.shape[1], slope_idx, self.engine_, self.parametrization_)
        offset = self._offset(scaling, X.shape[0], exposure)
        return FitInputs(X, y, codes, spec, scaling, offset, weights=weights)

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

    def _scaling(self, X, y, exposure=None, weights=None):
        """Features standardized; the intercept centred at the link of the mean
        response (per unit of exposure), so its prior concerns departures from it.
        ``standardize=False``: neither (the priors then apply as written, on the
        user's scale, centred at 0)."""
        base = super()._scaling(X, y, weights=weights)
        if not self.standardize:
            return replace(base, y_mean=0.0, y_scale=1.0)
        w = np.ones(len(y)) if weights is None else weights
        total = (w @ y) / (w @ exposure if exposure is not None else w.sum())
        if weights is None:  # (the same number, summed as it always was)
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
        return self.posterior_.mean_and_var(X, codes, new_codes, with_var=False)[0]

    def _mean_draws(self, X, codes, new_codes, idx, rng, log_exposure=None):
        """Draws of the mean response (n, len(idx)): the inverse link of ``eta``."""
        eta = self._eta_draws(X, codes, new_codes, idx, rng)
        if log_exposure is not None:
            eta += log_exposure[:, None]
        return FAMILIES[self.posterior_.family].inverse_link(eta)

    def _response_summary(self, X, groups, prob=None, exposure=None):
        """Posterior mean and SD of the mean response per row and, with ``prob``,
        its equal-tailed credible interval (over every joint draw)."""
        X, codes, new_codes = self._prepare(X, groups)
        log_exposure = self._log_exposure(exposure, X.shape[0])
        idx = np.arange(self.posterior_.n_joint)
        rng = np.random.default_rng(self._predict_seed)
        mean, sd = np.empty(X.shape[0]), np.empty(X.shape[0])
        bounds = None if prob is None else np.empty((X.shape[0], 2))
        # a block holds the draws of the linear predictor and of the mean response
        for sl in _predict.row_blocks(X.shape[0], len(idx), width=2):
            le = None if log_exposure is None else log_exposure[sl]
            draws = self._mean_draws(X[sl], codes[sl], new_codes[sl], idx, rng, le)
            mean[sl] = draws.mean(axis=1)
            sd[sl] = draws.std(axis=1)
            if prob is not None:
                bounds[sl] = _predict.equal_tailed(draws, prob)
        return mean, sd, bounds

    def _log_exposure(self, exposure, n_rows):
        exposure = self._check_exposure(exposure, n_rows)
        return None if exposure is None else np.log(exposure)

    def _outcome_draws(self, X, groups, n_samples, random_state, exposure=None):
        """Posterior predictive draws of the outcome, (n_rows, n_samples)."""
        self._check_n_samples(n_samples)
        X, codes, new_codes = self._prepare(X, groups)
        _memory.check_samples(X.shape[0], n_samples, X.shape[1])
        log_exposure = self._log_exposure(exposure, X.shape[0])
        rng = generator(random_state)
        total = self.posterior_.n_joint
        idx = rng.choice(total, size=n_samples, replace=n_samples > total)
        mean = self._mean_draws(X, codes, new_codes, idx, rng, log_exposure)
        post = self.posterior_
        disp = None if post.dispersion is None else post.joint("dispersion")[idx]
        return FAMILIES[post.family].sample(mean, disp, rng)
