"""The random-effect terms of lme4's formula syntax, parsed: ``y ~ fixed + (x | g)``
into the target, the fixed part (left to formulaic) and the terms
(:class:`RandomTerm`).  Pure Python: no formulaic needed to parse."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
