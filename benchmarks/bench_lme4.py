"""skhier against lme4, the baseline mixed-model users judge speed by.

For each model, the same data go to lme4 (R, ``Rscript``) and to skhier in one run,
one fit at a time on the same machine.  Times are of the fit only: R's start-up,
loading lme4 and reading the data are excluded (each lme4 model is fit once to warm
up, then the best of ``--repeats`` timed fits is kept); skhier's kernels are compiled
by a first fit (not timed), then one fit with another seed is timed.  Printed per
model: both times, their ratio, skhier's convergence (max r_hat and min bulk ESS of
the population parameters, or Pareto k_hat for importance sampling, and whether a
``ConvergenceWarning`` was raised), and the fixed effects of both.

Cases: sleepstudy, lme4's ``cbpp`` (binomial with trials), a crossed binary model of
the shape of lme4's ``VerbAgg`` (simulated: 316 subjects x 24 items, 5 fixed
effects), egsingle (nested, random slopes), a simulated nested model (31k rows, 2,410
schools in 131 areas), ``InstEval`` with departments, and a simulated one-factor
model (31k rows, 2,410 schools, a random slope).  ``--big`` adds the simulated 1M-row
x 2,000-group x 3-slope model and 5M rows x 100,000 groups (minutes, GBs).

Needs R with lme4 (Debian: ``apt-get install r-cran-lme4``); without it, prints
skhier's column only and says so.

    python benchmarks/bench_lme4.py [--only NAME ...] [--big] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
for (col in strsplit(args[4], ",")[[1]]) if (nchar(col)) d[[col]] <- factor(d[[col]])
fit <- function() eval(parse(text = args[2]))
m <- fit()
times <- sapply(seq_len(as.integer(args[3])), function(i) system.time(m <<- fit())[["elapsed"]])
cat("TIME", min(times), "\n")
cat("FIXEF", fixef(m), "\n")
cat("SD", as.data.frame(VarCorr(m))$sdcor, "\n")
cat("SINGULAR", isSingular(m), "\n")
"""


@dataclass
class Case:
    name: str
    frame: pd.DataFrame
    r_call: str  # evaluated with the data as ``d``
    factors: tuple[str, ...]  # columns R reads as factors
    fit: callable  # frame -> fitted skhier estimator (random_state as keyword)


def _dummies(col, prefix):
    return pd.get_dummies(col.astype(str), prefix=prefix, drop_first=True).astype(float)


def sleepstudy():
    from skhier import HierarchicalRegressor
    from skhier.datasets import load_sleepstudy

    d = load_sleepstudy()
    return Case(
        "sleepstudy (Days | Subject)", d, "lmer(Reaction ~ Days + (Days | Subject), d)",
        ("Subject",),
        lambda d, **kw: HierarchicalRegressor(**kw).fit(d[["Days"]], d["Reaction"],
                                                        groups=d["Subject"]),
    )  # fmt: skip


def cbpp():
    from skhier import HierarchicalClassifier
    from skhier.datasets import load_cbpp

    d = load_cbpp()
    return Case(
        "cbpp binomial (1 | herd)", d,
        "glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, family = binomial)",
        ("herd", "period"),
        lambda d, **kw: HierarchicalClassifier(random_slopes=None, **kw).fit(
            _dummies(d["period"], "p"), d["incidence"], groups=d["herd"], trials=d["size"]),
    )  # fmt: skip


