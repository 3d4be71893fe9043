"""skhier: Bayesian hierarchical (multilevel) regression as a scikit-learn estimator."""

from ._groups import POPULATION
from ._regressor import HierarchicalRegressor
from ._scoring import make_group_scorer

__all__ = ["POPULATION", "HierarchicalRegressor", "make_group_scorer"]
__version__ = "0.1.0"
