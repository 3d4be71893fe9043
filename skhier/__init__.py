"""skhier: Bayesian hierarchical (multilevel) models as scikit-learn estimators."""

from ._classifier import HierarchicalClassifier
from ._groups import POPULATION
from ._poisson import HierarchicalPoissonRegressor
from ._precompile import precompile
from ._regressor import HierarchicalRegressor
from ._scoring import make_group_scorer

__all__ = [
    "POPULATION",
    "HierarchicalClassifier",
    "HierarchicalPoissonRegressor",
    "HierarchicalRegressor",
    "make_group_scorer",
    "precompile",
]
__version__ = "0.1.0"
