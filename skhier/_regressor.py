"""HierarchicalRegressor: Gaussian hierarchical linear regression (the likelihood,
the model specification, the engine call and the prediction methods)."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from skhier._core.base import (
    SHARED_CONSTRAINTS,
    FitInputs,
    HierarchicalBase,
    fit_or_restore,
)
from skhier._core.formula_fit import formula_fit, formula_target
from skhier._core.workflow import no_exposure as _no_exposure
from skhier._dask import frames as _dask
from skhier._dask import predict as _dask_predict
from skhier._data import checks as _checks
from skhier._data.factors import n_factors
from skhier._data.weights import weights_kind
from skhier._engines.registry import select_engine
from skhier._model.spec import Scaling, choose_parametrization
from skhier._posterior import memory as _memory
from skhier._util.seeds import generator


class HierarchicalRegressor(RegressorMixin, HierarchicalBase):
    """Bayesian hierarchical (multilevel) linear regression with partial pooling.

    Each group ``g`` has its own intercept ``a[g]`` and slopes ``b[g]``, drawn
    from a population distribution whose means (``mu_a``, ``mu_b``), spreads
    (``sigma_a``, ``sigma_b``) and correlations are learned from the data::

        (a[g], b[g]) ~ MultivariateNormal((mu_a, mu_b), Sigma)
        Sigma = diag(sigma_a, sigma_b) @ R @ diag(sigma_a, sigma_b),  R ~ LKJ(prior_corr_eta)
        y[i]         ~ Normal(a[g[i]] + X[i] @ b[g[i]], eps)

    (the default, lme4's ``(x | g)``); with ``correlated_effects=False`` the
    effects are independent, ``a[g] ~ Normal(mu_a, sigma_a)`` and ``b[g, k] ~
    Normal(mu_b[k], sigma_b[k])`` (lme4's ``(x || g)``).

    The smaller ``sigma_a`` is, the more alike the groups are and the more each
    group's estimate shrinks toward ``mu_a`` - strongly for small groups, hardly
    for large ones.  Priors apply on an internally standardized scale; every
    reported quantity is in the units of ``X`` and ``y``.

    Parameters
    ----------
    likelihood : {"normal", "student_t"}, default="normal"
        Distribution of the noise around ``a[g] + X @ b[g]``.  ``"student_t"``:
        robust regression, ``y ~ Student-t(nu, mean, eps)`` with the degrees of
        freedom ``nu`` learned (prior ``Gamma(2, rate=0.1)`` restricted to
        ``nu > 1``, brms' default: mean about 21, so heavy tails must show in
        the data); a few gross outliers then barely move the estimates.
        ``eps`` is the t scale (the SD is ``eps * sqrt(nu / (nu - 2))``).
    correlated_effects : bool, default=True
        Group intercepts and slopes are drawn from a multivariate normal with a
        full covariance (lme4's ``(x | g)``): their correlations are learned, with
        an LKJ(``prior_corr_eta``) prior.  False: independent effects (``(x || g)``,
        the textbook model).  With a full covariance, centring or scaling the
        features (e.g. ``StandardScaler``) describes the same model.
    random_slopes : "all", None or list of str or int, default="all"
        Features whose slopes vary by group: all of them that vary within groups,
        none (a varying intercept model), or a subset given by feature names or
        column indices.  ``"all"`` leaves out group-level predictors (features
        constant within every group, listed in ``group_level_features_``): their
        slope cannot vary by group, since it is not identified.  With several grouping
        factors, a dict factor -> one of these (a factor left out: intercept only)
        or one value for every factor.
    engine : {"auto", "collapsed", "augmented", "explicit", "gibbs"}, default="auto"
        ``"collapsed"`` (Gaussian noise): the group effects and coefficients are
        integrated out, NUTS samples the SDs only, the rest is drawn exactly.
        ``"augmented"`` (Student-t noise): the t as a scale mixture of normals, a
        Gibbs sampler around the collapsed density.  ``"explicit"``: the textbook
        PyMC model.  ``"gibbs"`` (Gaussian noise): a blocked Gibbs sampler, the
        engine of several grouping factors.  ``"auto"``: the fast engine of the
        likelihood (``"gibbs"`` for several factors).  See the user guide.
    inference : {"auto", "nuts", "importance", "laplace"}, default="auto"
        How the sampled parameters are drawn (user guide, section 5).  ``"nuts"``:
        MCMC.  ``"importance"`` (collapsed engine): Pareto-smoothed importance
        sampling around the posterior mode, checked by ``k_hat`` in
        ``convergence_`` (NUTS when ``k_hat > 0.7``).  ``"laplace"`` (collapsed
        engine): the uncorrected Gaussian approximation, for model-selection loops;
        it understates uncertainty about the SDs with few groups.  ``"auto"``:
        importance sampling for the collapsed engine from 1,000 groups and for
        nested factors (the Gibbs engine, which otherwise samples by Gibbs
        sweeps; ``k_hat > 0.7``: the sweeps), else NUTS.
    parametrization : {"auto", "centered", "non-centered"}, default="auto"
        Form of the explicit model (ignored by the collapsed engine).
        ``"auto"``: centered when the median group is informative about its own
        effect (``n_g * between-group variance / within-group variance >= 1``,
        estimated by a one-way ANOVA), non-centered otherwise; when that form
        shows divergent transitions, the model is refit in the other form and the
        fit with fewer of them is kept (``convergence_["parametrization_switch"]``).
    prior_intercept_sd : float, default=10.0
        SD of the Normal(0, .) prior on the intercept (standardized scale, at
        the feature means).
    prior_coef_sd : float, default=1.5
        SD of the Normal(0, .) prior on each slope ``mu_b`` (standardized scale).
    prior_group_sd : float, default=1.0
        Mean of the Exponential prior on each group SD (standardized scale).
    prior_noise_sd : float, default=1.0
        Mean of the Exponential prior on the noise SD ``eps`` (standardized scale).
    prior_corr_eta : float, default=2.0
        Shape of the LKJ prior on the group effects' correlations: 1 is uniform,
        larger values favour small correlations.
    standardize : bool, default=True
        Standardize ``X`` and ``y`` internally so the priors above are
        meaningful whatever the units.  With False the priors apply to the raw data.
    draws : int, default=1000
        Posterior draws per chain.
    tune : int, default=1000
        Warm-up (adaptation) iterations per chain; burn-in sweeps for the Gibbs
        engine.
    chains : int, default=4
        Number of independent chains.
    store_draws : "auto", "all" or int, default="auto"
        How many joint draws of the group effects the fitted model keeps, spread
        evenly over the chains (for :meth:`sample_y`, :meth:`predict_interval`,
        ``idata_``); ``predict``, ``return_std`` and the group intervals use every
        draw regardless.  ``"auto"``: all while they take at most 128 MB, else as
        many as fit (at least 64).  An int keeps about that many (rounded up to a
        multiple of ``chains``): ``chains * ceil(store_draws / chains) x groups x
        (features + 1) x 8`` bytes.
    target_accept : float or None, default=None
        Target acceptance rate of NUTS (of HMC in the augmented engine); raise it
        when divergences are reported.  None: 0.8 for the collapsed engine, 0.9
        for the augmented and explicit engines.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampler, the exact conditional draws and predictive draws.
        The same integer gives the same posterior.
    progressbar : bool, default=False
        Show the sampler's progress bar.
    interval_prob : float, default=0.95
        Probability mass of the credible intervals stored after fitting and the
        default of :meth:`predict_interval`.
    unseen_groups : {"warn", "population", "raise"}, default="warn"
        What to do with group labels not seen in training.  ``"population"``:
        predict for a new group drawn from the population (mean ``mu``,
        uncertainty including ``sigma_a`` and ``sigma_b``), silently - say so when
        new groups are expected (e.g. ``GroupKFold``).  ``"warn"``: the same, with
        an :class:`~skhier.exceptions.UnseenGroupWarning` naming how many labels were
        unseen (a typo or ids-for-names mistake shows up here).  ``"raise"``: raise
        :class:`~skhier.exceptions.UnseenGroupError`.  Labels of another type than
        in training that match after conversion (``"1"`` for ``1``) always raise.
    group_col : str or None, default=None
        Name of a column of a pandas ``X`` holding the group labels.  The
        column is removed from the features.  This path works everywhere in
        scikit-learn (any scorer, ``cross_val_predict``, routing on or off).  A list of
        names: several grouping factors.
    nested : None, bool or list of (str, str), default=None
        How several grouping factors relate.  ``[("school", "class")]``: class
        labels are numbered within schools, so class 1 of two schools are different
        groups (levels are the pairs); ``True``: each column nested in the previous
        one; ``False``: crossed.  ``None`` (not declared) reads the nesting from the
        data, as lme4 does: a factor each of whose levels occurs within one level of
        another is nested in it (``nesting_`` says which); labels that repeat across
        another factor's levels as nested labels do are taken as crossed and warn
        (:class:`~skhier.exceptions.NestingWarning`).
    formula : str or None, default=None
        The model as an lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``:
        ``fit(data)`` then takes a DataFrame (and ``y`` only for a one-sided
        ``"~ ..."``), and the prediction methods take DataFrames encoded the same
        way.  The formula sets ``random_slopes``, ``correlated_effects`` and
        ``nested`` (leave them at their defaults) and names the groups (pass no
        ``groups``).  See the user guide's "Coming from lme4 / brms / bambi".

    Attributes
    ----------
    intercept_ : float
        Posterior mean of ``mu_a``, the population intercept (at X = 0).
    coef_ : ndarray of shape (n_features,)
        Posterior mean of ``mu_b``, the population slopes.
    intercept_interval_ : ndarray of shape (2,)
        Credible interval of ``mu_a`` (``interval_prob``).
    coef_interval_ : ndarray of shape (n_features, 2)
    groups_ : ndarray of shape (n_groups,)
        Group labels seen in training (sorted); rows of the group arrays follow
        it.  A model fit without ``groups`` has one group labelled 0.
    group_intercept_ : ndarray of shape (n_groups,)
        Posterior means of ``a[g]``.
    group_coef_ : ndarray of shape (n_groups, n_features)
        Posterior means of ``b[g]``.
    group_intercept_interval_ : ndarray of shape (n_groups, 2)
    group_coef_interval_ : ndarray of shape (n_groups, n_features, 2)
    group_intercept_sd_ : float
        Posterior mean of ``sigma_a``: how much group intercepts differ.
    group_coef_sd_ : ndarray of shape (n_features,)
        Posterior mean of ``sigma_b`` (0 for features without random slopes).
    noise_sd_ : float
        Posterior mean of ``eps`` (the scale, for Student-t noise).
    noise_df_ : float
        Posterior mean of ``nu`` for ``likelihood="student_t"``; ``inf`` for
        Gaussian noise (the limit of the t).
    noise_df_interval_ : ndarray of shape (2,)
        Credible interval of ``nu`` (``[inf, inf]`` for Gaussian noise).
    random_slope_mask_ : ndarray of shape (n_features,)
        Which features have a random slope.
    group_level_features_ : ndarray of shape (n_features,)
        Which features are constant within every group (group-level predictors,
        such as a county's uranium level); they have a fixed slope only, and an
        unseen group's prediction uses its own value of them from ``X``.
    convergence_ : dict
        ``method`` (how the sampled parameters were drawn: "nuts", "importance"
        or "laplace"; with ``fallback`` saying why when importance sampling gave
        way to NUTS), ``max_r_hat``, ``min_ess_bulk``, ``n_divergences``,
        ``n_max_treedepth``, ``n_chains``, ``n_draws``.  r_hat and ESS are those of
        the population-level parameters (and of the group effects of the engines
        that sample them); importance sampling has no chains: its ``max_r_hat``
        is NaN, ``min_ess_bulk`` is the effective sample size of its weights, and
        ``pareto_k`` its reliability (<= 0.7).
    engine_ : str
        Engine used ("collapsed", "augmented", "explicit", "gibbs", or "pooled" for a
        model fit without groups).
    parametrization_ : str
        Form of the explicit model that was (or would have been) used.
    posterior_ : Posterior
        The posterior as numpy arrays (``(chain, draw, ...)``): every draw of the
        population-level parameters; the group effects' means, covariances and
        intervals (from every draw) and their kept draws (``store_draws``).
    idata_ : arviz.InferenceData
        The kept joint draws as ArviZ ``InferenceData`` (built on access).
    factors_ : tuple of str
        Several grouping factors only: their names (then ``groups_`` and the
        ``group_*`` attributes above are absent).
    singular_ : list of str
        The group-level SDs (``summary()`` row names) whose posterior piles up at 0,
        as lme4's ``isSingular``: the data show no spread of that effect across the
        groups (its 2.5% quantile is below 2% of its 97.5% quantile).  Consider
        dropping the effect (``random_slopes``); empty for a model fit without groups.
        ``summary().attrs["singular"]`` holds the same list.
    nesting_ : list of (str, str)
        Several grouping factors only: the ``(outer, inner)`` pairs fitted as nested,
        declared or read from the data.
    group_effects_ : dict of str -> FactorEffects
        Several grouping factors only: per factor, the levels, the posterior means
        and intervals of their effects (deviations from the population), the
        factor's SDs and correlations.
    n_features_in_ : int
        Number of features (the ``group_col`` column excluded).
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Feature names, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.BayesianRidge : Bayesian linear regression without groups.

    Examples
    --------
    >>> import numpy as np
    >>> from skhier import HierarchicalRegressor
    >>> rng = np.random.default_rng(0)
    >>> groups = np.repeat(np.arange(8), 20)
    >>> X = rng.normal(size=(160, 1))
    >>> y = 1.0 + rng.normal(size=8)[groups] + 2.0 * X[:, 0] + rng.normal(0, 0.5, 160)
    >>> est = HierarchicalRegressor(random_state=0)
    >>> est = est.fit(X, y, groups=groups)
    >>> est.coef_.round(0)
    array([2.])
    >>> est.predict(X[:2], groups=groups[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **SHARED_CONSTRAINTS,
        "likelihood": [StrOptions({"normal", "student_t"})],
        "engine": [StrOptions({"auto", "collapsed", "augmented", "explicit", "gibbs"})],
        "inference": [StrOptions({"auto", "nuts", "importance", "laplace"})],
        "prior_noise_sd": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        likelihood="normal",
        correlated_effects=True,
        random_slopes="all",
        engine="auto",
        inference="auto",
        parametrization="auto",
        prior_intercept_sd=10.0,
        prior_coef_sd=1.5,
        prior_group_sd=1.0,
        prior_noise_sd=1.0,
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
        self.likelihood = likelihood
        self.correlated_effects = correlated_effects
        self.random_slopes = random_slopes
        self.engine = engine
        self.inference = inference
        self.parametrization = parametrization
        self.prior_intercept_sd = prior_intercept_sd
        self.prior_coef_sd = prior_coef_sd
        self.prior_group_sd = prior_group_sd
        self.prior_noise_sd = prior_noise_sd
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

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    @fit_or_restore
    @formula_fit
    def fit(self, X, y=None, *, groups=None, sample_weight=None):
        """Sample the posterior of the hierarchical model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Features (plus the ``group_col`` column, when that is set).  A Dask
            DataFrame or Array (``y`` and ``groups`` from the same rows) is fitted
            out of core, and the prediction methods return lazy results for one.
        y : array-like of shape (n_samples,)
            Numeric target.
        groups : array-like of shape (n_samples,), POPULATION or None, default=None
            Group label of each row (ints, strings or categoricals).
            :data:`skhier.POPULATION` fits one group on purpose (complete
            pooling); None does the same but warns (:class:`~skhier.exceptions.NoGroupsWarning`),
            since it is usually a mistake - unless ``group_col`` is set.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: a row of weight ``w`` counts as ``w`` identical rows
            (0 leaves it out); not lme4's precision weights (user guide, section 1).

        Returns
        -------
        self : HierarchicalRegressor
            The fitted estimator.
        """
        return self._fit_inputs(self._model_inputs(X, y, groups, sample_weight=sample_weight))

    def _model_inputs(self, X, y, groups, exposure=None, sample_weight=None):
        """Validate the training data; the engine's inputs (sets ``groups_`` etc.)."""
        _no_exposure(exposure)
        if any(_dask.is_dask(v) for v in (X, y, groups, sample_weight)):  # out of core
            from skhier._dask.outofcore import model_inputs

            _dask.refuse_weights(sample_weight)
            return FitInputs(None, None, None, *model_inputs(self, X, y, groups))
        weights, X, y, groups = self._frequency_weights(sample_weight, X, y, groups)
        if n_factors(groups, self.group_col) > 1:
            return self._several_inputs(X, y, groups, weights=weights)
        y_is_bool = _checks.check_numeric_target(y)
        X, y, codes = self._validate_training_data(X, y, groups)
        _checks.warn_if_binary_target(y, y_is_bool)
        n_groups = len(self.groups_)
        slope_idx = self._resolve_design(X, codes)
        scaling = Scaling.fit(X, y, self.standardize, weights)
        y_std = (y - scaling.y_mean) / scaling.y_scale
        self.parametrization_ = (
            choose_parametrization(y_std, codes, n_groups)
            if self.parametrization == "auto"
            else self.parametrization
        )
        self.engine_ = select_engine(
            self.engine, self.inference, self.likelihood, int(self._fit_with_groups),
            weights=weights_kind(weights),
        )  # fmt: skip
        spec = self._spec(X.shape[1], slope_idx, self.engine_, self.parametrization_)
        return FitInputs(X, y, codes, spec, scaling, weights=weights)

    # ------------------------------------------------------------ predict
    def predict(self, X, *, groups=None, return_std=False):
        """Posterior mean of ``E[y | x, group]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), POPULATION or None
            Group of each row.  Unseen labels follow ``unseen_groups``;
            :data:`skhier.POPULATION` predicts for one new group.  None is only
            allowed for a model fit with a single group.
        return_std : bool, default=False
            Also return the posterior SD of ``E[y | x, group]``: the uncertainty
            of the mean, like ``GaussianProcessRegressor``'s, not of a new
            observation (``BayesianRidge``'s adds the noise); observation noise is
            in :meth:`predict_interval` and :meth:`sample_y`.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,)
            Only when ``return_std`` is True.
        """
        if _dask.is_dask(X):
            return _dask_predict.lazy(self, "predict", X, groups, return_std=return_std)
        X, codes, new_codes = self._prepare(X, groups)
        mean, var = self.posterior_.mean_and_var(X, codes, new_codes, return_std)
        return (mean, np.sqrt(var)) if return_std else mean

    def predict_interval(self, X, *, groups=None, prob=None):
        """Equal-tailed posterior predictive interval (observation noise included).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), POPULATION or None
            As in :meth:`predict`.
        prob : float in (0, 1), default=None
            Probability mass of the interval; ``interval_prob`` when None.

        Returns
        -------
        interval : ndarray of shape (n_samples, 2)
            Lower and upper bounds.
        """
        prob = self._interval_prob(prob)
        if _dask.is_dask(X):
            return _dask_predict.lazy(self, "predict_interval", X, groups, prob=prob)
        X, codes, new_codes = self._prepare(X, groups)
        rng = np.random.default_rng(self._predict_seed)
        return self.posterior_.predictive_interval(X, codes, new_codes, prob, rng)

    def sample_y(self, X, *, groups=None, n_samples=1, random_state=None):
        """Draws from the posterior predictive distribution.

        Rows of the same unseen group share one drawn group effect per sample.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        groups : array-like of shape (n_samples_X,), POPULATION or None
            As in :meth:`predict`.
        n_samples : int, default=1
            Number of draws per row.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples)
        """
        self._check_n_samples(n_samples)
        if _dask.is_dask(X):
            draws = _dask_predict.sample_kwargs(self, n_samples, random_state)
            return _dask_predict.lazy(self, "sample_y", X, groups, **draws)
        X, codes, new_codes = self._prepare(X, groups)
        _memory.check_samples(X.shape[0], n_samples, X.shape[1])
        rng = generator(random_state)
        total = self.posterior_.n_joint
        draw_idx = rng.choice(total, size=n_samples, replace=n_samples > total)
        return self.posterior_.predictive_draws(X, codes, new_codes, draw_idx, rng)

    def score(self, X, y=None, *, groups=None, sample_weight=None):
        """R^2 of :meth:`predict` on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), POPULATION or None
            As in :meth:`predict`.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        from sklearn.metrics import r2_score  # lazy: keeps `import skhier` (and unpickling) light

        y = formula_target(self, X, y)

        if _dask.is_dask(X):
            return _dask_predict.r2_score(self, X, y, groups, sample_weight)

        return r2_score(y, self.predict(X, groups=groups), sample_weight=sample_weight)
