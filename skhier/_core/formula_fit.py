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

        refuse_conflicts(self, kwargs.get("groups"))
        encode = encode_dask if is_dask(X) else encode_fit
        X, y, groups, params, encoding = encode(self.formula, X, y)
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


def encode_dask(formula, data, y):
    """:func:`~skhier._core.formula.encode_fit` for a Dask DataFrame: the fixed part's
    categorical levels are read from the whole data in one pass, the encoding is
    learned on a small frame holding every level, and each partition is encoded
    lazily.  Stateful transforms (``center``, ``scale``, splines) need statistics of
    the whole data that this pass does not compute: they are refused."""
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    from skhier._core import formula as f

    parsed = f.check_call(formula, data, y, frame_types=(dd.DataFrame,))
    import re

    names = set(re.findall(r"`([^`]+)`|([A-Za-z_][A-Za-z0-9_.]*)", parsed.fixed))
    tokens = {a or b for a, b in names}
    needed = [c for c in data.columns if c in tokens]
    levels = {}
    for c in needed:
        if data[c].dtype.kind == "f":  # numbers: their values do not shape the encoding
            levels[c] = np.array([0.0, 1.0])
        else:
            levels[c] = data[c].drop_duplicates().compute().to_numpy()
    n = max([len(v) for v in levels.values()] + [2])
    proto = pd.DataFrame({c: np.resize(v, n) for c, v in levels.items()})
    for c in needed:
        proto[c] = proto[c].astype(data[c].dtype)
    fixed = f.fixed_matrix(parsed, formula, proto)
    if fixed.model_spec.transform_state:
        raise ValueError(
            f"formula={formula!r} uses a stateful transform "
            f"({', '.join(map(str, fixed.model_spec.transform_state))}), whose statistics "
            "need the whole data in memory: compute the column beforehand, or pass "
            "data.compute()."
        )
    encoding = f.build_encoding(parsed, fixed.model_spec)
    meta = pd.DataFrame({c: pd.Series(dtype="float64") for c in encoding.columns})

    def fixed_part(part):
        return f._design(encoding, part)[0] if encoding.columns else meta

    X = data.map_partitions(fixed_part, meta=meta) if encoding.columns else None
    if X is None:
        raise ValueError(
            "An intercept-only formula has no feature columns to read lazily; fit it on "
            "the computed data (data.compute())."
        )
    if parsed.lhs is not None:
        if parsed.lhs not in data.columns:
            raise ValueError(
                f"With Dask data the target must be a column name; got {parsed.lhs!r}."
            )
        y = data[parsed.lhs]
    names = encoding.factor_names
    combined = any(t.combined for t in parsed.terms)
    if len(names) > 1 or combined:
        raise ValueError(
            "Several grouping factors (or a combined factor a:b) need the rows in memory: "
            "fit the formula on data.compute(), or use one grouping factor."
        )
    return X, y, data[names[0]], f.params_of(encoding, None), encoding
