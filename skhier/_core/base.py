"""What every hierarchical estimator shares: the groups contract, input validation
and the fit skeleton's data checks (the posterior attributes and reports come from
:class:`skhier._core.report.ReportMixin`).

A concrete estimator (``HierarchicalRegressor``) adds its likelihood: the target's
checks, the model specification, the engine call and the prediction methods.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import replace
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted

from skhier._core.report import ReportMixin
from skhier._core.workflow import WorkflowMixin
from skhier._dask import frames as _dask
from skhier._data import checks as _checks
from skhier._data.checks import validated
from skhier._data.groups import (
    POPULATION,
    check_group_labels,
    encode,
    split_group_column,
    unique_labels,
)
from skhier._data.weights import drop_unweighted, fit_weights
from skhier._engines.contract import SamplerConfig
from skhier._engines.registry import BY_NAME, resolve_inference, run_engine
from skhier._model.spec import ModelSpec, Scaling, resolve_random_slopes
from skhier._posterior import diagnostics as _diagnostics
from skhier._posterior import memory as _memory
from skhier._posterior.one_factor import Posterior
from skhier._util.interrupts import never_swallowed
from skhier._util.seeds import seeds
from skhier._util.warn import warn
from skhier.exceptions import FewGroupsWarning, NoGroupsWarning

_NO_GROUPS_MESSAGE = (
    "{name} was fit without `groups`: one group for all rows (complete pooling, no "
    "group effects). If you meant a multilevel model, pass the labels with "
    "`fit(X, y, groups=labels)`; in cross-validation or grid search turn on metadata "
    "routing (`sklearn.set_config(enable_metadata_routing=True)`, then "
    "`cross_val_score(est, X, y, params={{'groups': labels}})`) - without it, "
    "`groups=` reaches the CV splitter only; in a Pipeline with routing off use "
    "`pipe.fit(X, y, {step}__groups=labels)`; or keep the labels as a column of a "
    "pandas X and set `group_col=`. To fit one group on purpose, pass "
    "`groups=skhier.POPULATION`."
)


#: with parametrization="auto", more divergences than this share of the draws
#: make the engines that sample group effects refit in the other form
_SWITCH_DIVERGENCES = 0.001

#: parameter constraints every estimator shares (scikit-learn's validation)
SHARED_CONSTRAINTS: dict = {
    "correlated_effects": ["boolean"],
    "random_slopes": [StrOptions({"all"}), None, "array-like", dict],
    "parametrization": [StrOptions({"auto", "centered", "non-centered"})],
    "prior_intercept_sd": [Interval(Real, 0, None, closed="neither")],
    "prior_coef_sd": [Interval(Real, 0, None, closed="neither")],
    "prior_group_sd": [Interval(Real, 0, None, closed="neither")],
    "prior_corr_eta": [Interval(Real, 0, None, closed="neither")],
    "standardize": ["boolean"],
    "draws": [Interval(Integral, 1, None, closed="left")],
    "tune": [Interval(Integral, 0, None, closed="left")],
    "store_draws": [StrOptions({"auto", "all"}), Interval(Integral, 1, None, closed="left")],
    "chains": [Interval(Integral, 1, None, closed="left")],
    "target_accept": [Interval(Real, 0, 1, closed="neither"), None],
    "random_state": ["random_state"],
    "progressbar": ["boolean"],
    "interval_prob": [Interval(Real, 0, 1, closed="neither")],
    "unseen_groups": [StrOptions({"warn", "population", "raise"})],
    "group_col": [str, list, None],
    "nested": ["boolean", list, None],
    "formula": [str, None],
}


def fit_or_restore(fit):
    """Decorator of ``fit``: a fit that does not finish (an error, Ctrl-C) leaves
    the estimator as it was before the call -- a fitted model keeps its previous
    fit, an unfitted one stays unfitted -- never half of a new fit; and a Ctrl-C
    that a sampler swallowed is raised all the same (:mod:`skhier._util.interrupts`)."""

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = dict(self.__dict__)
        try:
            with never_swallowed():
                return fit(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return wrapper


class FitInputs(NamedTuple):
    """What ``fit`` hands an engine: validated arrays, the model and its scaling."""

    X: np.ndarray
    y: np.ndarray  # numeric (0/1 for binary outcomes)
    codes: np.ndarray  # (n,) group codes, or (n, n_factors) with several factors
    spec: ModelSpec
    scaling: Scaling
    offset: np.ndarray | None = None  # GLMs: fixed part of the linear predictor
    stats: object = None  # out of core: the collapsed engine's SufficientStats (no rows)
    weights: np.ndarray | None = None  # frequency weights per row (None: every row once)


class HierarchicalBase(ReportMixin, WorkflowMixin, BaseEstimator):
    """Shared machinery of skhier's estimators (not public)."""

    __metadata_request__fit = {"groups": True, "sample_weight": True}
    __metadata_request__predict = {"groups": True}
    __metadata_request__score = {"groups": True, "sample_weight": True}

    # ------------------------------------------------------------- fitting
    def _validate_training_data(self, X, y, groups):
        """Validate ``X``, ``y`` and the groups; set ``groups_``; warn about lost groups.

        Returns ``(X, y, codes)`` with ``X`` float64 C-ordered and ``codes`` the
        group index of each row.
        """
        _dask.refuse(X, y, groups, what=f"{type(self).__name__}.fit")
        X, labels = split_group_column(X, groups, self.group_col)
        self._begin_fit(labels)
        X, y = validated(self, X, y, y_numeric=True, dtype=np.float64, order="C")
        if self._fit_with_groups:
            labels = check_group_labels(labels, X.shape[0])
        else:
            labels = np.zeros(X.shape[0], dtype=np.int64)
        self._set_groups(unique_labels(labels))
        return X, y, encode(labels, self.groups_)

    def _begin_fit(self, labels):
        """Forget a previous fit's factors; warn when no groups were given."""
        _forget(self, _MULTI_ATTRS)
        self._factors = None
        self._fit_with_groups = labels is not None and labels is not POPULATION
        if labels is None:
            step = type(self).__name__.lower()
            warn(_NO_GROUPS_MESSAGE.format(name=type(self).__name__, step=step), NoGroupsWarning)

    def _set_groups(self, classes):
        """Set ``groups_``; warn when too few groups to learn their spread."""
        self.groups_ = classes
        n_groups = len(classes)
        if self._fit_with_groups and n_groups < 3:
            warn(
                f"Only {n_groups} group(s): the group-level SDs (sigma_a, sigma_b) "
                "cannot be learned from fewer than 3 groups and are informed mostly "
                "by their prior. Consider more groups, a tighter `prior_group_sd`, "
                "or fitting the groups as features instead.",
                FewGroupsWarning,
            )

    def _resolve_design(self, X, codes):
        """Random-slope columns and ``group_level_features_``; warn about the design.

        Features constant within every group (group-level predictors) cannot have a
        random slope: ``random_slopes="all"`` leaves them out; listing one warns.
        """
        n_features = X.shape[1]
        _checks.warn_if_constant_features(X, getattr(self, "feature_names_in_", None))
        if not self._fit_with_groups:
            return self._design_from_level(n_features, None, None)
        level = _checks.group_level_features(X, codes, len(self.groups_))
        return self._design_from_level(
            n_features, level, np.bincount(codes, minlength=len(self.groups_))
        )

    def _design_from_level(self, n_features, level, sizes):
        """:meth:`_resolve_design` given :func:`~skhier._data.checks.group_level_features`'
        ``level`` and the rows per group (both None for a model fit without groups)."""
        names = getattr(self, "feature_names_in_", None)
        if level is None:
            level = (np.zeros(n_features, dtype=bool), None)
        self.group_level_features_ = level[0]
        slope_idx = resolve_random_slopes(self.random_slopes, n_features, names, level[0])
        if sizes is not None:
            _checks.check_design(sizes, self.groups_, level, slope_idx, names)
        return slope_idx

    def _spec(self, n_features, slope_idx, engine, parametrization):
        return ModelSpec(
            n_features=n_features,
            slope_idx=slope_idx,
            prior_intercept_sd=float(self.prior_intercept_sd),
            prior_coef_sd=float(self.prior_coef_sd),
            prior_group_sd=float(self.prior_group_sd),
            prior_noise_sd=float(getattr(self, "prior_noise_sd", 1.0)),
            engine=engine,
            parametrization=parametrization,
            correlated=bool(self.correlated_effects) and len(slope_idx) > 0,
            prior_corr_eta=float(self.prior_corr_eta),
            likelihood=self.likelihood,
        )

    def _scaling(self, X, y, exposure=None, weights=None):
        """The affine maps to the standardized scale (:class:`~skhier._model.spec.Scaling`)."""
        return Scaling.fit(X, y, self.standardize, weights)

    @staticmethod
    def _frequency_weights(sample_weight, X, y, *more):
        """``(weights, X, y, *more)``: the validated frequency weights (None when
        every row counts once) and the rows of weight 0 dropped from the rest."""
        if sample_weight is None:
            return (None, X, y, *more)
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        weights = fit_weights(sample_weight, _num_samples(y))
        return drop_unweighted(weights, X, y, *more)

    def _fit_inputs(self, inputs: FitInputs):
        """Sample the posterior of the model in ``inputs`` (from ``_model_inputs``)."""
        _forget(self, ("dispersion_", "dispersion_interval_", *_WORKFLOW_ATTRS))
        _memory.check_fit(self, inputs.spec, 0 if inputs.spec.factors else len(self.groups_))
        if inputs.spec.factors:
            from skhier._core import multi as _multi

            _multi.sample(self, inputs)
        else:
            self._sample_one_factor(inputs)
        if getattr(self.posterior_, "dispersion", None) is not None:
            self.dispersion_ = float(self.posterior_.mean("dispersion"))
            self.dispersion_interval_ = self.posterior_.interval("dispersion", self.interval_prob)
        return self

    def _sample_one_factor(self, inputs: FitInputs):
        """Sample; with ``parametrization="auto"`` on an engine that samples the group
        effects, refit in another form when the first has divergent transitions or
        has not converged (e.g. the centred form with a random slope whose SD is
        small next to what the data say about it: a funnel the automatic rule cannot
        foresee) and keep the better fit (:func:`_form_rank`)."""
        spec = inputs.spec
        switchable = BY_NAME[spec.engine].parametrized and self._fit_with_groups
        if self.parametrization != "auto" or not switchable:  # (one group: no funnel to fix)
            return self._sample_posterior(inputs)
        self._sample_posterior(inputs, warn_convergence=False)
        first = self.convergence_
        n_draws = self.posterior_.n_draws
        if _form_rank(first, n_draws)[:2] != (False, False):
            other = _other_form(spec, BY_NAME[spec.engine])
            kept = dict(self.__dict__)
            self._sample_posterior(
                inputs._replace(spec=replace(spec, parametrization=other)),
                warn_convergence=False,
            )
            second = self.convergence_
            if _form_rank(second, n_draws) < _form_rank(first, n_draws):
                self.parametrization_ = other
            else:
                self.__dict__.update(kept)
            self.convergence_["parametrization_switch"] = (
                f"the {spec.parametrization} form: {_form_note(first)}; the {other} form: "
                f"{_form_note(second)}: kept the {self.parametrization_} fit"
            )
        _diagnostics.warn_if_not_converged(self.convergence_, self.engine_, self._has_noise())

    def _sample_posterior(self, inputs: FitInputs, warn_convergence=True):
        """Run the engine of ``inputs.spec`` (``engine_`` set), keep the posterior, its
        summaries and diagnostics, and warn when the sampler may not have converged."""
        spec = inputs.spec
        n_groups = len(self.groups_)
        seed, rng_seed, self._predict_seed = seeds(self.random_state, 3)
        inference = resolve_inference(self.inference, self.engine_, n_groups)
        config = SamplerConfig(
            draws=self.draws,
            tune=self.tune,
            chains=self.chains,
            seed=seed,
            target_accept=self.target_accept or BY_NAME[self.engine_].target_accept,
            progressbar=self.progressbar,
            inference=inference,
        )
        rng = np.random.default_rng(rng_seed)
        draws = run_engine(inputs, n_groups, config, rng)
        self._inference = draws.get("inference", {"method": inference})
        self.posterior_ = Posterior.from_standardized(
            draws, spec, inputs.scaling, self.interval_prob, self.store_draws
        )
        self._set_summaries(spec)
        if warn_convergence:
            _diagnostics.warn_if_not_converged(self.convergence_, self.engine_, self._has_noise())

    # ------------------------------------------------------------ predicting
    def _interval_prob(self, prob):
        """``prob`` (``interval_prob`` when None), checked to lie in (0, 1)."""
        prob = self.interval_prob if prob is None else prob
        if not (isinstance(prob, Real) and 0.0 < prob < 1.0):
            raise ValueError(f"`prob` must be a float in (0, 1); got {prob!r}.")
        return prob

    @staticmethod
    def _check_n_samples(n_samples):
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"`n_samples` must be a positive integer; got {n_samples!r}.")

    def _has_noise(self) -> bool:
        """The model has a noise SD (``eps``): Gaussian or Student-t noise."""
        from skhier._model.likelihoods import GLM_FAMILIES

        return self.likelihood not in GLM_FAMILIES

    def _several_inputs(self, X, y, groups, exposure=None, weights=None) -> FitInputs:
        """Validate a model with several grouping factors."""
        from skhier._core import multi as _multi

        _forget(self, _SINGLE_ATTRS)
        return FitInputs(*_multi.prepare_several(self, X, y, groups, exposure, weights))

    def _prepare(self, X, groups):
        """Validate X and resolve group codes for a prediction method."""
        check_is_fitted(self)
        encoding = getattr(self, "formula_encoding_", None)
        if encoding is not None:
            from skhier._core.formula import encode_predict

            X, groups = encode_predict(encoding, X, groups)
        _dask.refuse(X, groups, what=f"{type(self).__name__}'s prediction methods")
        X, labels = split_group_column(X, groups, self.group_col)
        X = validated(self, X, reset=False, dtype=np.float64, n_rows=_rows_of(X, labels))
        codes, new_codes = self.posterior_.prediction_codes(self, labels, X.shape[0])
        return X, codes, new_codes

    #: values of parameters added since an estimator was saved that reproduce what
    #: it did (0.1.0: independent effects; before `store_draws`: every draw kept)
    _LEGACY_PARAMS = {"correlated_effects": False, "store_draws": "all"}

    def __setstate__(self, state):
        # Parameters added since the estimator was saved: what it did then, else the
        # default - so get_params, repr and clone work on old models.
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name != "self" and name not in state:
                state[name] = self._LEGACY_PARAMS.get(name, param.default)
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


