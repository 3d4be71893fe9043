"""Public warning and error classes of skhier."""

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning

__all__ = [
    "ConvergenceWarning",
    "FewGroupsWarning",
    "MissingGroupsError",
    "UnseenGroupError",
]


class ConvergenceWarning(_SklearnConvergenceWarning):
    """The sampler did not converge well (divergences, high r_hat or low ESS).

    Subclasses :class:`sklearn.exceptions.ConvergenceWarning`, so filters set for
    scikit-learn's warning apply to skhier too.
    """


class FewGroupsWarning(UserWarning):
    """Too few groups to learn how much groups differ (the group-level SDs)."""


class UnseenGroupError(ValueError):
    """A group label at prediction time was not seen in training and
    ``unseen_groups="raise"``."""


class MissingGroupsError(ValueError):
    """A model fit with several groups was asked to predict without ``groups``."""
