"""Public warning and error classes of skhier."""

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning

__all__ = [
    "BinaryTargetWarning",
    "ConvergenceWarning",
    "KernelCacheWarning",
    "CountTargetWarning",
    "FewGroupsWarning",
    "GroupIdFeatureWarning",
    "IdentifiabilityWarning",
    "MissingExposureWarning",
    "MissingGroupsError",
    "NestingWarning",
    "NoGroupsWarning",
    "UnseenGroupError",
    "UnseenGroupWarning",
]


class ConvergenceWarning(_SklearnConvergenceWarning):
    """The sampler did not converge well (divergences, high r_hat or low ESS).

    Subclasses :class:`sklearn.exceptions.ConvergenceWarning`, so filters set for
    scikit-learn's warning apply to skhier too.
    """


class FewGroupsWarning(UserWarning):
    """Too few groups to learn how much groups differ (the group-level SDs)."""


class NoGroupsWarning(UserWarning):
    """A hierarchical model was fit without group labels (complete pooling).

    Usually ``groups`` was lost on the way in (e.g. ``cross_val_score(...,
    groups=g)`` with metadata routing off gives ``groups`` to the splitter only).
    Fit with ``groups=skhier.POPULATION`` to ask for one group explicitly.
    """


class UnseenGroupWarning(UserWarning):
    """Predictions were made for group labels not seen in training.

    They are predicted from the population; set ``unseen_groups="population"``
    when new groups are expected (e.g. ``GroupKFold``), or ``"raise"``.
    """


class GroupIdFeatureWarning(UserWarning):
    """A feature column of ``X`` holds the group labels (or a one-to-one code of them)."""


class IdentifiabilityWarning(UserWarning):
    """The data cannot tell some parameters of the model apart; their posterior
    follows the prior along a ridge."""


class NestingWarning(UserWarning):
    """Grouping factors look nested (or crossed) in a way that was not declared, or
    their labels contradict the declared nesting."""


class BinaryTargetWarning(UserWarning):
    """A regressor was fit to a target with two distinct values (a binary outcome)."""


class CountTargetWarning(UserWarning):
    """A count model was fit to a target with non-integer values."""


class MissingExposureWarning(UserWarning):
    """A count model fit with ``exposure`` was scored without it: the observed
    counts would be compared with expected counts per unit of exposure."""


class KernelCacheWarning(UserWarning):
    """skhier's compiled kernels cannot be kept on disk (an unwritable cache
    directory, a full disk): fits are correct, but new processes compile again."""


class UnseenGroupError(ValueError):
    """A group label at prediction time was not seen in training and
    ``unseen_groups="raise"``."""


class MissingGroupsError(ValueError):
    """A model fit with several groups was asked to predict without ``groups``."""
