"""scikit-learn's own estimator checks."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor, HierarchicalRegressor
from skhier.exceptions import ConvergenceWarning

_TINY = {"draws": 100, "tune": 100, "chains": 2, "random_state": 0}


# scikit-learn's checks fit without `groups` and on arbitrary targets, by design: the
# warnings about lost groups and 0/1 targets are correct there and not under test.
@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::skhier.exceptions.NoGroupsWarning")
@pytest.mark.filterwarnings("ignore::skhier.exceptions.BinaryTargetWarning")
@parametrize_with_checks([HierarchicalRegressor(**_TINY), HierarchicalClassifier(**_TINY)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# The count model's engine compiles a NUTS model per data shape (nutpie): its checks
# take minutes, so they run with the slow tests.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::skhier.exceptions.NoGroupsWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@parametrize_with_checks(
    [HierarchicalPoissonRegressor(draws=30, tune=30, chains=1, random_state=0)]
)
def test_sklearn_compatible_counts(estimator, check):
    check(estimator)


def test_convergence_warning_is_sklearn_convergence_warning():
    from sklearn.exceptions import ConvergenceWarning as SkCW

    assert issubclass(ConvergenceWarning, SkCW)
