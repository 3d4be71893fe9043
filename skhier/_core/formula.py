"""Model formulas in lme4's syntax: ``y ~ x + (x | g)``.

The random-effect terms (the parenthesized bars) are parsed here; everything else,
the fixed part, is formulaic's: categoricals ``C(...)`` with contrasts, interactions,
``I(...)``, ``center()`` / ``scale()``, splines.  A formula becomes the matrix
interface's arguments: the fixed part's columns as ``X`` (without its intercept
column: the model has its own), the grouping columns as ``groups``, and
``random_slopes``, ``correlated_effects`` and ``nested``.  The fixed part's encoding
(levels, stateful transforms) is learned at fit and applied at prediction.

formulaic is imported only when a formula is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skhier._core.formula_parse import _NAME, Formula, RandomTerm, parse  # noqa: F401


# ------------------------------------------------------------------ encoding
@dataclass
class Encoding:
    """What a formula fit learned, to encode new data the same way, as plain Python
    values (so that pickle, joblib and skops save it, and loading needs no formulaic):
    the formula, the fixed part's learned state -- each categorical's levels
    (``encoder``; contrasts are written in the formula itself) and each stateful
    transform's state (``transforms``: ``center``, ``scale``, splines...) -- and the
    model's columns."""

    formula: Formula
    encoder: dict  # term -> (kind, {"categories": [...]} or {})
    transforms: dict  # term -> state (numbers, lists, dicts)
    columns: list
    slopes: dict  # factor -> slope columns
    factor_names: list

    def model_spec(self):
        """formulaic's ModelSpec of the fixed part, rebuilt from the plain state."""
        fm = _formulaic()
        from formulaic.parser.types.factor import Factor

        encoder = {k: (Factor.Kind(kind), dict(state)) for k, (kind, state) in self.encoder.items()}
        return fm.ModelSpec(
            formula=self.formula.fixed, encoder_state=encoder, transform_state=self.transforms
        )


def _plain(value):
    """numpy scalars and arrays in formulaic's transform state as Python values."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _plain_state(spec):
    encoder = {}
    for term, (kind, state) in spec.encoder_state.items():
        kept = {"categories": _plain(list(state["categories"]))} if "categories" in state else {}
        encoder[str(term)] = (kind.value, kept)
    return encoder, _plain(dict(spec.transform_state))


def _formulaic():
    try:
        import formulaic
    except ImportError:  # pragma: no cover - the extra is installed with tests
        raise ImportError(
            "formula= needs formulaic; install it with `pip install skhier[formula]` "
            "(or `pip install formulaic`)."
        ) from None
    return formulaic


def _require_columns(data, names, what):
    missing = [n for n in names if n not in data.columns]
    if missing:
        import difflib

        hints = [difflib.get_close_matches(m, [str(c) for c in data.columns], n=1) for m in missing]
        hint = "; ".join(f"{m!r} (did you mean {h[0]!r}?)" if h else repr(m)
                         for m, h in zip(missing, hints, strict=True))  # fmt: skip
        verb = "is not a column" if len(missing) == 1 else "are not columns"
        raise ValueError(f"The formula's {what} {hint} {verb} of the data.")


def _close_match(message: str, data) -> str:
    """' Did you mean ...?' for a name formulaic could not find among the columns."""
    import difflib

    found = re.search(r"`([^`]+)` is not present", message)
    if not found:
        return ""
    close = difflib.get_close_matches(found.group(1), [str(c) for c in data.columns], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_call(formula: str, data, y, frame_types=(pd.DataFrame,)) -> Formula:
    """The parsed formula, after the checks of a fit's arguments."""
    parsed = parse(formula)
    if not isinstance(data, frame_types):
        raise TypeError(
            f"With formula=..., fit takes the data as a pandas DataFrame; got "
            f"{type(data).__name__}."
        )
    if parsed.lhs is not None and y is not None:
        raise ValueError(
            f"formula={formula!r} names the target ({parsed.lhs!r}) and y was passed too; "
            "pass one: fit(data) with a two-sided formula, or fit(data, y) with '~ ...'."
        )
    if parsed.lhs is None and y is None:
        raise ValueError(
            f"formula={formula!r} has no target: write 'y ~ ...', or pass y to fit."
        )
    if not parsed.terms:
        raise ValueError(
            f"formula={formula!r} has no random-effect term such as '(1 | g)'. For a model "
            "without group effects fit with groups=skhier.POPULATION and no formula, or add "
            "the grouping factor."
        )
    factor_cols = list(dict.fromkeys(c for t in parsed.terms for c in t.factor))
    _require_columns(data, factor_cols, "grouping column(s)")
    if parsed.lhs is not None and _NAME.match(parsed.lhs):
        _require_columns(data, [parsed.lhs], "target")
    return parsed


def fixed_matrix(parsed: Formula, formula: str, data):
    """formulaic's model matrix of the fixed part of ``data`` (learning its state)."""
    try:
        return _formulaic().model_matrix(parsed.fixed, data, na_action="raise")
    except Exception as exc:  # noqa: BLE001 - formulaic's own message, with the formula
        raise ValueError(
            f"The fixed part {parsed.fixed!r} of formula={formula!r}: {exc}"
            + _close_match(str(exc), data)
        ) from exc


