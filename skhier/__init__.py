"""skhier: Bayesian hierarchical (multilevel) models as scikit-learn estimators."""

from skhier._classifier import HierarchicalClassifier
from skhier._core.scoring import make_group_scorer
from skhier._data.groups import POPULATION
from skhier._poisson import HierarchicalPoissonRegressor
from skhier._precompile import precompile
from skhier._regressor import HierarchicalRegressor
from skhier._version import __version__ as __version__

__all__ = [
    "POPULATION",
    "HierarchicalClassifier",
    "HierarchicalPoissonRegressor",
    "HierarchicalRegressor",
    "make_group_scorer",
    "precompile",
]
