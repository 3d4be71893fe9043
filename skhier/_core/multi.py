"""Fitting and reporting models with several grouping factors (nested or crossed).

Called by :class:`~skhier._core.base.HierarchicalBase` when ``groups`` has several
columns (or ``group_col`` lists several): the factors' validation, the random
slopes per factor, the model specification, the Gibbs engine, and the fitted
attributes per factor (``factors_``, ``group_effects_``).
"""

from __future__ import annotations

import numpy as np

from skhier._data import checks as _checks
from skhier._data.checks import validated
from skhier._data.factors import fit_factors, label_frame, n_factors
from skhier._data.groups import split_group_column
from skhier._engines.registry import select_engine
from skhier._model.spec import FactorTerm, resolve_random_slopes
from skhier._posterior import diagnostics as _diagnostics
from skhier._posterior.factors import FactorEffects, FactorsPosterior
from skhier._posterior.factors_report import _interval, convergence
from skhier._util.seeds import seeds


def validate(est, X, y, groups):
    """``(X, y, layout, codes)`` for several factors; sets ``factors_``."""
    X, groups = split_group_column(X, groups, est.group_col)
    X, y = validated(est, X, y, y_numeric=True, dtype=np.float64, order="C")
    frame = label_frame(groups, len(X))
    layout, codes = fit_factors(frame, est.nested)
    est._fit_with_groups = True
    est._factors = layout
    est.factors_ = layout.names
    est.nesting_ = [
        (layout.names[p], name)
        for name, p in zip(layout.names, layout.parents, strict=True)
        if p >= 0
    ]
    return X, y, layout, codes


def factor_terms(est, X, layout, codes):
    """One :class:`FactorTerm` per factor: random slopes per factor (``random_slopes``
    as a dict factor -> slopes, or one value for every factor), leaving out
    features constant within that factor's levels."""
    names = getattr(est, "feature_names_in_", None)
    _checks.warn_if_constant_features(X, names)
    spec = est.random_slopes
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in layout.names]
        if unknown:
            raise ValueError(
                f"`random_slopes` names factor(s) {unknown}, which are not among "
                f"{list(layout.names)}."
            )
    terms, level_masks = [], []
    for f, name in enumerate(layout.names):
        n_lev = len(layout.levels[f])
        mask, means = _checks.group_level_features(X, codes[:, f], n_lev)
        level_masks.append(mask)
        given = spec.get(name) if isinstance(spec, dict) else spec
        slopes = resolve_random_slopes(given, X.shape[1], names, mask)
        sizes = np.bincount(codes[:, f], minlength=n_lev)
        _checks.check_design(sizes, layout.levels[f], (mask, means), slopes, names)
        terms.append(
            FactorTerm(
                name=name,
                slope_idx=slopes,
                n_levels=n_lev,
                parent=layout.parents[f],
                correlated=bool(est.correlated_effects) and len(slopes) > 0,
            )
        )
    est.group_level_features_ = np.logical_or.reduce(level_masks)
    return tuple(terms)


