"""Which engine fits a model, decided in one place, and the call into it.

Every engine states what it fits (:class:`Engine`): the likelihood families, one or
several grouping factors, the inference methods beyond NUTS, and whether it can fit
from summarized data (Dask's out-of-core fit).  :func:`select_engine` turns the
user's ``engine`` and ``inference`` into one engine, or raises a ``ValueError`` that
says why the requested one cannot fit the model and what would.  Engines are
imported only when a model is fitted.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass

from skhier._util.interrupts import check as check_interrupted

#: ``inference="auto"`` uses importance sampling from this many groups on
IMPORTANCE_MIN_GROUPS = 1000


@dataclass(frozen=True)
class Engine:
    """What one engine fits, how it samples, and where its ``fit`` function lives."""

    name: str
    families: tuple[str, ...]  # the likelihoods it fits
    layouts: tuple[str, ...]  # "one" grouping factor, "several"
    inferences: tuple[str, ...]  # the ``inference`` options it takes besides "auto"
    entry: str  # "module:function", imported on use
    several_entry: str = ""  # the fit function for several grouping factors
    summarized: bool = False  # fits from sufficient statistics, without the rows
    #: the forms of the group effects it samples ("centered", "non-centered" and,
    #: for the nuts engine, "partial": centred intercepts, non-centred slopes)
    forms: tuple[str, ...] = ()
    exact_group_draws: bool = False  # group effects drawn exactly given the rest
    target_accept: float = 0.9  # NUTS's default target acceptance rate
    #: the families it fits with whole-number weights only (Pólya-Gamma draws)
    integer_weights: tuple[str, ...] = ()

    def supports(
        self, family: str, n_factors: int = 1, inference: str = "auto", weights: str = "none"
    ) -> str | None:
        """None when this engine fits the model; otherwise why it does not (the
        start of the user's error message).  ``weights``: the rows' frequency weights
        (or trials), ``"none"``, ``"integer"`` or ``"real"``."""
        if family not in self.families:
            return f"engine={self.name!r} cannot fit likelihood={family!r}"
        if weights == "real" and family in self.integer_weights:
            return (
                f"engine={self.name!r} draws Pólya-Gamma variables, which take whole-number "
                "weights (frequency weights, trials); got non-integer sample_weight"
            )
        if _layout(n_factors) not in self.layouts:
            if n_factors == 0:
                return (
                    f"engine={self.name!r} fits group effects, and a model fit without groups "
                    "(complete pooling) has none"
                )
            if "none" in self.layouts:
                return f"engine={self.name!r} fits models without groups only"
            return f"engine={self.name!r} fits one grouping factor"
        if inference != "auto" and inference not in self.inferences:
            if not self.inferences:
                return (
                    f"engine={self.name!r} draws every parameter by Gibbs sampling; "
                    f"inference={inference!r} does not apply"
                )
            return f"engine={self.name!r} does not take inference={inference!r}"
        return None

    @property
    def parametrized(self) -> bool:
        """Samples the group effects, in one of several forms."""
        return bool(self.forms)

    def function(self, several: bool = False):
        module, name = (self.several_entry if several else self.entry).split(":")
        return getattr(importlib.import_module(module), name)


_ALL = ("normal", "student_t", "bernoulli", "poisson", "negative_binomial")


def _layout(n_factors: int) -> str:
    return "none" if n_factors == 0 else ("several" if n_factors > 1 else "one")


#: every engine, in ``engine="auto"``'s order of preference (fastest exact first)
ENGINES: tuple[Engine, ...] = (
    Engine("collapsed", ("normal",), ("one",), ("nuts", "laplace", "importance"),
           "skhier._engines.collapsed.engine:fit_collapsed",
           summarized=True, exact_group_draws=True, target_accept=0.8),
    Engine("augmented", ("student_t",), ("one",), ("nuts",),
           "skhier._engines.augmented.engine:fit_augmented"),
    Engine("gibbs", ("normal", "bernoulli"), ("one", "several"), ("importance",),
           "skhier._engines.gibbs.engine:fit_gibbs_one",
           several_entry="skhier._engines.gibbs.engine:fit_gibbs", integer_weights=("bernoulli",)),
    Engine("nuts", ("bernoulli", "poisson", "negative_binomial"), ("one",), ("nuts",),
           "skhier._engines.nuts.engine:fit_glmm",
           forms=("centered", "non-centered", "partial")),
    Engine("explicit", _ALL, ("one", "several"), ("nuts",), "skhier._engines.pymc:fit_explicit",
           several_entry="skhier._engines.pymc:fit_explicit_factors",
           forms=("centered", "non-centered")),
    # complete pooling: no group effects (exact draws, Gibbs or independence Metropolis)
    Engine("pooled", _ALL, ("none",), ("nuts", "laplace", "importance"),
           "skhier._engines.pooled:fit_pooled",
           summarized=True, exact_group_draws=True),
)  # fmt: skip
BY_NAME = {engine.name: engine for engine in ENGINES}


def engines_for(
    family: str, n_factors: int = 1, inference: str = "auto", weights: str = "none"
) -> list[str]:
    """The engines that fit this model, in ``engine="auto"``'s order."""
    return [e.name for e in ENGINES if e.supports(family, n_factors, inference, weights) is None]


def _taking(inference: str, family: str) -> list[str]:
    """The engines for grouped data that take ``inference`` (those fitting ``family``
    first)."""
    grouped = [e for e in ENGINES if inference in e.inferences and "none" not in e.layouts]
    return [e.name for e in grouped if family in e.families] or [e.name for e in grouped]


def select_engine(
    engine: str, inference: str, family: str, n_factors: int = 1, *, estimator: str = "",
    weights: str = "none",
) -> str:
    """The engine that fits this model: ``engine="auto"`` picks the first that can;
    one that cannot raises a ``ValueError`` naming why and what would fit it.
    ``weights``: the kind of the rows' weights (:meth:`Engine.supports`)."""
    layout = {"none": "no groups", "one": "one grouping factor"}.get(
        _layout(n_factors), "several grouping factors"
    )
    usable = engines_for(family, n_factors, weights=weights)
    if not usable:
        several = [e for e in ENGINES if "several" in e.layouts]
        families = sorted({f for e in several for f in e.families})
        raise ValueError(
            f"{estimator or 'This estimator'} takes one grouping factor with "
            f"likelihood={family!r} (several grouping factors are fit by the Gibbs engine, "
            f"which fits {' and '.join(families)} outcomes); got {n_factors}. Fit one factor, "
            "or combine the factors' labels into one (e.g. 'school:class')."
        )
    if engine == "auto":
        fitting = engines_for(family, n_factors, inference, weights)
        if fitting:
            return fitting[0]
        takes = _taking(inference, family)
        raise ValueError(
            f"inference={inference!r} needs the {' or '.join(takes)} engine; "
            f"likelihood={family!r} with {layout} is fit by the {usable[0]} engine, which "
            "does not take it. Use inference='auto'."
        )
    reason = BY_NAME[engine].supports(family, n_factors, inference, weights)
    if reason is None:
        return engine
    others = [e for e in engines_for(family, n_factors, inference, weights) if e != engine]
    if BY_NAME[engine].supports(family, n_factors, inference) is None:  # the weights
        return_to = f"Use engine='auto' (which picks {usable[0]!r})" if usable else ""
        raise ValueError(f"{reason}. {return_to or 'Round the weights.'}")
    if BY_NAME[engine].supports(family, n_factors) is None and BY_NAME[engine].inferences:
        takes = _taking(inference, family)
        raise ValueError(
            f"inference={inference!r} needs the {' or '.join(takes)} engine; got "
            f"engine={engine!r}, likelihood={family!r} ({layout}). Use inference='auto'"
            + (f", or engine={others[0]!r}." if others else ".")
        )
    if BY_NAME[engine].supports(family, n_factors) is None:  # Gibbs: no inference options
        remedy = "Use inference='auto'" + (f", or engine={others[0]!r}." if others else ".")
    else:
        remedy = f"Use engine='auto' (which picks {usable[0]!r})" + (
            f", or one of {others}." if others else "."
        )
    raise ValueError(f"{reason} ({layout}). {remedy}")


def resolve_inference(inference, engine, n_groups):
    """``inference="auto"``: importance sampling (checked by Pareto k_hat, NUTS
    when it fails) for the collapsed engine with many groups, where the posterior
    of the variance parameters is close to Gaussian; NUTS otherwise."""
    if inference != "auto":
        return inference
    return "importance" if engine == "collapsed" and n_groups >= IMPORTANCE_MIN_GROUPS else "nuts"


def run_engine(inputs, n_groups, config, rng):
    """Fit ``inputs.spec`` with its engine (``inputs``: the estimator's ``FitInputs``);
    the standardized draws as a dict.  Besides the rows, an engine is given the fixed
    part of a GLM's linear predictor (``offset``, one value per row), the collapsed
    engine's sufficient statistics (``stats``, instead of the rows) and the rows'
    frequency weights (``weights``), each only when there is one."""
    spec = inputs.spec
    backend = BY_NAME[spec.engine].function()
    extra = {
        k: getattr(inputs, k)
        for k in ("offset", "stats", "weights")
        if getattr(inputs, k) is not None
    }
    with quiet_samplers():
        draws = backend(
            inputs.X, inputs.y, inputs.codes, n_groups, spec, inputs.scaling,
            config=config, rng=rng, **extra,
        )  # fmt: skip
    check_interrupted()  # a sampler that swallowed Ctrl-C returned part of its draws
    return draws


@contextlib.contextmanager
def quiet_samplers():
    """Silence the samplers' informational logging; warnings still reach the user."""
    loggers = [logging.getLogger(name) for name in ("pymc", "pytensor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