def crossed_binary(seed=0):
    """The shape of lme4's VerbAgg: every subject answers every item."""
    from skhier import HierarchicalClassifier

    rng = np.random.default_rng(seed)
    n_subj, n_item = 316, 24
    subj, item = np.meshgrid(np.arange(n_subj), np.arange(n_item), indexing="ij")
    subj, item = subj.ravel(), item.ravel()
    anger, male = rng.normal(20, 5, n_subj), rng.integers(0, 2, n_subj)
    curse, other = rng.integers(0, 2, n_item), rng.integers(0, 2, n_item)
    eta = (-0.2 + 0.06 * (anger[subj] - 20) + 0.3 * male[subj] - 1.0 * curse[item]
           - 0.8 * other[item] + rng.normal(0, 1.3, n_subj)[subj]
           + rng.normal(0, 0.6, n_item)[item])  # fmt: skip
    d = pd.DataFrame({
        "y": (rng.random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(int),
        "anger": anger[subj], "male": male[subj], "curse": curse[item],
        "other": other[item], "id": subj, "item": item,
    })  # fmt: skip
    return Case(
        "crossed binary 316 x 24 (VerbAgg shape)", d,
        "glmer(y ~ anger + male + curse + other + (1 | id) + (1 | item), d, family = binomial)",
        ("id", "item"),
        lambda d, **kw: HierarchicalClassifier(random_slopes=None, nested=False, **kw).fit(
            d[["anger", "male", "curse", "other"]], d["y"], groups=d[["id", "item"]]),
    )  # fmt: skip


def egsingle():
    from skhier import HierarchicalRegressor
    from skhier.datasets import load_egsingle

    d = load_egsingle()
    return Case(
        "egsingle (year | school/child)", d,
        "lmer(math ~ year + (year | schoolid) + (year | schoolid:childid), d)",
        ("schoolid", "childid"),
        lambda d, **kw: HierarchicalRegressor(nested=[("schoolid", "childid")], **kw).fit(
            d[["year"]], d["math"], groups=d[["schoolid", "childid"]]),
    )  # fmt: skip


def nested_areas(seed=0):
    from skhier import HierarchicalRegressor

    rng = np.random.default_rng(seed)
    n_area, n_school, n = 131, 2410, 31_000
    area_of = np.r_[np.arange(n_area), rng.integers(0, n_area, n_school - n_area)]
    school = np.r_[np.arange(n_school), rng.integers(0, n_school, n - n_school)]
    x = rng.normal(size=n)
    y = (1.0 + 0.5 * x + rng.normal(0, 0.12, n_area)[area_of[school]]
         + rng.normal(0, 0.4, n_school)[school] + rng.normal(0, 1.0, n))  # fmt: skip
    d = pd.DataFrame({"y": y, "x": x, "area": area_of[school], "school": school})
    return Case(
        "nested 31k rows, 2,410 schools in 131 areas", d,
        "lmer(y ~ x + (1 | area) + (1 | school), d)", ("area", "school"),
        lambda d, **kw: HierarchicalRegressor(random_slopes=None, **kw).fit(
            d[["x"]], d["y"], groups=d[["area", "school"]]),
    )  # fmt: skip


def insteval():
    from skhier import HierarchicalRegressor
    from skhier.datasets import load_insteval

    d = load_insteval()
    return Case(
        "InstEval (1|s) + (1|d) + (1|dept)", d,
        "lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept), d)", ("s", "d", "dept"),
        lambda d, **kw: HierarchicalRegressor(random_slopes=None, nested=False, **kw).fit(
            d[["service"]], d["y"], groups=d[["s", "d", "dept"]]),
    )  # fmt: skip


def one_factor(seed=0, n_groups=2410, n=31_000, n_slopes=1, name=None):
    from skhier import HierarchicalRegressor

    rng = np.random.default_rng(seed)
    g = np.r_[np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)]
    X = rng.normal(size=(n, n_slopes))
    coef = 0.5 + rng.normal(0, 0.2, (n_groups, n_slopes))
    y = 1.0 + rng.normal(0, 0.5, n_groups)[g] + np.einsum("ij,ij->i", X, coef[g])
    y += rng.normal(0, 1.0, n)
    cols = [f"x{k}" for k in range(n_slopes)]
    d = pd.DataFrame(X, columns=cols).assign(y=y, g=g)
    terms = " + ".join(cols)
    return Case(
        name or f"one factor {n // 1000}k rows, {n_groups:,} groups, ({terms} | g)", d,
        f"lmer(y ~ {terms} + ({terms} | g), d)", ("g",),
        lambda d, **kw: HierarchicalRegressor(**kw).fit(d[cols], d["y"], groups=d["g"]),
    )  # fmt: skip


def many_groups(seed=0, n_groups=100_000, n=5_000_000):
    from skhier import HierarchicalRegressor

    rng = np.random.default_rng(seed)
    g = np.r_[np.arange(n_groups), rng.integers(0, n_groups, n - n_groups)]
    x = rng.normal(size=n)
    y = 1.0 + rng.normal(0, 1.0, n_groups)[g] + 0.5 * x + rng.normal(0, 1.0, n)
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    return Case(
        f"{n // 1_000_000}M rows, {n_groups:,} groups, (1 | g)", d,
        "lmer(y ~ x + (1 | g), d)", ("g",),
        lambda d, **kw: HierarchicalRegressor(random_slopes=None, **kw).fit(
            d[["x"]], d["y"], groups=d["g"]),
    )  # fmt: skip


