"""HierarchicalPoissonRegressor: hierarchical log-linear models for counts."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions

from skhier._core.base import SHARED_CONSTRAINTS, fit_or_restore
from skhier._core.formula_fit import formula_fit, formula_target
from skhier._core.glm import HierarchicalGLMBase
from skhier._dask.frames import refuse
from skhier._posterior.predict import equal_tailed
from skhier._util.warn import warn
from skhier.exceptions import CountTargetWarning, MissingExposureWarning


class HierarchicalPoissonRegressor(RegressorMixin, HierarchicalGLMBase):
    """Bayesian hierarchical (multilevel) Poisson or negative binomial regression.

    Counts with group-varying intercepts and slopes on the log scale::

        (a[g], b[g]) ~ MultivariateNormal((mu_a, mu_b), Sigma)   # sigma_a, sigma_b, LKJ
        y[i]    ~ Poisson(mu[i])   or   NegativeBinomial(mu[i], alpha)
        log(mu[i]) = log(exposure[i]) + a[g[i]] + X[i] @ b[g[i]]

    ``exposure`` (the time, area or population each count was observed over) is a
    fit/predict argument routed like ``groups``; the coefficients are then log
    *rates* per unit of exposure.  ``family="negative_binomial"`` adds
    over-dispersion: variance ``mu + dispersion * mu^2`` (``dispersion`` is
    statsmodels' ``alpha``, ``1 / alpha`` in PyMC's parametrization), with
    ``sqrt(dispersion) ~ HalfNormal(1)`` shrinking toward Poisson (``dispersion = 0``).

    The engine is NUTS (nutpie) on the explicit model, centered where the median
    group's rows dominate its prior and non-centered otherwise, with non-centered
    slopes where they vary little next to what the rows say about them
    (``parametrization="auto"``, see the user guide); its log density and gradient
    are skhier's numba code (compiled once per machine);
    ``engine="explicit"`` runs the same model in PyMC (the reference).

    Priors (features standardized internally; log scale)::

        intercept at the feature means ~ Normal(log(mean rate), prior_intercept_sd)
        mu_b (per SD of a feature)     ~ Normal(0, prior_coef_sd)
        sigma_a, sigma_b               ~ Exponential(mean=prior_group_sd)

    Parameters
    ----------
    family : {"poisson", "negative_binomial"}, default="poisson"
        Distribution of the counts.
    engine : {"auto", "nuts", "explicit"}, default="auto"
        "auto" is "nuts".
    inference : {"auto"}, default="auto"
    prior_intercept_sd, prior_coef_sd : float, default=2.5
    prior_group_sd : float, default=1.0
    draws, tune, chains : int, default=1000, 1000, 4
    Others
        As in :class:`HierarchicalClassifier` and :class:`HierarchicalRegressor`.

    Attributes
    ----------
    dispersion_, dispersion_interval_ : float, ndarray of shape (2,)
        Posterior mean and interval of ``dispersion`` (negative binomial only).
    Others
        As in :class:`HierarchicalRegressor`, on the log scale.
    """

    __metadata_request__fit = {"groups": True, "exposure": True, "sample_weight": True}
    __metadata_request__predict = {"groups": True, "exposure": True}
    __metadata_request__score = {"groups": True, "exposure": True, "sample_weight": True}

    _parameter_constraints: dict = {
        **SHARED_CONSTRAINTS,
        "family": [StrOptions({"poisson", "negative_binomial"})],
        "engine": [StrOptions({"auto", "nuts", "explicit"})],
        "inference": [StrOptions({"auto"})],
    }

    def __init__(
        self,
        *,
        family="poisson",
        correlated_effects=True,
        random_slopes="all",
        engine="auto",
        inference="auto",
        parametrization="auto",
        prior_intercept_sd=2.5,
        prior_coef_sd=2.5,
        prior_group_sd=1.0,
        prior_corr_eta=2.0,
        standardize=True,
        draws=1000,
        tune=1000,
        chains=4,
        store_draws="auto",
        target_accept=None,
        random_state=None,
        progressbar=False,
        interval_prob=0.95,
        unseen_groups="warn",
        group_col=None,
        nested=None,
        formula=None,
    ):
        self.family = family
        self.correlated_effects = correlated_effects
        self.random_slopes = random_slopes
        self.engine = engine
        self.inference = inference
        self.parametrization = parametrization
        self.prior_intercept_sd = prior_intercept_sd
        self.prior_coef_sd = prior_coef_sd
        self.prior_group_sd = prior_group_sd
        self.prior_corr_eta = prior_corr_eta
        self.standardize = standardize
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.store_draws = store_draws
        self.target_accept = target_accept
        self.random_state = random_state
        self.progressbar = progressbar
        self.interval_prob = interval_prob
        self.unseen_groups = unseen_groups
        self.group_col = group_col
        self.nested = nested
        self.formula = formula

    @property
    def likelihood(self):
        return self.family

    @_fit_context(prefer_skip_nested_validation=True)
    @fit_or_restore
    @formula_fit
    def fit(self, X, y=None, *, groups=None, exposure=None, sample_weight=None):
        """Sample the posterior of the hierarchical count model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Non-negative integer counts (non-integer values warn:
            :class:`~skhier.exceptions.CountTargetWarning`).
        groups : array-like, POPULATION or None, default=None
            Group label of each row, as in :meth:`HierarchicalRegressor.fit`.
        exposure : float or array-like of shape (n_samples,), default=None
            Positive exposure of each row, or one for every row (None: 1).
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: a row of weight ``w`` counts as ``w`` identical rows
            (same count, same exposure; 0 leaves the row out).

        Returns
        -------
        self : HierarchicalPoissonRegressor
        """
        self._fit_inputs(self._model_inputs(X, y, groups, exposure, sample_weight))
        self._fit_with_exposure = exposure is not None and bool(
            np.any(np.asarray(exposure, dtype=np.float64) != 1.0)
        )
        return self

    def _model_inputs(self, X, y, groups, exposure=None, sample_weight=None):
        refuse(X, y, groups, exposure, sample_weight, what=f"{type(self).__name__}.fit")
        self._check_counts(y)
        weights, X, y, groups, exposure = self._frequency_weights(
            sample_weight, X, y, groups, exposure
        )
        return self._glm_inputs(X, y, groups, exposure, weights)

    def _numeric_target(self, y):
        """Counts as floats (checked as in fit)."""
        self._check_counts(y)
        return np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y, dtype=np.float64).ravel()

    @staticmethod
    def _check_counts(y):
        """Counts: non-negative; non-integer values warn (the likelihood is then a
        quasi-likelihood, as scikit-learn's ``PoissonRegressor`` allows)."""
        if y is None:
            return
        arr = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
        if arr.dtype.kind == "c":
            raise ValueError("Complex data not supported: `y` must be counts.")
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"Unknown label type: `y` must be counts (non-negative integers); got values "
                f"of dtype {arr.dtype} that are not numbers."
            ) from None
        finite = arr[np.isfinite(arr)]
        if (finite < 0).any():
            raise ValueError(
                "`y` must be counts (non-negative integers); it has negative values. For a "
                "continuous target use HierarchicalRegressor."
            )
        if (finite != np.round(finite)).any():
            warn(
                "`y` has non-integer values: HierarchicalPoissonRegressor models counts, and "
                "fits these by the Poisson (or negative binomial) quasi-likelihood. For rates, "
                "pass the counts as y and the time or size they were observed over as "
                "`exposure`; for a continuous target use HierarchicalRegressor.",
                CountTargetWarning,
            )

    def predict(self, X, *, groups=None, exposure=None, return_std=False):
        """Posterior mean of the expected count ``exposure * exp(eta)``; without
        ``exposure`` (a float, or one per row), the rate per unit of exposure.

        ``return_std=True`` also returns its posterior SD: the uncertainty of the
        expected count (the rate), not of a new count, as
        :meth:`HierarchicalRegressor.predict`'s ``return_std``; the counts' own noise
        is in :meth:`predict_interval` and :meth:`sample_y`.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,)
            Only when ``return_std`` is True.
        """
        mean, sd, _ = self._response_summary(X, groups, exposure=exposure)
        return (mean, sd) if return_std else mean

    def predict_rate_interval(self, X, *, groups=None, exposure=None, prob=None):
        """Equal-tailed credible interval of the expected count ``exposure * exp(eta)``."""
        prob = self._interval_prob(prob)
        return self._response_summary(X, groups, prob, exposure)[2]

    def predict_interval(self, X, *, groups=None, exposure=None, prob=None):
        """Equal-tailed posterior predictive interval of the count (Poisson or negative
        binomial noise included), from every joint draw.

        Returns
        -------
        interval : ndarray of shape (n_samples, 2)
        """
        prob = self._interval_prob(prob)
        n_joint = self.posterior_.n_joint
        draws = self._outcome_draws(X, groups, n_joint, self._predict_seed, exposure)
        return equal_tailed(draws, prob)

    def sample_y(self, X, *, groups=None, exposure=None, n_samples=1, random_state=None):
        """Counts drawn from the posterior predictive distribution, (n_samples_X, n_samples)."""
        return self._outcome_draws(X, groups, n_samples, random_state, exposure)

    def score(self, X, y=None, *, groups=None, exposure=None, sample_weight=None):
        """D^2: the fraction of Poisson deviance explained (as ``PoissonRegressor.score``)."""
        from sklearn.metrics import d2_tweedie_score

        y = formula_target(self, X, y)
        if exposure is None and getattr(self, "_fit_with_exposure", False):
            warn(
                "This model was fit with `exposure`, but score() got none: it compares "
                "the counts y with expected counts per unit of exposure. Pass "
                "score(X, y, groups=..., exposure=...); in cross-validation pass it in "
                "params=, as groups.",
                MissingExposureWarning,
            )
        pred = self.predict(X, groups=groups, exposure=exposure)
        return d2_tweedie_score(y, pred, sample_weight=sample_weight, power=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags
