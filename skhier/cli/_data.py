"""The ``skhier`` command's data handling: reading CSV files, choosing the feature,
group and per-row columns, loading saved models, and the one-line errors
(:class:`CLIError`) that :func:`skhier.cli.main` reports."""

from __future__ import annotations

from pathlib import Path

from skhier import persistence
from skhier._precompile import estimator_classes

MODELS = {
    "regressor": "HierarchicalRegressor",
    "classifier": "HierarchicalClassifier",
    "poisson": "HierarchicalPoissonRegressor",
}


class CLIError(Exception):
    """An expected problem, reported as one line (the message names the fix)."""


def _rows(est, path, group_option, exposure):
    """``(data, X, kwargs)`` of a CSV for a prediction or plot: the model's feature
    and group columns (a formula model reads the columns its formula names)."""
    encoding = getattr(est, "formula_encoding_", None)
    if encoding is not None:
        if group_option:
            raise CLIError("the model reads its groups through its formula; omit --group.")
        groups = list(dict.fromkeys(c for t in encoding.formula.terms for c in t.factor))
        data = _read_csv(path, str_columns=groups if _string_labels(est) else ())
        X, kwargs = data, {}
    else:
        features, groups = _columns_of(est, group_option)
        data = _read_csv(path, str_columns=groups if _string_labels(est) else ())
        _require(data, features + groups + ([exposure] if exposure else []), path)
        X, kwargs = _design(est, data, features, groups)
    if exposure:
        _require(data, [exposure], path)
    return data, X, kwargs


def _read_csv(path, str_columns=()):
    """Read a CSV; group columns as strings (labels: "007" stays "007")."""
    import pandas as pd

    try:
        return pd.read_csv(path, dtype={c: str for c in str_columns})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        msg = " ".join(str(exc).split())
        raise CLIError(
            f"cannot read '{path}' as CSV ({msg}); give a comma-separated file."
        ) from None


def _require(data, columns, path):
    missing = [c for c in dict.fromkeys(columns) if c not in data.columns]
    if missing:
        raise CLIError(
            f"'{path}' has no column {_quoted(missing)}; its columns are {_quoted(data.columns)}."
        )


def _row_columns(args) -> dict:
    """The fit arguments given as columns (``--exposure``, ``--weights``,
    ``--trials``): parameter -> column name, each checked against ``--model``."""
    out = {}
    for flag, column, param, model in (
        ("--exposure", args.exposure, "exposure", "poisson"),
        ("--weights", getattr(args, "weights", None), "sample_weight", None),
        ("--trials", getattr(args, "trials", None), "trials", "classifier"),
    ):
        if column is None:
            continue
        if model is not None and args.model != model:
            raise CLIError(f"{flag} applies to --model {model} only.")
        out[param] = column
    return out


def _features(data, args, groups):
    import pandas as pd

    used = {args.target, *groups, *_row_columns(args).values()}
    if args.features:
        features = split_names(args.features, "--features")
        _require(data, features, args.data)
    else:
        features = [c for c in data.columns if c not in used]
    clash = [c for c in features if c in used]
    if clash:
        raise CLIError(f"column {_quoted(clash)} cannot be both a feature and the target/group.")
    text = [c for c in features if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        raise CLIError(
            f"feature column {_quoted(text)} is not numeric; encode it as numbers, or choose "
            "the features with --features a,b."
        )
    if not features:
        raise CLIError(f"'{args.data}' has no feature column besides the target and groups.")
    return features


def _load(path):
    """Load a skhier model, trusting only skhier's own types (skhier.persistence.load)."""
    if not Path(path).is_file():
        raise CLIError(f"model file '{path}' not found; create one with 'skhier fit'.")
    est = persistence.load(path)  # its ValueError is the one-line message
    if not isinstance(est, tuple(estimator_classes()[name] for name in MODELS.values())):
        raise CLIError(
            f"'{path}' holds a {type(est).__name__}, not a skhier model; "
            "create one with 'skhier fit'."
        )
    return est


def _columns_of(est, group_option, strict=True):
    """The model's feature columns and group column(s)."""
    features = getattr(est, "feature_names_in_", None)
    if features is None and strict:
        raise CLIError(
            "the model was fit without column names (a numpy X); fit it from a DataFrame "
            "(or with 'skhier fit') to use it here."
        )
    features = [] if features is None else [str(c) for c in features]
    if est.group_col is None:
        return features, [group_option] if group_option else []
    if group_option:
        raise CLIError(f"the model reads its groups from {_quoted(_names_of(est))}; omit --group.")
    return features, _names_of(est)


def _design(est, data, features, groups):
    """``X`` (with the group column(s) the model reads) and the ``groups=`` keyword."""
    if est.group_col is None:
        return data[features], ({"groups": data[groups[0]]} if groups else {})
    return data[features + groups], {}


def _names_of(est):
    return [est.group_col] if isinstance(est.group_col, str) else list(est.group_col)


def _string_labels(est):
    """Whether the model's group labels are strings (then read group columns as such)."""
    labels = getattr(est, "groups_", None)
    if labels is None and getattr(est, "group_effects_", None):
        labels = next(iter(est.group_effects_.values())).levels
    if labels is None or len(labels) == 0:
        return True
    first = labels[0]
    return isinstance(first[0] if isinstance(first, tuple) else first, str)


def split_names(text, flag):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CLIError(f"{flag} needs at least one column name.")
    return names


def _quoted(names):
    return ", ".join(f"'{n}'" for n in names)
