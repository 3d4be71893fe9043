"""HierarchicalClassifier: hierarchical logistic regression for binary outcomes."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils import assert_all_finite, column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import type_of_target

from skhier._core.base import SHARED_CONSTRAINTS, fit_or_restore
from skhier._core.formula_fit import formula_fit, formula_target
from skhier._core.glm import HierarchicalGLMBase
from skhier._core.workflow import no_exposure as _no_exposure
from skhier._dask.frames import refuse
from skhier._data.weights import check_trials, drop_unweighted, fit_weights


class HierarchicalClassifier(ClassifierMixin, HierarchicalGLMBase):
    """Bayesian hierarchical (multilevel) logistic regression with partial pooling.

    Binary outcomes with group-varying intercepts and slopes on the log-odds scale::

        (a[g], b[g]) ~ MultivariateNormal((mu_a, mu_b), Sigma)   # sigma_a, sigma_b, LKJ
        y[i]    ~ Bernoulli(p[i]),   logit(p[i]) = a[g[i]] + X[i] @ b[g[i]]

    Groups with few rows, or with only 0s or only 1s (quasi-separation), get finite
    estimates shrunk toward the population instead of the infinite log-odds of an
    unpenalized fit.  Several grouping factors (nested or crossed) are passed as in
    :class:`HierarchicalRegressor`.

    The default engine is exact Gibbs sampling with Pólya-Gamma data augmentation
    (Polson, Scott & Windle 2013): given one latent ``omega ~ PG(1, eta)`` per row
    the model is conditionally Gaussian, so the group effects and population
    coefficients are drawn jointly and exactly, and the SDs by the same collapsed and
    interweaved steps as the Gaussian Gibbs engine.  ``engine="nuts"`` runs NUTS on
    the explicit model (skhier's numba density, centered or non-centered as
    ``parametrization`` says), ``engine="explicit"``
    the textbook PyMC model (the reference; much slower).

    Priors (features standardized internally; log-odds scale)::

        intercept at the feature means ~ Normal(logit(mean(y)), prior_intercept_sd)
        mu_b (per SD of a feature)     ~ Normal(0, prior_coef_sd)
        sigma_a, sigma_b               ~ Exponential(mean=prior_group_sd)
        correlations                   ~ LKJ(prior_corr_eta)

    Parameters
    ----------
    correlated_effects, random_slopes, prior_corr_eta, standardize, store_draws
        As in :class:`HierarchicalRegressor`.
    interval_prob, unseen_groups, group_col, nested, formula, random_state, progressbar
        As in :class:`HierarchicalRegressor`.
    engine : {"auto", "gibbs", "nuts", "explicit"}, default="auto"
        "auto" is "gibbs" (Pólya-Gamma augmentation).
    inference : {"auto"}, default="auto"
        Every engine here samples the full posterior.
    parametrization : {"auto", "centered", "non-centered"}, default="auto"
        Form of the model for the engines that sample the group effects
        (``"nuts"``, ``"explicit"``).  ``"auto"``: centered when the median group's
        rows carry more information about its intercept than a typical group
        spread, non-centered otherwise; with the ``"nuts"`` engine, random slopes
        that vary little next to what the rows say about them are non-centered
        (``parametrization_ == "partial"``).  When that form shows divergent
        transitions or has not converged, the model is refit in another form and
        the better fit is kept (``convergence_["parametrization_switch"]`` says so).
    prior_intercept_sd, prior_coef_sd : float, default=2.5
        Prior SDs of the intercept (around the log-odds of the mean outcome) and of
        the population slopes per SD of their feature, on the log-odds scale.
    prior_group_sd : float, default=1.0
        Prior mean of the group-level SDs (log-odds scale).
    draws, tune, chains : int, default=1000, 500, 4
        Kept draws and burn-in sweeps per chain, and the number of chains.
    target_accept : float or None
        NUTS' target acceptance (``"nuts"`` and ``"explicit"`` engines; the Gibbs engine has none).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The two labels; ``predict_proba[:, 1]`` is the probability of ``classes_[1]``.
    intercept_, coef_, group_intercept_, group_coef_, group_intercept_sd_, group_coef_sd_
        As in :class:`HierarchicalRegressor`, on the log-odds scale; so are
        ``group_corr_`` and their ``*_interval_``, ``groups_``, ``factors_``,
        ``group_effects_``, ``convergence_``, ``diagnostics_`` and ``posterior_``.
    """

    likelihood = "bernoulli"
    __metadata_request__fit = {"groups": True, "sample_weight": True, "trials": True}
    __metadata_request__score = {"groups": True, "trials": True, "sample_weight": True}
    __metadata_request__predict_proba = {"groups": True}
    __metadata_request__decision_function = {"groups": True}

    _parameter_constraints: dict = {
        **SHARED_CONSTRAINTS,
        "engine": [StrOptions({"auto", "gibbs", "nuts", "explicit"})],
        "inference": [StrOptions({"auto"})],
    }

    def __init__(
        self,
        *,
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
        tune=500,
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

    @_fit_context(prefer_skip_nested_validation=True)
    @fit_or_restore
    @formula_fit
    def fit(self, X, y=None, *, groups=None, sample_weight=None, trials=None):
        """Sample the posterior of the hierarchical logistic model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Two distinct labels (ints, strings or bools); with ``trials``, the number
            of successes of each row.
        groups : array-like, DataFrame, POPULATION or None, default=None
            Group label(s) of each row, as in :meth:`HierarchicalRegressor.fit`.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: a row of weight ``w`` counts as ``w`` identical rows
            (0 leaves the row out).
        trials : int or array-like of shape (n_samples,), default=None
            Binomial outcomes: each row is ``y`` successes out of ``trials``
            (lme4's ``cbind(successes, failures)``, brms' ``trials()``), the same
            model as one 0/1 row per trial.  ``classes_`` is then ``[0, 1]``
            (failure, success) and the probabilities are per trial.

        Returns
        -------
        self : HierarchicalClassifier
        """
        return self._fit_inputs(self._model_inputs(X, y, groups, None, sample_weight, trials))

    def _model_inputs(self, X, y, groups, exposure=None, sample_weight=None, trials=None):
        refuse(X, y, groups, exposure, sample_weight, trials, what=f"{type(self).__name__}.fit")
        _no_exposure(exposure)
        if trials is None:
            y = self._encode_target(y)
            weights, X, y, groups = self._frequency_weights(sample_weight, X, y, groups)
        else:
            weights, y = self._binomial_target(y, trials, sample_weight)
            weights, X, y, groups = drop_unweighted(weights, X, y, groups)
        return self._glm_inputs(X, y, groups, weights=weights)

    def _binomial_target(self, y, trials, sample_weight):
        """``(weights, proportions)`` of successes ``y`` out of ``trials``: each row
        the share of its trials that succeeded, weighted by its trials (times its
        frequency weight); ``classes_`` = [0, 1]."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        y = np.asarray(column_or_1d(y.to_numpy() if hasattr(y, "to_numpy") else y), float)
        t = check_trials(trials, y, len(y))
        w = fit_weights(sample_weight, len(y))
        weights = t if w is None else t * w
        self.classes_ = np.array([0, 1])
        return (None if (weights == 1.0).all() else weights), y / t

    def _numeric_target(self, y):
        """0/1 (1: ``classes_[1]``) for the labels ``y`` of a fitted classifier."""
        y = column_or_1d(y.to_numpy() if hasattr(y, "to_numpy") else y)
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y has labels {np.unique(y[unknown])[:5].tolist()} that are not among "
                f"the classes seen in fit {self.classes_.tolist()}."
            )
        return (y == self.classes_[1]).astype(np.float64)

    def _encode_target(self, y):
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        y = column_or_1d(y.to_numpy() if hasattr(y, "to_numpy") else y, warn=True)
        if y.shape[0] == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        if y.dtype.kind in "fc":
            assert_all_finite(y, input_name="y")
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind not in ("binary", "unary"):
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {kind}"
                + (
                    f" ({len(np.unique(y))} classes): fit one model per class (one-vs-rest), "
                    "or use HierarchicalPoissonRegressor for counts."
                    if kind == "multiclass"
                    else "."
                )
            )
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"y has only one class ({classes[0]!r}); a classifier needs both outcomes "
                "among the training rows."
            )
        self.classes_ = classes
        return (y == classes[1]).astype(np.float64)

    def decision_function(self, X, *, groups=None):
        """Log-odds of :meth:`predict_proba`'s probability of ``classes_[1]``.

        This ranks rows as ``predict_proba`` does (ROC curves agree).  The posterior
        mean of the linear predictor itself, which differs from it by Jensen's gap,
        is :meth:`predict_linear`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like, POPULATION or None
            As in :meth:`HierarchicalRegressor.predict`.

        Returns
        -------
        log_odds : ndarray of shape (n_samples,)
        """
        from scipy.special import logit

        p1 = self.predict_proba(X, groups=groups)[:, 1]
        return logit(np.clip(p1, 1e-300, 1.0 - 1e-16))

    def predict_proba(self, X, *, groups=None, return_std=False):
        """Posterior mean probability of each class (averaged over the posterior draws,
        not the inverse logit of the mean log-odds).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or None
        groups : array-like, POPULATION or None
            As in :meth:`HierarchicalRegressor.predict`.
        return_std : bool, default=False
            Also return the posterior SD of the probability of ``classes_[1]`` (the
            same for ``classes_[0]``): the uncertainty of the probability itself, as
            :meth:`HierarchicalRegressor.predict`'s ``return_std`` is of the mean.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns follow ``classes_``.
        proba_std : ndarray of shape (n_samples,)
            Only when ``return_std`` is True.
        """
        p1, sd, _ = self._response_summary(X, groups)
        proba = np.column_stack([1.0 - p1, p1])
        return (proba, sd) if return_std else proba

    def predict_proba_interval(self, X, *, groups=None, prob=None):
        """Equal-tailed credible interval of the probability of ``classes_[1]``.

        Parameters
        ----------
        prob : float in (0, 1), default=None
            Mass of the interval; ``interval_prob`` when None.

        Returns
        -------
        interval : ndarray of shape (n_samples, 2)
        """
        prob = self._interval_prob(prob)
        return self._response_summary(X, groups, prob)[2]

    def predict(self, X, *, groups=None):
        """The more probable label (``predict_proba[:, 1] > 0.5``)."""
        p1 = self.predict_proba(X, groups=groups)[:, 1]
        return self.classes_[(p1 > 0.5).astype(int)]

    def sample_y(self, X, *, groups=None, n_samples=1, random_state=None):
        """Labels drawn from the posterior predictive distribution, (n_samples_X, n_samples)."""
        return self.classes_[self._outcome_draws(X, groups, n_samples, random_state)]

    def score(self, X, y=None, *, groups=None, sample_weight=None, trials=None):
        """Accuracy of :meth:`predict`.

        With ``trials`` (``y``: successes per row), the accuracy over the trials: the
        share of trials whose outcome is the row's predicted one - the accuracy of
        the same data as one 0/1 row per trial."""
        from sklearn.metrics import accuracy_score

        y = formula_target(self, X, y)
        if trials is None:
            return accuracy_score(y, self.predict(X, groups=groups), sample_weight=sample_weight)
        y = np.asarray(column_or_1d(y.to_numpy() if hasattr(y, "to_numpy") else y), float)
        t = check_trials(trials, y, len(y))
        w = np.ones(len(y)) if sample_weight is None else fit_weights(sample_weight, len(y))
        w = np.ones(len(y)) if w is None else w
        success = self.predict_proba(X, groups=groups)[:, 1] > 0.5
        return float(w @ np.where(success, y, t - y) / (w @ t))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