def sample(est, inputs):
    """Run the engine for several factors on ``inputs`` (``FitInputs``); set
    ``posterior_``, the per-factor attributes and the
    diagnostics; warn when the chains may not have converged."""
    from skhier._engines.contract import SamplerConfig
    from skhier._engines.registry import BY_NAME, quiet_samplers
    from skhier._util.interrupts import check as check_interrupted

    rng_seed, est._predict_seed = seeds(est.random_state, 2)
    engine = BY_NAME[est.engine_]
    spec = inputs.spec
    one_tree = sum(t.parent < 0 for t in spec.factors) == 1
    importance = (
        est.inference == "importance"
        or (est.inference == "auto" and one_tree and spec.likelihood == "normal")
    ) and "importance" in engine.inferences
    config = SamplerConfig(
        draws=est.draws, tune=est.tune, chains=est.chains, seed=rng_seed,
        target_accept=est.target_accept or engine.target_accept, progressbar=est.progressbar,
        inference="importance" if importance else "nuts",
    )  # fmt: skip
    rng = np.random.default_rng(rng_seed)
    with quiet_samplers():
        extra = {"offset": inputs.offset} if inputs.offset is not None else {}
        if inputs.weights is not None:
            extra["weights"] = inputs.weights
        X = inputs.X
        draws = engine.function(several=True)(
            X, inputs.y, inputs.codes, spec, inputs.scaling, config=config, rng=rng,
            store_draws=est.store_draws, **extra,
        )  # fmt: skip
    check_interrupted()
    est._inference = draws["inference"]
    est.posterior_ = post = FactorsPosterior.from_standardized(draws, spec, inputs.scaling)
    prob = est.interval_prob
    est.intercept_ = float(post.intercept.mean())
    est.coef_ = post.coef.mean(axis=(0, 1))
    est.intercept_interval_ = post.interval(post.intercept.ravel(), prob)
    coef = post.coef
    est.coef_interval_ = post.interval(coef.reshape(coef.shape[0] * coef.shape[1], -1), prob)
    if post.noise_sd is not None:
        est.noise_sd_ = float(post.noise_sd.mean())
        est.noise_df_, est.noise_df_interval_ = np.inf, np.array([np.inf, np.inf])
        if post.noise_df is not None:  # Student-t noise
            est.noise_df_ = float(post.mean("noise_df"))
            est.noise_df_interval_ = post.interval("noise_df", prob)
    est.group_effects_ = {
        fac.name: _effects(fac, est._factors.levels[f], X.shape[1], prob)
        for f, fac in enumerate(post.factors)
    }
    importance = est._inference["method"] == "importance"
    # (importance draws: the effects are exact draws given the variance parameters,
    # diagnosed on request only, as the one-factor collapsed engine's)
    est.diagnostics_ = post.diagnose(groups=False if importance else "auto")
    est.convergence_ = convergence(est.diagnostics_, post, est._inference["method"])
    if importance:  # resampled independent draws: the weights' ESS, no r_hat
        est.diagnostics_ = _diagnostics.importance_diagnostics(
            est.diagnostics_, est._inference["ess"]
        )
        est.convergence_.update(max_r_hat=float("nan"), min_ess_bulk=est._inference["ess"])
    est.convergence_.update(
        {k: v for k, v in est._inference.items() if k not in ("method", "ess")}
    )
    est.singular_ = est._singular_effects()
    _diagnostics.warn_if_not_converged(est.convergence_, est.engine_, est._has_noise())


def _effects(fac, levels, n_features, prob) -> FactorEffects:
    """A factor's attributes, padded to every feature (0 / NaN where no slope)."""
    k1 = n_features + 1
    cols = np.r_[0, fac.slope_idx + 1]
    mean = np.zeros((len(levels), k1))
    mean[:, cols] = fac.mean
    draws = fac.draws.reshape((-1,) + fac.draws.shape[2:])
    bounds = np.zeros((len(levels), k1, 2))
    bounds[:, cols] = _interval(draws, prob)
    sd = np.zeros(k1)
    sd[cols] = fac.sd.mean(axis=(0, 1))
    corr = np.full((k1, k1), np.nan)
    if fac.corr is None:
        corr[np.ix_(cols, cols)] = np.eye(len(cols))
    else:
        corr[np.ix_(cols, cols)] = fac.corr.mean(axis=(0, 1))
    mask = np.zeros(n_features, dtype=bool)
    mask[fac.slope_idx] = True
    return FactorEffects(
        name=fac.name,
        levels=levels,
        intercept=mean[:, 0],
        intercept_interval=bounds[:, 0],
        coef=mean[:, 1:],
        coef_interval=bounds[:, 1:],
        intercept_sd=float(sd[0]),
        coef_sd=sd[1:],
        corr=corr,
        random_slope_mask=mask,
    )


def prepare_several(est, X, y, groups, exposure=None, weights=None):
    """Validate a model with several grouping factors: Gaussian or Student-t noise,
    binary outcomes (``y`` already 0/1 or proportions) or counts.  Returns the
    engine's inputs ``(X, y, codes, spec, scaling, offset, stats, weights)``, the
    fields of :class:`~skhier._core.base.FitInputs` (``weights``: the rows' frequency
    weights, rows of weight 0 already dropped)."""
    from dataclasses import replace

    from skhier._data.weights import weights_kind

    n = n_factors(groups, est.group_col)
    est.engine_ = select_engine(
        est.engine, est.inference, est.likelihood, n, estimator=type(est).__name__,
        weights=weights_kind(weights),
    )  # fmt: skip
    gaussian = est.likelihood in ("normal", "student_t")  # noise, not a GLM's link
    y_is_bool = _checks.check_numeric_target(y) if gaussian else False
    X, y, layout, codes = validate(est, X, y, groups)
    if gaussian:
        _checks.warn_if_binary_target(y, y_is_bool)
    terms = factor_terms(est, X, layout, codes)
    exposure = None if gaussian else est._check_exposure(exposure, X.shape[0])
    scaling = est._scaling(X, y, exposure, weights)
    spec = replace(est._spec(X.shape[1], (), est.engine_, "centered"), factors=terms)
    offset = None if gaussian else est._offset(scaling, X.shape[0], exposure)
    return X, y, codes, spec, scaling, offset, None, weights
