"""Old module path of ``FactorPosterior`` and ``FactorsPosterior``, kept so that
models saved before skhier's modules moved into subpackages keep loading (pickle,
joblib and skops name a class by its module).  Imports only numpy-level code.
"""

from skhier._posterior.factors import FactorPosterior, FactorsPosterior

__all__ = ["FactorPosterior", "FactorsPosterior"]