def run_lme4(case: Case, workdir: Path, repeats: int):
    path = workdir / "data.csv"
    case.frame.to_csv(path, index=False)
    script = workdir / "fit.R"
    script.write_text(R_SCRIPT)
    out = subprocess.run(
        ["Rscript", str(script), str(path), case.r_call, str(repeats), ",".join(case.factors)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.stdout.splitlines() if ln.strip()}
    return {
        "time": float(lines["TIME"][0]),
        "fixef": [float(v) for v in lines["FIXEF"]],
        "sd": [float(v) for v in lines["SD"]],
        "singular": lines["SINGULAR"][0] == "TRUE",
    }


def run_skhier(case: Case):
    from skhier.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case.fit(case.frame, random_state=1)  # compiles (or loads) the kernels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        est = case.fit(case.frame, random_state=0)
        elapsed = time.perf_counter() - start
    conv = est.convergence_
    if conv["method"] == "importance":
        status = f"k_hat {conv['pareto_k']:.2f}, ESS {conv['min_ess_bulk']:,.0f}"
    else:
        status = f"r_hat {conv['max_r_hat']:.3f}, ESS {conv['min_ess_bulk']:,.0f}"
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {
        "time": elapsed,
        "status": status + (", ConvergenceWarning" if warned else ""),
        "warned": warned,
        "fixef": [est.intercept_, *np.atleast_1d(est.coef_)],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="cases whose name contains one of these")
    parser.add_argument("--big", action="store_true", help="add the 1M- and 5M-row models")
    parser.add_argument("--repeats", type=int, default=3, help="timed lme4 fits (best kept)")
    args = parser.parse_args()
    makers = [sleepstudy, cbpp, crossed_binary, egsingle, nested_areas, insteval, one_factor]
    if args.big:
        makers += [
            lambda: one_factor(n_groups=2000, n=1_000_000, n_slopes=3),
            many_groups,
        ]
    have_r = shutil.which("Rscript") is not None
    if not have_r:
        print("Rscript not found: lme4's column is skipped (Debian: apt-get install r-cran-lme4)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for make in makers:
            case = make()
            if args.only and not any(k in case.name for k in args.only):
                continue
            lme4 = run_lme4(case, Path(tmp), args.repeats) if have_r else {}
            ours = run_skhier(case)
            ratio = ours["time"] / lme4["time"] if lme4.get("time") else np.nan
            rows.append((case.name, lme4.get("time", np.nan), ours["time"], ratio,
                         ours["status"]))  # fmt: skip
            print(f"\n{case.name}: lme4 {lme4.get('time', np.nan):.2f} s, skhier "
                  f"{ours['time']:.2f} s ({ours['status']})", flush=True)  # fmt: skip
            if "fixef" in lme4:
                print("  fixed effects, lme4:  ", np.round(lme4["fixef"], 3).tolist())
                print("  fixed effects, skhier:", np.round(ours["fixef"], 3).tolist())
                print("  lme4 SDs:", np.round(lme4["sd"], 3).tolist(),
                      "(singular)" if lme4["singular"] else "")  # fmt: skip
            elif "error" in lme4:
                print("  lme4 failed:", lme4["error"])
    print("\n| data | lme4 (s) | skhier (s) | skhier / lme4 | skhier's convergence |")
    print("|---|---|---|---|---|")
    for name, t_r, t_s, ratio, status in rows:
        name = name.replace("|", "\\|")
        print(f"| {name} | {t_r:.2f} | {t_s:.2f} | {ratio:.1f} | {status} |")
    ok = [r for r in rows if np.isfinite(r[3])]
    if ok:
        at_most_1 = sum(r[3] <= 1.0 for r in ok)
        print(f"\nratio <= 1: {at_most_1} of {len(ok)}; ratio <= 2: "
              f"{sum(r[3] <= 2.0 for r in ok)} of {len(ok)}")  # fmt: skip


if __name__ == "__main__":
    main()
