"""scikit-learn's own estimator checks."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor, HierarchicalRegressor
from skhier.exceptions import ConvergenceWarning

_TINY = {"draws": 100, "tune": 100, "chains": 2, "random_state": 0}


# scikit-learn's checks fit without `groups` and on arbitrary targets, by design: the
# warnings about lost groups, 0/1 targets and non-integer counts are correct there and
# not under test.
@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::skhier.exceptions.NoGroupsWarning")
@pytest.mark.filterwarnings("ignore::skhier.exceptions.BinaryTargetWarning")
@pytest.mark.filterwarnings("ignore::skhier.exceptions.CountTargetWarning")
@parametrize_with_checks(
    [
        HierarchicalRegressor(**_TINY),
        HierarchicalClassifier(**_TINY),
        HierarchicalPoissonRegressor(**_TINY),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_convergence_warning_is_sklearn_convergence_warning():
    from sklearn.exceptions import ConvergenceWarning as SkCW

    assert issubclass(ConvergenceWarning, SkCW)
