"""The ``formula`` parameter of every estimator: fit and predict from a DataFrame.

:func:`formula_fit` wraps an estimator's ``fit``: with a formula it encodes the data
(:mod:`skhier._core.formula`), sets ``random_slopes``, ``correlated_effects`` and
``nested`` as the formula says for the duration of the fit (the estimator's own
parameters are left as the user set them), and keeps the encoding for prediction,
which :meth:`~skhier._core.base.HierarchicalBase._prepare` applies.
"""

from __future__ import annotations

import functools
import inspect

#: parameters a formula sets; a value other than the default beside a formula is refused
FORMULA_PARAMS = ("random_slopes", "correlated_effects", "nested", "group_col")


def formula_fit(fit):
    """Decorator of ``fit(self, X, y=None, *, groups=None, ...)``."""

    @functools.wraps(fit)
    def wrapper(self, X, y=None, **kwargs):
        if getattr(self, "formula", None) is None:
            self.__dict__.pop("formula_encoding_", None)
            return fit(self, X, y, **kwargs)
        from skhier._core.formula import encode_fit
        from skhier._dask.frames import is_dask

        if is_dask(X):
            raise TypeError(
                "formula= takes a pandas DataFrame; for Dask collections use the matrix "
                "interface (X, groups) without a formula."
            )
        refuse_conflicts(self, kwargs.get("groups"))
        X, y, groups, params, encoding = encode_fit(self.formula, X, y)
        kwargs["groups"] = groups
        saved = {name: getattr(self, name) for name in params}
        try:
            for name, value in params.items():
                setattr(self, name, value)
            fit(self, X, y, **kwargs)
        finally:
            for name, value in saved.items():
                setattr(self, name, value)
        self.formula_encoding_ = encoding
        return self

    return wrapper


def refuse_conflicts(est, groups) -> None:
    """A formula names the groups and the random effects: refuse what says it twice."""
    if groups is not None:
        raise ValueError(
            "formula= names the grouping factors (its '(... | g)' terms), so `groups` must "
            "not be passed to fit as well. Drop `groups=` (with metadata routing, do not "
            "request it: set_fit_request(groups=False)); a splitter such as GroupKFold "
            "still takes its own groups."
        )
    defaults = inspect.signature(type(est).__init__).parameters
    for name in FORMULA_PARAMS:
        value, default = getattr(est, name), defaults[name].default
        if not (value is default or (isinstance(value, str) and value == default)):
            raise ValueError(
                f"formula= sets {name} itself; got {name}={value!r} as well. Drop it, and "
                "write it in the formula ('(x | g)' correlated, '(x || g)' independent, "
                "'(1 | a/b)' nested)."
            )


def formula_target(est, X, y):
    """``y`` for ``score`` with a two-sided formula: the target column of ``X``."""
    encoding = getattr(est, "formula_encoding_", None)
    if encoding is None or y is not None or encoding.formula.lhs is None:
        return y
    import numpy as np

    from skhier._core.formula import _formulaic

    lhs = encoding.formula.lhs
    return np.asarray(_formulaic().model_matrix(lhs + " ~ 1", X).lhs.iloc[:, 0])
