"""A group-aware scorer factory for scikit-learn model selection."""

from __future__ import annotations

from sklearn.utils.metadata_routing import MetadataRequest


class GroupScorer:
    """Scorer that passes the test fold's ``groups`` to ``predict``.

    Build it with :func:`make_group_scorer`.  It requests ``groups`` for
    scoring through scikit-learn's metadata routing, so with
    ``sklearn.set_config(enable_metadata_routing=True)`` the groups given to
    ``cross_validate(..., params={"groups": groups})`` or ``GridSearchCV.fit``
    reach ``predict`` for every test fold.
    """

    def __init__(self, score_func, sign, kwargs):
        self._score_func = score_func
        self._sign = sign
        self._kwargs = kwargs

    def __call__(self, estimator, X, y_true, groups=None, **kwargs):
        y_pred = estimator.predict(X) if groups is None else estimator.predict(X, groups=groups)
        return self._sign * self._score_func(y_true, y_pred, **self._kwargs)

    def get_metadata_routing(self):
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="groups", alias=True)
        return request

    def __repr__(self) -> str:
        name = getattr(self._score_func, "__name__", repr(self._score_func))
        sign = "" if self._sign > 0 else ", greater_is_better=False"
        return f"make_group_scorer({name}{sign})"


def make_group_scorer(score_func, *, greater_is_better=True, **kwargs):
    """Make a scorer from any regression metric that predicts with the fold's groups.

    scikit-learn's string scorers (``"r2"``, ``"neg_mean_squared_error"``) call
    ``predict(X)`` without groups; with a model fit on several groups that is an
    error.  This scorer asks for ``groups`` through metadata routing instead.

    Parameters
    ----------
    score_func : callable
        ``score_func(y_true, y_pred, **kwargs)``, e.g.
        :func:`sklearn.metrics.mean_absolute_error`.
    greater_is_better : bool, default=True
        False for losses: the scorer then returns the negated value, as
        scikit-learn's ``neg_*`` scorers do.
    **kwargs
        Passed to ``score_func``.

    Returns
    -------
    scorer : GroupScorer
        Callable ``scorer(estimator, X, y, groups=None)``.

    Examples
    --------
    >>> from sklearn.metrics import mean_absolute_error
    >>> from skhier import make_group_scorer
    >>> make_group_scorer(mean_absolute_error, greater_is_better=False)
    make_group_scorer(mean_absolute_error, greater_is_better=False)
    """
    return GroupScorer(score_func, 1.0 if greater_is_better else -1.0, kwargs)
