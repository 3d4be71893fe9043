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

    def __init__(self, score_func, sign, kwargs, response_method="predict"):
        self._score_func = score_func
        self._sign = sign
        self._kwargs = kwargs
        self._response_method = response_method

    def __call__(self, estimator, X, y_true, groups=None, exposure=None, **kwargs):
        params = {k: v for k, v in (("groups", groups), ("exposure", exposure)) if v is not None}
        y_pred = getattr(estimator, self._response_method)(X, **params)
        if self._response_method == "predict_proba":
            y_pred = y_pred[:, 1]  # the probability of classes_[1], as binary metrics take it
        return self._sign * self._score_func(y_true, y_pred, **self._kwargs)

    def get_metadata_routing(self):
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="groups", alias=True)
        request.score.add_request(param="exposure", alias=True)
        return request

    def __repr__(self) -> str:
        name = getattr(self._score_func, "__name__", repr(self._score_func))
        sign = "" if self._sign > 0 else ", greater_is_better=False"
        method = (
            ""
            if self._response_method == "predict"
            else f", response_method={self._response_method!r}"
        )
        return f"make_group_scorer({name}{sign}{method})"


def make_group_scorer(score_func, *, greater_is_better=True, response_method="predict", **kwargs):
    """Make a scorer from any metric that predicts with the fold's groups.

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
    response_method : {"predict", "predict_proba", "decision_function"}, default="predict"
        What the metric scores.  ``"predict_proba"`` passes the probability of
        ``classes_[1]``, as :func:`~sklearn.metrics.log_loss` and
        :func:`~sklearn.metrics.roc_auc_score` take it for binary outcomes.  A count
        model's ``exposure``, when routed, reaches ``predict`` too.
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

    Group-aware ``neg_log_loss`` and ``roc_auc`` for :class:`HierarchicalClassifier`:

    >>> from sklearn.metrics import log_loss, roc_auc_score
    >>> neg_log_loss = make_group_scorer(
    ...     log_loss, greater_is_better=False, response_method="predict_proba"
    ... )
    >>> roc_auc = make_group_scorer(roc_auc_score, response_method="predict_proba")
    """
    if response_method not in ("predict", "predict_proba", "decision_function"):
        raise ValueError(
            "`response_method` must be 'predict', 'predict_proba' or 'decision_function'; "
            f"got {response_method!r}."
        )
    return GroupScorer(score_func, 1.0 if greater_is_better else -1.0, kwargs, response_method)
