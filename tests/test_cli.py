"""The ``skhier`` command.

A few runs go end to end through the installed console script (and ``python -m
skhier``); each spends seconds importing scikit-learn, so they are started together
in one fixture.  Every other case calls :func:`skhier.cli.main` in this process and
checks the same things: the exit status, the one ``skhier: error:`` line, no
traceback.
"""

import importlib.util
import io
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import skhier
import skhier.exceptions
from skhier import persistence
from skhier.cli import main
from skhier.datasets import load_egsingle, load_sleepstudy

SAMPLING = ["--draws", "50", "--tune", "50", "--chains", "1", "--seed", "0"]
NO_MATPLOTLIB = importlib.util.find_spec("matplotlib") is None
# skhier's own warnings, which the command shows as one line each; any other warning
# stays an error (pytest's filterwarnings)
SKHIER_WARNINGS = [
    c for c in vars(skhier.exceptions).values() if isinstance(c, type) and issubclass(c, Warning)
]


class Result:
    """What a run of the command left: ``returncode``, ``stdout``, ``stderr``."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def skhier_command():
    found = shutil.which("skhier", path=str(Path(sys.executable).parent))
    assert found, "the `skhier` console script is missing: reinstall the package (pip install .)"
    return found


def start(*args, module=False):
    """Start the installed command (or ``python -m skhier``) in a new process."""
    command = [sys.executable, "-m", "skhier"] if module else [skhier_command()]
    return subprocess.Popen(
        [*command, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process):
    stdout, stderr = process.communicate(timeout=600)
    return Result(process.returncode, stdout, stderr)


@pytest.fixture
def cli(capsys):
    """Run ``skhier.cli.main`` in this process, as the console script would."""

    def run(*args):
        capsys.readouterr()
        with warnings.catch_warnings():
            for category in SKHIER_WARNINGS:  # shown once, as outside pytest
                warnings.simplefilter("default", category)
            status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(status, out, err)

    return run


def assert_ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def assert_error(result, *words):
    """One ``skhier: error:`` line naming ``words``, a failing status, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("skhier: error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]


def read_sleep(path):
    return pd.read_csv(path, dtype={"Subject": str})  # the command reads group labels as text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def sleep_csv(workdir):
    path = workdir / "sleep.csv"
    load_sleepstudy().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def foreign_models(workdir):
    """skops files of objects that are not skhier models."""
    import os

    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import FunctionTransformer

    unsafe, plain = workdir / "unsafe.skops", workdir / "plain.skops"
    persistence.dump(FunctionTransformer(func=os.system), unsafe)  # a function it would call
    persistence.dump(LinearRegression(), plain)  # only types skops trusts; not a skhier model
    return unsafe, plain


@pytest.fixture(scope="module")
def runs(workdir, sleep_csv, foreign_models):
    """The runs of the installed command: a regressor's fit, then predict, summary and
    plot with it; ``--version``, ``python -m skhier`` and a refused file alongside."""
    model = workdir / "model.skops"
    first = {
        "fit": start(
            "fit", sleep_csv, "--target", "Reaction", "--group", "Subject", *SAMPLING, "-o", model
        ),
        "version": start("--version"),
        "module": start("--version", module=True),
        "error": start("predict", foreign_models[0], sleep_csv),
    }
    results = {name: finish(p) for name, p in first.items()}
    assert_ok(results["fit"])
    second = {
        "predict": start(
            "predict", model, sleep_csv, "--interval", "0.9", "-o", workdir / "pred.csv"
        ),
        "summary": start("summary", model),
    }
    if not NO_MATPLOTLIB:
        second["plot"] = start("plot", model, "--kind", "forest", "-o", workdir / "forest.png")
    results.update({name: finish(p) for name, p in second.items()})
    return model, results


@pytest.fixture(scope="module")
def fitted(runs):
    return runs[0]


# ------------------------------------------------- through the installed command
def test_fit_saves_the_model_and_reports_progress_and_convergence(runs):
    path, results = runs
    result = results["fit"]
    assert_ok(result)
    assert "Fitting HierarchicalRegressor to 180 rows" in result.stderr
    assert "Fitted in" in result.stderr and "Convergence: method" in result.stderr
    est = persistence.load(path)
    assert isinstance(est, skhier.HierarchicalRegressor)
    assert est.group_col == "Subject" and list(est.feature_names_in_) == ["Days"]
    assert (est.draws, est.tune, est.chains, est.random_state) == (50, 50, 1, 0)
    assert est.progressbar is False  # not a terminal; other parameters stay the defaults
    assert est.get_params()["random_slopes"] == "all"


def test_predict_writes_the_rows_with_predictions_and_intervals(runs, sleep_csv, workdir):
    path, results = runs
    assert_ok(results["predict"])
    data, pred = read_sleep(sleep_csv), read_sleep(workdir / "pred.csv")
    assert list(pred.columns) == [*data.columns, "prediction", "lower", "upper"]
    pd.testing.assert_frame_equal(pred[data.columns], data)
    est = persistence.load(path)
    X = data[["Days", "Subject"]]
    np.testing.assert_allclose(pred["prediction"], est.predict(X), rtol=1e-5)  # 6 digits
    np.testing.assert_allclose(
        pred[["lower", "upper"]], est.predict_interval(X, prob=0.9), rtol=1e-5
    )
    assert all(len(v.replace(".", "").lstrip("0")) <= 6 for v in _column_text(workdir / "pred.csv"))
    assert (pred["lower"] < pred["prediction"]).all()
    assert (pred["prediction"] < pred["upper"]).all()


def test_summary_prints_the_population_parameters_and_convergence(runs, cli, workdir):
    path, results = runs
    result = results["summary"]
    assert_ok(result)
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:]}
    for name in ("mu_a", "mu_b[Days]", "sigma_a", "sigma_b[Days]", "eps"):
        assert name in rows
    assert not any(name.startswith("a[") for name in rows)
    table = persistence.load(path).summary(group_level=False)
    for name in ("mu_a", "eps"):  # mean and sd to two significant digits of the sd
        mean, sd = rows[name][:2]
        decimals = len(sd.split(".")[1]) if "." in sd else 0
        assert len(mean.split(".")[1] if "." in mean else "") == decimals
        assert abs(float(mean) - table.loc[name, "mean"]) <= 0.5 * 10.0**-decimals
        assert abs(float(sd) - table.loc[name, "sd"]) <= 0.5 * 10.0**-decimals
        assert len(sd.replace(".", "").lstrip("0")) == 2
    assert result.stdout.splitlines()[-1].startswith("Convergence: method nuts, 1 chains")

    with_groups = cli("summary", path, "--groups")
    assert_ok(with_groups)
    assert "a[308]" in with_groups.stdout and "b[308, Days]" in with_groups.stdout
    out = workdir / "summary.csv"
    assert_ok(cli("summary", path, "-o", out))
    saved = pd.read_csv(out, index_col="parameter")
    np.testing.assert_allclose(saved.to_numpy(), table.to_numpy(), rtol=1e-5)
    assert_ok(cli("summary", path, "-o", out, "--full-precision"))
    saved = pd.read_csv(out, index_col="parameter")
    np.testing.assert_allclose(saved.to_numpy(), table.to_numpy(), rtol=1e-15)
    assert cli("summary", path, "--digits", "0").returncode == 1


