"""Numpy-only posterior results: summaries, diagnostics, prediction, draws.

``skhier._posterior.Posterior`` is where models saved before the move into
subpackages name the one-factor posterior; it stays importable here.
"""

from skhier._posterior.one_factor import Posterior

__all__ = ["Posterior"]
