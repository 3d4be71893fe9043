"""The engine registry: one place decides which engine fits a model."""

import pytest

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor, HierarchicalRegressor
from skhier._engines.registry import BY_NAME, ENGINES, engines_for, select_engine

AUTO = {  # (likelihood, grouping factors) -> engine="auto"'s choice
    ("normal", 1): "collapsed",
    ("student_t", 1): "augmented",
    ("bernoulli", 1): "gibbs",
    ("poisson", 1): "nuts",
    ("negative_binomial", 1): "nuts",
    ("normal", 2): "gibbs",
    ("bernoulli", 3): "gibbs",
    ("poisson", 2): "explicit",  # several factors: the explicit model, for now
    ("student_t", 2): "explicit",
    ("normal", 0): "pooled",  # no groups: the regression itself
    ("bernoulli", 0): "pooled",
}


@pytest.mark.parametrize(("model", "engine"), sorted(AUTO.items()))
def test_auto_picks_the_fastest_exact_engine(model, engine):
    assert select_engine("auto", "auto", *model) == engine


def test_every_engine_names_an_importable_fit_function():
    for engine in ENGINES:
        assert callable(engine.function()), engine.name


@pytest.mark.parametrize(
    "cls", [HierarchicalRegressor, HierarchicalClassifier, HierarchicalPoissonRegressor]
)
def test_estimators_offer_only_registered_engines_that_fit_them(cls):
    offered = next(iter(cls._parameter_constraints["engine"])).options - {"auto"}
    families = {
        "HierarchicalRegressor": ("normal", "student_t"),
        "HierarchicalClassifier": ("bernoulli",),
        "HierarchicalPoissonRegressor": ("poisson", "negative_binomial"),
    }[cls.__name__]
    assert offered <= set(BY_NAME)
    assert offered <= {e for f in families for e in engines_for(f)}


def test_a_named_engine_that_cannot_fit_the_model_says_why_and_what_can():
    with pytest.raises(ValueError, match="engine='augmented' cannot fit likelihood='normal'.*"
                       "engine='auto' \\(which picks 'collapsed'\\)"):  # fmt: skip
        select_engine("augmented", "auto", "normal")
    with pytest.raises(ValueError, match="engine='collapsed' fits one grouping factor"):
        select_engine("collapsed", "auto", "normal", 2)
    with pytest.raises(ValueError, match="inference='laplace' needs the collapsed engine; got "
                       "engine='gibbs'"):  # fmt: skip
        select_engine("gibbs", "laplace", "normal")
    with pytest.raises(ValueError, match="inference='importance' needs the collapsed or gibbs"):
        select_engine("explicit", "importance", "normal")
    with pytest.raises(ValueError, match="inference='laplace' needs the collapsed engine"):
        select_engine("auto", "laplace", "student_t")


def test_a_model_no_engine_fits_names_the_limit():
    with pytest.raises(ValueError, match="takes one grouping factor with likelihood='gamma'"):
        select_engine("auto", "auto", "gamma", 2, estimator="HierarchicalPoissonRegressor")


def test_auto_with_an_inference_picks_an_engine_that_takes_it():
    # a classifier asked for NUTS gets the NUTS engine, not Gibbs ignoring the request
    assert select_engine("auto", "nuts", "bernoulli") == "nuts"
    assert select_engine("auto", "importance", "normal") == "collapsed"
