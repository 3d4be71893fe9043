"""Which engine fits a model, and the call into it (engines are imported on use)."""

from __future__ import annotations

import logging

from ._interrupts import check as check_interrupted


def resolve_engine(engine, inference, likelihood):
    """The engine that fits this model: ``engine="auto"`` picks the fastest exact one
    (collapsed for Gaussian noise, augmented for Student-t); a choice that cannot
    fit the model raises."""
    fast = "augmented" if likelihood == "student_t" else "collapsed"
    chosen = fast if engine == "auto" else engine
    allowed = (fast, "explicit") if likelihood == "student_t" else (fast, "explicit", "gibbs")
    if chosen not in allowed:
        raise ValueError(
            f"engine={engine!r} cannot fit likelihood={likelihood!r}; use engine='auto' "
            f"(which picks {fast!r}) or engine='explicit'."
        )
    if chosen == "gibbs" and inference not in ("auto",):
        raise ValueError(
            f"engine='gibbs' draws every parameter by Gibbs sampling; inference={inference!r} "
            "does not apply. Use inference='auto', or another engine."
        )
    if inference in ("laplace", "importance") and chosen != "collapsed":
        raise ValueError(
            f"inference={inference!r} needs the collapsed engine (Gaussian noise); got "
            f"engine={engine!r}, likelihood={likelihood!r}. Use engine='auto' with "
            "likelihood='normal', or inference='nuts'."
        )
    return chosen


#: ``inference="auto"`` uses importance sampling from this many groups on
IMPORTANCE_MIN_GROUPS = 1000


def resolve_inference(inference, engine, n_groups):
    """``inference="auto"``: importance sampling (checked by Pareto k_hat, NUTS
    when it fails) for the collapsed engine with many groups, where the posterior
    of the variance parameters is close to Gaussian; NUTS otherwise."""
    if inference != "auto":
        return inference
    return "importance" if engine == "collapsed" and n_groups >= IMPORTANCE_MIN_GROUPS else "nuts"


def run_engine(X, y, codes, n_groups, spec, scaling, sampler_kwargs, rng, offset=None, stats=None):
    """Fit ``spec`` with its engine; the standardized draws as a dict (``offset``: the
    fixed part of a GLM's linear predictor, one value per row; ``stats``: the
    collapsed engine's sufficient statistics, given instead of the rows)."""
    if spec.engine == "collapsed":
        from ._backend_collapsed import fit_collapsed as backend
    elif spec.engine == "gibbs":
        from ._backend_gibbs import fit_gibbs_one as backend
    elif spec.engine == "nuts":
        from ._backend_glmm import fit_glmm as backend
    elif spec.engine == "augmented":
        from ._backend_augmented import fit_augmented as backend
    else:
        from ._backend_pymc import fit_explicit as backend
    # Silence the samplers' informational logging; warnings still reach the user.
    loggers = [logging.getLogger(name) for name in ("pymc", "pytensor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        extra = {} if offset is None else {"offset": offset}
        if stats is not None:
            extra["stats"] = stats
        draws = backend(
            X, y, codes, n_groups, spec, scaling, sampler_kwargs=sampler_kwargs, rng=rng, **extra
        )
        check_interrupted()  # a sampler that swallowed Ctrl-C returned part of its draws
        return draws
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
