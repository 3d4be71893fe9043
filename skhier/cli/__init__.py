"""The ``skhier`` command: fit, predict with, summarize and plot models from CSV files.

A thin face over the public API: it parses arguments, reads CSV files with pandas,
calls the estimators (passing only the options the user gave, so every model default
stays the estimator's) and saves and loads them with :mod:`skhier.persistence`
(skops files, loaded only if they hold skhier's own types).  The subcommands live in
``skhier.cli._commands``; this module is the parser and the error handling.  Expected
problems (a missing file or column, a bad option value, a file that is not a skhier
model) end with one ``skhier: error: ...`` line on stderr and exit status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings

from skhier._version import __version__
from skhier.cli._commands import (
    MODELS,
    PARAM_OPTIONS,
    UNSET,
    CLIError,
    run_fit,
    run_plot,
    run_predict,
    run_summary,
    split_names,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one "skhier: error:" line, as for every other problem
        self.print_usage(sys.stderr)
        self.exit(2, f"skhier: error: {message} (see '{self.prog} --help')\n")


def main(argv: list[str] | None = None) -> int:
    """Run the ``skhier`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status (0: success, 1: an error, 2: a usage error), having
    printed any error as one ``skhier: error: ...`` line on stderr; ``--help`` and
    ``--version`` return 0.  It never raises ``SystemExit``.
    """
    try:
        args = _build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's --help, --version and usage errors
        return 0 if exc.code is None else int(exc.code)
    try:
        with _one_line_warnings():
            return args.func(args) or 0
    except CLIError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)
    except BrokenPipeError:  # e.g. `skhier predict ... | head`
        sys.stderr.close()
        return 0
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        return _fail(f"{exc.strerror}: '{exc.filename}'; check the path.")
    except (ValueError, TypeError) as exc:  # skhier's and pandas' messages are user-facing
        return _fail(" ".join(str(exc).split()))


def _fail(message, status=1):
    print(f"skhier: error: {message}", file=sys.stderr)
    return status


@contextlib.contextmanager
def _one_line_warnings():
    """Show warnings as one line on stderr (no source line)."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"skhier: warning: {category.__name__}: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        # a third-party notice at import time, not a problem of the user's model
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        warnings.showwarning = show
        yield


# ------------------------------------------------------------------ parser
def _slopes(text):
    """--random-slopes: all, none, or a comma list of feature names."""
    if text in ("all", "none"):
        return {"all": "all", "none": None}[text]
    return split_names(text, "--random-slopes")


def _probability(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (e.g. 0.9), got {text}")
    return value


def _draws_kept(text):
    return text if text in ("auto", "all") else int(text)


_EPILOG = """\
examples:
  skhier fit sleep.csv --target Reaction --group Subject -o sleep.skops
  skhier predict sleep.skops new.csv --interval 0.9 -o predictions.csv
  skhier summary sleep.skops
  skhier plot sleep.skops --kind shrinkage --data sleep.csv --target Reaction -o shrink.png
"""


def _build_parser():
    parser = _Parser(
        prog="skhier",
        description="Bayesian hierarchical (multilevel) models from CSV files.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skhier {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    fit = sub.add_parser(
        "fit",
        help="fit a model to a CSV file and save it",
        description="Fit a hierarchical model to a CSV file and save it with skops. The "
        "group column(s) are stored in the model, so 'skhier predict' reads them from "
        "new files. Options not given keep the estimator's defaults.",
    )
    fit.add_argument("data", help="training data (CSV with a header row)")
    fit.add_argument(
        "--formula",
        help="the model as an lme4 formula, e.g. 'Reaction ~ Days + (Days | Subject)' (then "
        "--group, --features, --random-slopes and --nested come from it)",
    )
    fit.add_argument("--target", help="column to predict (required without --formula)")
    fit.add_argument(
        "--group", help="group column; a comma list for several grouping factors (required "
        "without --formula)"
    )
    fit.add_argument(
        "--features",
        help="comma list of feature columns (default: every other column; they must be numeric)",
    )
    fit.add_argument(
        "--random-slopes",
        type=_slopes,
        default=UNSET,
        metavar="all|none|a,b",
        help="features whose slopes vary by group (estimator default: all)",
    )
    fit.add_argument(
        "--model",
        choices=list(MODELS),
        default="regressor",
        help="regressor (default): continuous target; classifier: two classes; poisson: counts",
    )
    nesting = fit.add_mutually_exclusive_group()
    nesting.add_argument(
        "--nested",
        action="store_const",
        const=True,
        dest="nested",
        help="several groups: each column nested in the previous one (e.g. school,class)",
    )
    nesting.add_argument(
        "--crossed",
        action="store_const",
        const=False,
        dest="nested",
        help="several groups: crossed factors",
    )
    fit.add_argument(
        "--independent-effects",
        action="store_const",
        const=False,
        dest="correlated_effects",
        help="group intercepts and slopes uncorrelated (lme4's (x || g))",
    )
    fit.add_argument("--exposure", help="poisson: column of exposures (time or size observed)")
    fit.add_argument(
        "--weights", help="column of frequency weights (a row of weight w counts as w rows)"
    )
    fit.add_argument(
        "--trials",
        help="classifier: column of trials per row; the target is then the successes",
    )
    for flag, param, type_, help_, models in PARAM_OPTIONS:
        suffix = f" ({', '.join(models)} only)" if models else ""
        fit.add_argument(
            flag,
            dest=param,
            type=type_ or _draws_kept,
            metavar=flag[2:].upper().replace("-", "_"),
            help=help_ + suffix,
        )
    fit.add_argument("-o", "--output", required=True, help="where to save the model (.skops)")
    fit.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    fit.set_defaults(func=run_fit)

    pred = sub.add_parser(
        "predict",
        help="predict for the rows of a CSV file",
        description="Write the rows of a CSV file with the model's predictions: 'prediction' "
        "(regressor: posterior mean; poisson: expected count; classifier: label, plus "
        "'probability_<class>' of the second class) and, with --interval, 'lower' and "
        "'upper'. The file needs the model's feature and group columns; groups not seen "
        "in training follow the model's unseen_groups setting.",
    )
    pred.add_argument("model", help="a model saved by 'skhier fit' (.skops)")
    pred.add_argument("data", help="CSV with the model's feature and group columns")
    pred.add_argument(
        "--interval",
        type=_probability,
        metavar="P",
        help="add a P credible interval (e.g. 0.9): predictive for regressor and poisson, "
        "of the probability for classifier",
    )
    pred.add_argument("--exposure", help="poisson: column of exposures")
    pred.add_argument("--group", help="group column, for a model saved without group_col")
    pred.add_argument("-o", "--output", help="output CSV (default or '-': stdout)")
    _precision_options(pred)
    pred.set_defaults(func=run_predict)

    summ = sub.add_parser(
        "summary",
        help="print the posterior summary of a model",
        description="Print the posterior summary (mean, sd, credible interval, r_hat, bulk "
        "ESS) of the population-level parameters, and the convergence report.",
    )
    summ.add_argument("model", help="a model saved by 'skhier fit' (.skops)")
    summ.add_argument(
        "--groups",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also list every group's parameters a[g], b[g, feature]",
    )
    summ.add_argument("-o", "--output", help="write the table as CSV instead of printing it")
    _precision_options(summ)
    summ.set_defaults(func=run_summary)

    plot = sub.add_parser(
        "plot",
        help="draw a diagnostic figure of a model",
        description="shrinkage: each group's estimate against its own data; forest: group "
        "effects with credible intervals; ppc: posterior predictive check. shrinkage and "
        "ppc need the training data (--data, --target).",
    )
    plot.add_argument("model", help="a model saved by 'skhier fit' (.skops)")
    plot.add_argument("--kind", required=True, choices=["shrinkage", "forest", "ppc"])
    plot.add_argument("--data", help="training data (CSV), for shrinkage and ppc")
    plot.add_argument("--target", help="target column of --data")
    plot.add_argument("--effect", help="'intercept' or a feature name (shrinkage, forest)")
    plot.add_argument("--exposure", help="poisson: column of exposures in --data")
    plot.add_argument("--factor", help="forest: which grouping factor, for several")
    plot.add_argument("--max-groups", type=int, help="forest: show at most this many groups")
    plot.add_argument("--dpi", type=int, default=150, help="resolution (default 150)")
    plot.add_argument("-o", "--output", required=True, help="image file (.png, .pdf, .svg)")
    plot.set_defaults(func=run_plot)

    pre = sub.add_parser(
        "precompile",
        help="compile every kernel ahead of time (Docker images, cluster workers)",
        description="Compile (or load) every specialisation of skhier's numba kernels into "
        "the kernel cache ($NUMBA_CACHE_DIR if set, else $SKHIER_CACHE_DIR, else the user cache "
        "directory), so that no "
        "later fit on this machine waits for compilation. Takes a few minutes.",
    )
    pre.add_argument("--jobs", type=int, default=1, help="processes compiling at once (default 1)")
    pre.add_argument("--quiet", action="store_true", help="print nothing but errors")
    pre.set_defaults(func=_run_precompile)
    return parser


def _precision_options(parser):
    parser.add_argument(
        "--digits",
        type=int,
        default=6,
        help="significant digits of the numbers skhier writes to CSV (default 6; the input "
        "columns of predict stay as read; the printed summary shows each parameter to two "
        "significant digits of its sd)",
    )
    parser.add_argument(
        "--full-precision",
        action="store_true",
        help="write and print every number with all its digits",
    )


def _run_precompile(args) -> int:
    from skhier._precompile import precompile

    if args.jobs < 1:
        raise CLIError(f"--jobs must be at least 1; got {args.jobs}.")
    import time

    start = time.perf_counter()
    seconds = precompile(jobs=args.jobs, verbose=not args.quiet)
    if not args.quiet:
        print(f"{len(seconds)} specialisations ready in {time.perf_counter() - start:.0f} s")
    return 0