def _column_text(path):
    """The numbers of a CSV file's last three columns, as written."""
    lines = path.read_text().splitlines()[1:]
    return [v for line in lines for v in line.split(",")[-3:]]


def assert_png(path):
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(NO_MATPLOTLIB, reason="matplotlib is an optional dependency")
def test_plot_writes_a_png(runs, workdir):
    assert_ok(runs[1]["plot"])
    assert_png(workdir / "forest.png")


def test_a_refused_file_is_one_error_line_and_a_failing_status(runs):
    assert_error(runs[1]["error"], "refusing", "system")


def test_version_and_python_m(runs):
    version, module = runs[1]["version"], runs[1]["module"]
    assert_ok(version)
    assert version.stdout.strip() == f"skhier {skhier.__version__}"
    assert_ok(module)
    assert module.stdout.strip() == version.stdout.strip()


# ------------------------------------------------------------ in this process
def test_main_returns_the_status_of_help_version_and_usage_errors(cli):
    help_ = cli("fit", "--help")
    assert_ok(help_)
    assert help_.stdout.startswith("usage: skhier fit") and "--random-slopes" in help_.stdout
    assert cli("--version").returncode == 0
    no_command = cli()
    assert no_command.returncode == 2
    assert_error(no_command, "COMMAND")


def test_predict_to_stdout_warns_about_unseen_groups_in_one_line(fitted, cli, workdir):
    new = workdir / "new.csv"
    pd.DataFrame({"Days": [1, 2], "Subject": ["308", "999"], "other": ["a", "b"]}).to_csv(
        new, index=False
    )
    result = cli("predict", fitted, new)
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "Days,Subject,other,prediction" and len(lines) == 3
    warning_lines = result.stderr.strip().splitlines()
    assert len(warning_lines) == 1
    assert warning_lines[0].startswith("skhier: warning: UnseenGroupWarning:")
    assert "999" in warning_lines[0]