#: fitted attributes of one factor's models only, and of several factors' only
_SINGLE_ATTRS = (
    "groups_", "group_intercept_", "group_coef_", "group_intercept_interval_",
    "group_coef_interval_", "group_intercept_sd_", "group_coef_sd_", "group_corr_",
    "group_corr_interval_", "random_slope_mask_", "parametrization_",
)  # fmt: skip
_MULTI_ATTRS = ("factors_", "group_effects_", "nesting_")
#: what the Bayesian-workflow methods add to a fitted model (forgotten by a new fit)
_WORKFLOW_ATTRS = ("_prior_idata", "_data_idata")


def _other_form(spec, engine) -> str:
    """The form to refit in when the automatic one failed: from the centred form,
    non-centred slopes where the engine has that form (``"partial"``: the intercepts'
    rows inform them, the slopes' often less), else the non-centred form; from a
    non-centred or partial form, the centred one."""
    if spec.parametrization != "centered":
        return "centered"
    if spec.n_random > 1 and "partial" in engine.forms:
        return "partial"
    return "non-centered"


def _form_rank(conv, n_draws) -> tuple:
    """A fit's rank among the forms tried (lower is better): divergences above
    :data:`_SWITCH_DIVERGENCES` of the draws first, then convergence (r_hat and bulk
    ESS as :func:`~skhier._posterior.diagnostics.warn_if_not_converged` judges
    them), then fewer divergences, then more ESS."""
    n_div = conv.get("n_divergences", 0)
    r_hat, ess = conv.get("max_r_hat", 1.0), conv.get("min_ess_bulk", np.inf)
    ess_min = _diagnostics.ESS_PER_CHAIN_MIN * conv.get("n_chains", 0)
    converged = bool(r_hat <= _diagnostics.R_HAT_MAX and ess >= ess_min)
    return (n_div > _SWITCH_DIVERGENCES * n_draws, not converged, n_div, -ess)


def _form_note(conv) -> str:
    note = f"{conv.get('n_divergences', 0)} divergent transitions"
    if "max_r_hat" in conv:
        note += f", max r_hat {conv['max_r_hat']:.3f}, min bulk ESS {conv['min_ess_bulk']:.0f}"
    return note


def _forget(est, names):
    """Drop fitted attributes a previous fit of another kind left behind."""
    for name in names:
        est.__dict__.pop(name, None)


def _rows_of(X, labels):
    """How many rows a prediction call with ``X=None`` (no features) has: one per
    group label."""
    if X is not None or labels is None or labels is POPULATION:
        return None
    return len(labels)