def build_encoding(parsed: Formula, spec) -> Encoding:
    """The plain encoding of a fit, from formulaic's learned ``spec``; raise for a
    random slope that is not a column of the fixed part."""
    columns = [c for c in spec.column_names if c != "Intercept"]
    slopes = {}
    for t in parsed.terms:
        absent = [s for s in t.slopes if s not in columns]
        if absent:
            raise ValueError(
                f"The term {t.text!r} gives {absent[0]!r} a random slope, but {absent[0]!r} "
                "is not a numeric column of the fixed part; skhier's random slopes vary "
                f"around a population slope: add {absent[0]!r} to the fixed part."
            )
        for name in (t.name,) if t.combined else t.factor:  # a/b: slopes in both
            slopes[name] = list(t.slopes)
    names = [n for t in parsed.terms for n in ((t.name,) if t.combined else t.factor)]
    encoder, transforms = _plain_state(spec)
    return Encoding(parsed, encoder, transforms, columns, slopes, list(dict.fromkeys(names)))


def encode_fit(formula: str, data, y):
    """``(X, y, groups, params, encoding)`` of a formula fit: ``X`` the fixed part
    (a DataFrame, or None for an intercept only), ``groups`` the grouping columns,
    ``params`` the estimator parameters the formula sets."""
    parsed = check_call(formula, data, y)
    fixed = fixed_matrix(parsed, formula, data)
    if parsed.lhs is not None:
        try:
            lhs = _formulaic().model_matrix(parsed.lhs + " ~ 1", data, na_action="raise").lhs
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"The target {parsed.lhs!r} of formula={formula!r}: {exc}") from exc
        y = lhs.iloc[:, 0]
    encoding = build_encoding(parsed, fixed.model_spec)
    X, groups = _design(encoding, data, fixed)
    return X, np.asarray(y), groups, params_of(encoding, groups), encoding


def params_of(encoding: Encoding, groups) -> dict:
    """``random_slopes``, ``correlated_effects`` and ``nested`` as the formula says.
    Separate terms are crossed unless the data nest one factor in another (lme4's
    ``(1 | a) + (1 | a:b)`` is ``(1 | a/b)``); ``a/b`` nests explicitly."""
    from skhier._data.factors import detect_nesting

    terms, names = encoding.formula.terms, encoding.factor_names
    if len(names) == 1:
        slopes = encoding.slopes[names[0]] or None
    else:
        slopes = {n: encoding.slopes[n] for n in names if encoding.slopes[n]} or None
    pairs = [
        (t.factor[i], t.factor[i + 1])
        for t in terms
        if not t.combined
        for i in range(len(t.factor) - 1)
    ]
    if not pairs and len(names) > 1:
        parents = detect_nesting([groups[n].to_numpy() for n in names])
        pairs = [(names[p], names[f]) for f, p in enumerate(parents) if p >= 0]
    return {
        "random_slopes": slopes,
        "correlated_effects": terms[0].correlated,
        "nested": pairs or (False if len(names) > 1 else None),
    }


def _design(encoding: Encoding, data, fixed=None):
    """The fixed part's columns (None for an intercept only) and the groups."""
    if fixed is None:
        fixed = encoding.model_spec().get_model_matrix(data, na_action="raise")
    return _fixed_columns(encoding, fixed, data.index), _groups(encoding, data)


def _fixed_columns(encoding, fixed, index):
    if not encoding.columns:
        return None
    values = np.asarray(fixed[encoding.columns], dtype=np.float64)
    return pd.DataFrame(values, columns=encoding.columns, index=index)


def _groups(encoding, data):
    frame = {}
    for t in encoding.formula.terms:
        if t.combined:
            frame[t.name] = data[list(t.factor)].astype(str).agg(":".join, axis=1).to_numpy()
        else:
            for c in t.factor:
                frame.setdefault(c, data[c].to_numpy())
    groups = pd.DataFrame(frame, index=data.index)
    return groups.iloc[:, 0] if groups.shape[1] == 1 else groups


def encode_predict(encoding: Encoding, data, groups):
    """``(X, groups)`` of new data for a prediction method of a formula model."""
    from skhier._data.groups import POPULATION

    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            "A model fit with a formula predicts from a pandas DataFrame with the "
            f"formula's columns; got {type(data).__name__}."
        )
    if groups is not None and groups is not POPULATION:
        raise ValueError(
            "This model was fit with a formula, whose grouping columns are read from the "
            "data; pass groups=None (or groups=skhier.POPULATION for population-level "
            "predictions), not group labels."
        )
    try:
        fixed = encoding.model_spec().get_model_matrix(data, na_action="raise")
    except Exception as exc:  # noqa: BLE001
        raise ValueError(
            f"The data cannot be encoded as at fit ({encoding.formula.fixed!r}): {exc}"
        ) from exc
    X = _fixed_columns(encoding, fixed, data.index)
    if X is None:
        X = np.empty((len(data), 0))
    if groups is POPULATION:
        return X, POPULATION
    factor_cols = list(dict.fromkeys(c for t in encoding.formula.terms for c in t.factor))
    _require_columns(data, factor_cols, "grouping column(s)")
    return X, _groups(encoding, data)
