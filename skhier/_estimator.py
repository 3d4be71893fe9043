"""Where ``HierarchicalRegressor`` lived in skhier 0.1.0.

Pickles and skops files name the class by its module: models saved by 0.1.0 refer to
``skhier._estimator.HierarchicalRegressor`` and keep loading through this alias.
"""

from skhier._regressor import HierarchicalRegressor

__all__ = ["HierarchicalRegressor"]
