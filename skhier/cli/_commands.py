"""The ``skhier`` command's subcommands: what ``fit``, ``predict``, ``summary`` and
``plot`` do once :mod:`skhier.cli` has parsed the arguments.

They use only the public API: the estimators (given only the options the user passed,
so every default stays the estimator's), :mod:`skhier.persistence` and
:mod:`skhier.plot`.  An expected problem raises :class:`CLIError` (or the
``ValueError`` / ``TypeError`` of the estimator or pandas), which :func:`skhier.cli.main`
reports as one line.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

from skhier import persistence
from skhier._precompile import estimator_classes
from skhier.cli._data import (
    MODELS,
    CLIError,
    _columns_of,
    _features,
    _load,
    _quoted,
    _read_csv,
    _require,
    _row_columns,
    _rows,
    split_names,
)
from skhier.exceptions import UnseenGroupWarning

# (flag, constructor parameter, type, help, models it applies to (None: all))
PARAM_OPTIONS = [
    ("--draws", "draws", int, "posterior draws per chain", None),
    ("--tune", "tune", int, "warm-up iterations per chain", None),
    ("--chains", "chains", int, "number of independent chains", None),
    ("--seed", "random_state", int, "random seed: the same seed gives the same model", None),
    ("--engine", "engine", str, "sampling engine (see the estimator's docs)", None),
    ("--target-accept", "target_accept", float, "NUTS target acceptance rate", None),
    ("--store-draws", "store_draws", None, "joint draws kept in the model: auto, all or N", None),
    ("--interval-prob", "interval_prob", float, "mass of the stored credible intervals", None),
    (
        "--unseen-groups",
        "unseen_groups",
        str,
        "new groups at prediction: warn, population or raise",
        None,
    ),
    ("--prior-intercept-sd", "prior_intercept_sd", float, "prior SD of the intercept", None),
    ("--prior-coef-sd", "prior_coef_sd", float, "prior SD of each population slope", None),
    ("--prior-group-sd", "prior_group_sd", float, "prior mean of each group-level SD", None),
    ("--likelihood", "likelihood", str, "noise: normal or student_t", ("regressor",)),
    ("--inference", "inference", str, "auto, nuts, importance or laplace", ("regressor",)),
    ("--prior-noise-sd", "prior_noise_sd", float, "prior mean of the noise SD", ("regressor",)),
    ("--family", "family", str, "poisson or negative_binomial", ("poisson",)),
]


UNSET = object()  # --random-slopes not given (None means "none")


def run_fit(args) -> int:
    if args.formula is not None:
        return _fit_formula(args)
    for flag, value in (("--target", args.target), ("--group", args.group)):
        if value is None:
            raise CLIError(f"{flag} is required (or give the model as --formula).")
    groups = split_names(args.group, "--group")
    row_columns = _row_columns(args)
    for flag, param, _, _, models in PARAM_OPTIONS:
        if models and args.model not in models and getattr(args, param) is not None:
            raise CLIError(f"{flag} applies to --model {' or '.join(models)} only.")
    out = Path(args.output)
    if not out.parent.is_dir():  # before a long fit, not after it
        raise CLIError(f"cannot write '{out}': folder '{out.parent}' does not exist.")

    data = _read_csv(args.data, str_columns=groups)
    _require(data, [args.target, *groups, *row_columns.values()], args.data)
    features = _features(data, args, groups)
    params = {p: getattr(args, p) for _, p, *_ in PARAM_OPTIONS if getattr(args, p) is not None}
    for param in ("nested", "correlated_effects"):
        if getattr(args, param) is not None:
            params[param] = getattr(args, param)
    if args.random_slopes is not UNSET:
        params["random_slopes"] = args.random_slopes
    params["group_col"] = groups[0] if len(groups) == 1 else groups
    if not args.quiet and sys.stderr.isatty():
        params["progressbar"] = True
    est = estimator_classes()[MODELS[args.model]](**params)
    fit_params = {param: data[col].to_numpy() for param, col in row_columns.items()}

    _say(
        args,
        f"Fitting {type(est).__name__} to {len(data)} rows of '{args.data}': target "
        f"'{args.target}', group column(s) {_quoted(groups)}, features {_quoted(features)} ...",
    )
    start = time.perf_counter()
    try:
        est.fit(data[features + groups], data[args.target], **fit_params)
    except (ValueError, TypeError) as exc:  # name the option of a bad parameter value
        flags = [f for f, p, *_ in PARAM_OPTIONS if str(exc).startswith(f"The '{p}' parameter")]
        if not flags:
            raise
        raise CLIError(f"{flags[0]}: {' '.join(str(exc).split())}") from None
    _say(args, f"Fitted in {time.perf_counter() - start:.1f} s. {_convergence(est)}")
    persistence.dump(est, out)
    _say(args, f"Saved the model to '{out}'.")
    return 0


def run_predict(args) -> int:
    est = _load(args.model)
    data, X, kwargs = _rows(est, args.data, args.group, args.exposure)
    if args.exposure:
        if not hasattr(est, "family"):
            raise CLIError("--exposure applies to a poisson model only.")
        kwargs["exposure"] = data[args.exposure].to_numpy()
    elif hasattr(est, "family"):
        print(
            "skhier: note: without --exposure, predictions are expected counts per unit of "
            "exposure; pass --exposure COL for each row's count over its own exposure.",
            file=sys.stderr,
        )
    out = data.copy()
    out["prediction"] = est.predict(X, **kwargs)
    with warnings.catch_warnings():  # the first call said it: no repeats
        warnings.simplefilter("ignore", UnseenGroupWarning)
        if hasattr(est, "classes_"):
            out[f"probability_{est.classes_[1]}"] = est.predict_proba(X, **kwargs)[:, 1]
            if args.interval is not None:
                bounds = est.predict_proba_interval(X, prob=args.interval, **kwargs)
                out["lower"], out["upper"] = bounds[:, 0], bounds[:, 1]
        elif args.interval is not None:
            bounds = est.predict_interval(X, prob=args.interval, **kwargs)
            out["lower"], out["upper"] = bounds[:, 0], bounds[:, 1]
    fmt = _float_format(args)
    if fmt is not None:  # the columns skhier adds; the user's own stay as they were read
        for col in out.columns.difference(data.columns):
            if out[col].dtype.kind == "f":
                out[col] = [fmt % v for v in out[col]]
    if args.output in (None, "-"):
        out.to_csv(sys.stdout, index=False)
    else:
        out.to_csv(args.output, index=False)
    return 0


def run_summary(args) -> int:
    fmt = _float_format(args)
    est = _load(args.model)
    table = est.summary(group_level=args.groups)
    if args.output:
        table.to_csv(args.output, index_label="parameter", float_format=fmt)
        return 0
    encoding = getattr(est, "formula_encoding_", None)
    if encoding is not None:
        print(f"{type(est).__name__}: formula {est.formula!r}")
    else:
        features, groups = _columns_of(est, None, strict=False)
        print(f"{type(est).__name__}: features {_quoted(features)}, group column(s) "
              f"{_quoted(groups)}")  # fmt: skip
    print(table.to_string(float_format=repr) if args.full_precision else (
        readable_summary(table).to_string()))  # fmt: skip
    print(_convergence(est))
    return 0


def _float_format(args):
    """CSV float format of ``--digits`` / ``--full-precision``."""
    if args.full_precision:
        return None
    if args.digits < 1:
        raise CLIError(f"--digits must be at least 1; got {args.digits}.")
    return f"%.{args.digits}g"


def readable_summary(table):
    """The summary as text, each row to the precision its uncertainty warrants: its
    mean, sd and interval with the decimals of two significant digits of its sd
    (251.2 and 7.3 beside 0.084 and 0.27, not 251.2 beside 0.08407); r_hat with 3
    decimals, ESS as a whole number."""
    import numpy as np
    import pandas as pd

    values = [c for c in table.columns if c not in ("r_hat", "ess_bulk")]
    out = pd.DataFrame(index=table.index)
    sd = table["sd"].to_numpy(dtype=float) if "sd" in table else np.ones(len(table))
    with np.errstate(divide="ignore", invalid="ignore"):
        decimals = np.clip(1 - np.floor(np.log10(np.abs(sd))), 0, 8)
    decimals = np.where(np.isfinite(decimals), decimals, 3).astype(int)
    for col in values:
        out[col] = [
            "" if not np.isfinite(v) else f"{v:.{d}f}"
            for v, d in zip(table[col].to_numpy(dtype=float), decimals, strict=True)
        ]
    if "r_hat" in table:
        out["r_hat"] = [f"{v:.3f}" if np.isfinite(v) else "" for v in table["r_hat"]]
    if "ess_bulk" in table:
        out["ess_bulk"] = [f"{v:.0f}" if np.isfinite(v) else "" for v in table["ess_bulk"]]
    return out


def run_plot(args) -> int:
    est = _load(args.model)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from skhier import plot
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "matplotlib":
            raise CLIError('plotting needs matplotlib: pip install "skhier[plot]"') from None
        if exc.name == "skhier.plot":
            raise CLIError("this version of skhier has no plotting module (skhier.plot).") from None
        raise
    options = {} if args.effect is None else {"effect": args.effect}
    if args.kind == "forest":
        for name in ("factor", "max_groups"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        ax = plot.plot_forest(est, **options)
    else:
        if args.data is None or args.target is None:
            raise CLIError(f"--kind {args.kind} needs the training data: --data FILE --target COL.")
        data, X, kwargs = _rows(est, args.data, None, args.exposure)
        _require(data, [args.target], args.data)
        if args.exposure:
            kwargs["exposure"] = data[args.exposure].to_numpy()
        y = data[args.target]
        if args.kind == "shrinkage":
            ax = plot.plot_shrinkage(est, X, y, **kwargs, **options)
        else:
            ax = plot.plot_ppc(est, X, y, **kwargs)
    ax.figure.savefig(args.output, dpi=args.dpi, bbox_inches="tight")
    return 0


def _fit_formula(args) -> int:
    """``skhier fit --formula``: the target, features and groups come from the formula."""
    from skhier._core.formula import parse

    given = [f for f, v in (("--group", args.group), ("--features", args.features),
             ("--nested", args.nested)) if v is not None]  # fmt: skip
    if args.random_slopes is not UNSET:
        given.append("--random-slopes")
    if given:
        raise CLIError(f"{', '.join(given)}: the formula sets these; omit them.")
    try:
        parsed = parse(args.formula)
    except ValueError as exc:
        raise CLIError(f"--formula: {exc}") from None
    if parsed.lhs is None and args.target is None:
        raise CLIError("--formula has no target ('y ~ ...'): write one, or give --target.")
    groups = list(dict.fromkeys(c for t in parsed.terms for c in t.factor))
    if not Path(args.output).parent.is_dir():  # before a long fit, not after it
        raise CLIError(f"cannot write '{args.output}': its folder does not exist.")
    data = _read_csv(args.data, str_columns=groups)
    params = {p: getattr(args, p) for _, p, *_ in PARAM_OPTIONS if getattr(args, p) is not None}
    if args.correlated_effects is not None:
        raise CLIError("--correlated-effects: the formula sets it ('|' or '||'); omit it.")
    est = estimator_classes()[MODELS[args.model]](formula=args.formula, **params)
    row_columns = _row_columns(args)
    _require(data, list(row_columns.values()), args.data)
    fit_params = {param: data[col].to_numpy() for param, col in row_columns.items()}
    y = None if args.target is None else data[args.target]
    _say(args, f"Fitting {type(est).__name__} to {len(data)} rows of '{args.data}': "
               f"{args.formula} ...")  # fmt: skip
    start = time.perf_counter()
    try:
        est.fit(data, y, **fit_params)
    except (ValueError, TypeError) as exc:
        raise CLIError(" ".join(str(exc).split())) from None
    _say(args, f"Fitted in {time.perf_counter() - start:.1f} s. {_convergence(est)}")
    persistence.dump(est, Path(args.output))
    _say(args, f"Saved the model to '{args.output}'.")
    return 0


# ----------------------------------------------------------------- helpers


def _convergence(est):
    conv = getattr(est, "convergence_", {})
    parts = [f"method {conv['method']}"] if "method" in conv else []
    if "n_chains" in conv and "n_draws" in conv:
        parts.append(f"{conv['n_chains']} chains x {conv['n_draws']} draws")
    labels = [
        ("max_r_hat", "max r_hat {:.3f}"),
        ("min_ess_bulk", "min bulk ESS {:.0f}"),
        ("n_divergences", "{} divergent transitions"),
        ("n_max_treedepth", "{} at max tree depth"),
        ("pareto_k", "pareto k {:.2f}"),
    ]
    parts += [
        fmt.format(conv[key]) for key, fmt in labels if key in conv and conv[key] == conv[key]
    ]
    if conv.get("fallback"):
        parts.append(f"fallback: {conv['fallback']}")
    return "Convergence: " + ", ".join(parts) + "."


def _say(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)
