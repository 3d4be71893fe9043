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

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class RandomTerm:
    """One ``(effects | factor)`` term."""

    slopes: tuple[str, ...]  # variables with a random slope (the intercept is implied)
    factor: tuple[str, ...]  # grouping columns: one, or an outer-to-inner chain (a/b)
    combined: bool  # a:b -- one factor whose levels are the combinations
    correlated: bool  # | (True) or || (False)
    text: str  # the term as written, for messages

    @property
    def name(self) -> str:
        return ":".join(self.factor) if self.combined else self.factor[-1]


@dataclass(frozen=True)
class Formula:
    """A parsed formula: the target, the fixed part (formulaic's syntax) and the
    random-effect terms."""

    lhs: str | None
    fixed: str
    terms: tuple[RandomTerm, ...]


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and text.startswith(sep, i):
            out.append(text[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    out.append(text[start:])
    return out


def parse(formula: str) -> Formula:
    """Split ``formula`` into its target, fixed part and random-effect terms; raise a
    ``ValueError`` naming the term for what skhier cannot fit."""
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(
            f"formula={formula!r} is not a model formula: write it as lme4 does, "
            "e.g. 'Reaction ~ Days + (Days | Subject)' (or '~ x + (1 | g)' with y given)."
        )
    lhs, _, rhs = formula.partition("~")
    lhs = lhs.strip() or None
    if "~" in rhs:
        raise ValueError(f"formula={formula!r} has more than one '~'.")
    fixed, terms = [], []
    for part in _split_top(rhs, "+"):
        piece = part.strip()
        if not piece:
            raise ValueError(f"formula={formula!r} has an empty term (a stray '+').")
        inner = piece[1:-1] if piece.startswith("(") and piece.endswith(")") else None
        if inner is not None and len(_split_top(inner, "|")) > 1:
            terms.append((inner, piece))
        elif "|" in piece and re.match(r"^[A-Za-z_][A-Za-z0-9_.]*\(", piece):
            raise ValueError(
                f"The term {piece!r} is a correlation structure or grouping function of "
                "brms / glmmTMB (ar1, cs, gr, mm, ...), which skhier does not have; write "
                "random effects as '(effects | factor)'."
            )
        elif "|" in piece:
            raise ValueError(
                f"The term {piece!r} has a bar outside parentheses: random effects are "
                "written '(effects | factor)', e.g. '(1 | g)' or '(x | g)'."
            )
        else:
            fixed.append(piece)
    fixed_text = " + ".join(fixed) if fixed else "1"
    _check_fixed(fixed_text, formula)
    names = [_split_top(inner, "|")[-1].strip() for inner, _ in terms]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"The factor {repeated[0]!r} has two random-effect terms; skhier fits one term "
            "per factor. Write its effects in one term, e.g. '(x | g)' (correlated) or "
            "'(x || g)' (independent) instead of '(1 | g) + (0 + x | g)'."
        )
    terms = [_random_term(inner, piece) for inner, piece in terms]
    if len({t.correlated for t in terms}) > 1:
        raise ValueError(
            "The formula mixes '|' and '||' terms; skhier's correlated_effects applies to "
            "every factor. Use '|' in every term (correlated effects) or '||' in every "
            f"term (independent effects): {[t.text for t in terms]}."
        )
    return Formula(lhs=lhs, fixed=fixed_text, terms=tuple(terms))


def _check_fixed(fixed: str, formula: str) -> None:
    parts = [p.replace(" ", "") for p in _split_top(fixed.replace("-", "+-"), "+")]
    if any(p in ("0", "-1") for p in parts):
        raise ValueError(
            f"formula={formula!r} removes the fixed intercept ('0 +' or '- 1'); skhier's "
            "models always have a population intercept (mu_a). Leave it in the formula."
        )


def _random_term(inner: str, text: str) -> RandomTerm:
    pieces = _split_top(inner, "||")
    correlated = len(pieces) == 1
    effects, factor = pieces if not correlated else _split_top(inner, "|")
    parts = [p.replace(" ", "") for p in _split_top(effects.replace("-", "+-"), "+")]
    parts = [p for p in parts if p]
    if any(p in ("0", "-1") for p in parts):
        raise ValueError(
            f"The term {text!r} removes the random intercept ('0 +' or '- 1'); skhier's "
            "group effects always include one. Write the term with it, e.g. '(x | g)'."
        )
    slopes = tuple(p for p in parts if p != "1")
    for s in slopes:
        if not _NAME.match(s):
            raise ValueError(
                f"The term {text!r} has the random slope {s!r}; random slopes name numeric "
                "variables of the fixed part (transformations and categoricals are fixed "
                "effects only, for now)."
            )
    factor = factor.strip()
    chain = [f.strip() for f in factor.split("/")]
    combined = len(chain) == 1 and ":" in factor
    cols = tuple(f.strip() for f in factor.split(":")) if combined else tuple(chain)
    for c in cols:
        if not _NAME.match(c):
            raise ValueError(
                f"The term {text!r} groups by {factor!r}; a factor is a column name, "
                "'a/b' (b nested in a) or 'a:b' (the combinations of a and b)."
            )
    return RandomTerm(slopes, cols, combined, correlated, text)


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