@pytest.mark.skipif(NO_MATPLOTLIB, reason="matplotlib is an optional dependency")
@pytest.mark.parametrize("kind", ["shrinkage", "ppc"])
def test_plot_with_the_training_data_writes_a_png(fitted, cli, sleep_csv, workdir, kind):
    import matplotlib.pyplot as plt

    out = workdir / f"{kind}.png"
    try:
        result = cli(
            "plot", fitted, "--kind", kind, "--data", sleep_csv, "--target", "Reaction", "-o", out
        )
    finally:
        plt.close("all")
    assert_ok(result)
    assert_png(out)


def test_plot_without_matplotlib_says_how_to_install_it(fitted, cli, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" fails
    result = cli("plot", fitted, "--kind", "forest", "-o", workdir / "x.png")
    assert_error(result, "matplotlib", "pip install")


def test_plot_needs_the_training_data_for_shrinkage(fitted, cli, workdir):
    result = cli("plot", fitted, "--kind", "shrinkage", "-o", workdir / "x.png")
    assert_error(result, "--data", "--target")


FIT = "fit {sleep} --target Reaction --group Subject -o {out}"


@pytest.mark.parametrize(
    "command, words",
    [
        ("fit {sleep} --target nope --group Subject -o {out}", ["nope"]),
        (FIT + " --features Dayz", ["Dayz"]),
        ("fit {dir}/missing.csv --target y --group g -o {out}", ["missing.csv"]),
        (FIT + " --draws 0", ["--draws"]),  # the estimator's check, naming the option
        (FIT + " --draws many", ["--draws", "many"]),  # argparse's
        (FIT + " --family poisson", ["--family", "poisson"]),
        (FIT.replace("{out}", "{dir}/nowhere/m.skops"), ["nowhere"]),
        ("predict {dir}/absent.skops {sleep}", ["absent.skops", "skhier fit"]),
        ("predict {sleep} {sleep}", ["not a skops file"]),
        ("predict {unsafe} {sleep}", ["refusing", "system"]),
        ("predict {plain} {sleep}", ["LinearRegression", "not a skhier model"]),
        ("predict {model} {dir}/absent.csv", ["absent.csv"]),
        ("predict {model} {sleep} --interval 1.5", ["--interval", "1.5"]),
        ("predict {model} {days_only}", ["Subject"]),
        ("predict {model} {sleep} --exposure Days", ["--exposure", "poisson"]),
    ],
)
def test_errors_are_one_line_without_traceback(
    command, words, cli, fitted, sleep_csv, workdir, foreign_models
):
    days_only = workdir / "days_only.csv"
    pd.DataFrame({"Days": [1, 2]}).to_csv(days_only, index=False)
    names = {
        "sleep": sleep_csv,
        "out": workdir / "never.skops",
        "dir": workdir,
        "model": fitted,
        "unsafe": foreign_models[0],
        "plain": foreign_models[1],
        "days_only": days_only,
    }
    assert_error(cli(*(a.format(**names) for a in command.split())), *words)
    assert not (workdir / "never.skops").exists()


def test_classifier_with_nested_grouping_factors(cli, workdir):
    data = load_egsingle()
    data = data[data["schoolid"].isin(data["schoolid"].unique()[:8])]
    data = data.assign(passed=(data["math"] > 0).astype(int)).drop(columns="math")
    csv, model = workdir / "schools.csv", workdir / "schools.skops"
    data.to_csv(csv, index=False)
    common = ["fit", csv, "--target", "passed", "--group", "schoolid,childid", "--nested"]
    # a text column among the default features is named, with the way out
    assert_error(cli(*common, "-o", model), "female", "--features")
    assert_ok(cli(*common, "--features", "year", "--model", "classifier", *SAMPLING, "-o", model))

    out = workdir / "schools-pred.csv"
    assert_ok(cli("predict", model, csv, "--interval", "0.8", "-o", out))
    pred = pd.read_csv(out, dtype={"schoolid": str, "childid": str})
    assert list(pred.columns[-4:]) == ["prediction", "probability_1", "lower", "upper"]
    est = persistence.load(model)
    assert isinstance(est, skhier.HierarchicalClassifier)
    assert est.factors_ == ("schoolid", "childid")
    X = pred[["year", "schoolid", "childid"]]
    np.testing.assert_allclose(pred["probability_1"], est.predict_proba(X)[:, 1], rtol=1e-5)
    np.testing.assert_array_equal(pred["prediction"], est.predict(X))
    assert (
        (pred["lower"] <= pred["probability_1"]) & (pred["probability_1"] <= pred["upper"])
    ).all()
    summary = cli("summary", model)
    assert_ok(summary)
    assert "sigma_a[schoolid]" in summary.stdout


def test_poisson_with_exposure(cli, sleep_csv, workdir):
    data = read_sleep(sleep_csv)
    data = data.assign(hours=1.0 + data["Days"] % 3)
    data = data.assign(count=np.round(data["Reaction"] / 100 * data["hours"]).astype(int))
    csv, model = workdir / "counts.csv", workdir / "counts.skops"
    data.to_csv(csv, index=False)
    fit = ["fit", csv, "--target", "count", "--group", "Subject", "--features", "Days"]
    assert_ok(cli(*fit, "--model", "poisson", "--exposure", "hours", *SAMPLING, "-o", model))
    est = persistence.load(model)
    assert isinstance(est, skhier.HierarchicalPoissonRegressor)
    X, exposure = data[["Days", "Subject"]], data["hours"].to_numpy()

    out = workdir / "counts-pred.csv"
    result = cli("predict", model, csv, "--exposure", "hours", "--interval", "0.9", "-o", out)
    assert_ok(result)
    assert result.stderr == ""
    pred = read_sleep(out)
    np.testing.assert_allclose(pred["prediction"], est.predict(X, exposure=exposure), rtol=1e-5)
    assert (pred["lower"] <= pred["upper"]).all()

    # without --exposure: counts per unit of exposure, and a note saying so
    per_unit = cli("predict", model, csv)
    assert_ok(per_unit)
    notes = per_unit.stderr.strip().splitlines()
    assert len(notes) == 1 and notes[0].startswith("skhier: note:")
    assert "per unit of exposure" in notes[0] and "--exposure COL" in notes[0]
    pred = pd.read_csv(io.StringIO(per_unit.stdout), dtype={"Subject": str})
    np.testing.assert_allclose(pred["prediction"], est.predict(X), rtol=1e-5)


def test_fit_predict_and_summary_with_a_formula(cli, sleep_csv, workdir):
    pytest.importorskip("formulaic")
    model = workdir / "formula.skops"
    formula = "Reaction ~ Days + (Days | Subject)"
    result = cli("fit", sleep_csv, "--formula", formula, *SAMPLING, "-o", model)
    assert_ok(result)
    assert formula in result.stderr
    est = persistence.load(model)
    assert est.formula == formula and est.group_col is None
    result = cli("predict", model, sleep_csv, "-o", workdir / "formula.csv")
    assert_ok(result)
    pred = pd.read_csv(workdir / "formula.csv")["prediction"]
    rows = pd.read_csv(sleep_csv, dtype={"Subject": str})  # labels as the command reads them
    np.testing.assert_allclose(pred, est.predict(rows), rtol=1e-5)  # 6 digits written
    assert f"formula {formula!r}" in cli("summary", model).stdout
    result = cli("fit", sleep_csv, "--formula", formula, "--group", "Subject", "-o", model)
    assert result.returncode != 0 and "--group: the formula sets these" in result.stderr
    result = cli("fit", sleep_csv, "-o", model)
    assert result.returncode != 0 and "--target is required" in result.stderr


@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
def test_binomial_trials_and_weights_from_columns(cli, workdir):
    """--trials (classifier: the target holds the successes) and --weights (any model)
    name columns; the saved model is the fit with those arguments."""
    from skhier.datasets import load_cbpp

    data = load_cbpp().assign(w=2.0)
    csv, model = workdir / "cbpp.csv", workdir / "cbpp.skops"
    data.to_csv(csv, index=False)
    fit = ["fit", csv, "--target", "incidence", "--group", "herd", "--features", "period"]
    opts = ["--random-slopes", "none", *SAMPLING, "-o", model]
    assert_ok(cli(*fit, "--model", "classifier", "--trials", "size", "--weights", "w", *opts))
    est = persistence.load(model)
    frame = data[["period", "herd"]].astype({"herd": str})  # (the command reads labels as text)
    ref = skhier.HierarchicalClassifier(**est.get_params()).fit(
        frame, data["incidence"], trials=data["size"], sample_weight=data["w"]
    )
    np.testing.assert_allclose(est.coef_, ref.coef_)
    result = cli(*fit, "--model", "regressor", "--trials", "size", *opts)
    assert_error(result, "--trials applies to --model classifier only")
