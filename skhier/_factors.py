"""Old module path of ``FactorLayout``, kept so that models saved before skhier's
modules moved into subpackages keep loading (pickle, joblib and skops name a class
by its module).  Imports only numpy-level code.
"""

from skhier._data.factors import FactorLayout

__all__ = ["FactorLayout"]
