"""Numpy-only posterior results: summaries, diagnostics, prediction, draws.

Two layouts answer to one interface: :class:`~skhier._posterior.one_factor.Posterior`
(one grouping factor) and :class:`~skhier._posterior.factors.FactorsPosterior`
(several).  Both give ``diagnose``, ``summary_table``, ``inference_data``,
``prediction_codes``, ``new_level_labels``, ``effect_sizes``, ``mean_and_var``,
``predictive_draws``, ``predictive_interval``, ``linear_draws`` and ``sd_draws``.

``skhier._posterior.Posterior`` is where models saved before the move into
subpackages name the one-factor posterior; it stays importable here.
"""

from skhier._posterior.one_factor import Posterior

__all__ = ["Posterior", "from_standardized"]


def from_standardized(draws, spec, scaling, prob=0.95, store_draws="all"):
    """The posterior of ``spec``'s layout from an engine's standardized draws."""
    if spec.factors:
        from skhier._posterior.factors import FactorsPosterior

        return FactorsPosterior.from_standardized(draws, spec, scaling)
    return Posterior.from_standardized(draws, spec, scaling, prob, store_draws)
