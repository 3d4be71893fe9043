"""Speed and sampling efficiency: skhier's collapsed engine against baselines.

skhier fits its default model: correlated group effects (lme4's ``(x | g)``).
Baselines, measured in the same run on the same machine:

* ``pymc``: the same model written out explicitly (non-centered, ``LKJCholeskyCov``)
  under PyMC's default NUTS
  (``HierarchicalRegressor(engine="explicit", parametrization="non-centered")``),
* ``independent``: skhier's collapsed engine on the independent-effects model
  (``correlated_effects=False``, lme4's ``(x || g)``), the default before correlated
  effects,
* ``mixedlm``: statsmodels ``MixedLM`` (REML point estimates only; correlated random
  effects, as ``lme4``'s default).

Cases: sleepstudy (180 rows, 18 groups, 1 feature), simulated 20k rows x 200 groups x
3 features, and simulated 1M rows x 2,000 groups x 3 features (all random slopes).
Every sampler runs 4 chains x 1000 draws after 1000 tuning steps.

Usage::

    python benchmarks/bench_engines.py                   # sleepstudy and 20k
    python benchmarks/bench_engines.py --large           # also the 1M-row case
    python benchmarks/bench_engines.py --skip-pymc       # skip the slow baseline
    python benchmarks/bench_engines.py --only "20k x 200 x 3" --pymc-iters 250
                                  # one case; a shorter PyMC run (its ESS/s is compared)

Prints one table; "ratio" columns are skhier / baseline (ESS/s) or baseline / skhier
(time).  Each skhier fit runs in a fresh subprocess (its peak memory is that
process's maximum RSS) after a warm-up fit of the same case, so "time" is a warm
fit; "cold" includes numba's first compile (cached on disk afterwards).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

CASES = {
    "sleepstudy": None,
    "20k x 200 x 3": (200, 100, 3),
    "1M x 2000 x 3": (2000, 500, 3),
}


def load_case(name):
    from skhier.datasets import load_sleepstudy, make_hierarchical_regression

    if name == "sleepstudy":
        d = load_sleepstudy()
        return d[["Days"]].to_numpy(float), d["Reaction"].to_numpy(), d["Subject"].to_numpy()
    n_groups, n_per, k = CASES[name]
    X, y, g, _ = make_hierarchical_regression(
        n_groups,
        n_per,
        k,
        intercept=1.0,
        coef=[1.0, -0.5, 0.25],
        group_intercept_sd=0.7,
        group_coef_sd=0.3,
        noise_sd=1.0,
        random_state=0,
    )
    return X, y, g


def fit_skhier(name, **params):
    from skhier import HierarchicalRegressor

    X, y, g = load_case(name)
    est = HierarchicalRegressor(random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        est.fit(X, y, groups=g)
        elapsed = time.perf_counter() - start
    conv = est.convergence_
    return est, {
        "time": elapsed,
        "ess": conv["min_ess_bulk"],
        "rhat": conv["max_r_hat"],
        "div": conv["n_divergences"],
    }


def _child(name, method):
    """Runs in a subprocess: fit (twice for skhier: cold, warm) and report JSON."""
    import resource

    if method == "skhier":
        cold = fit_skhier(name)[1]["time"]
        est, res = fit_skhier(name)
        res["cold"] = cold
        X, _, g = load_case(name)
        start = time.perf_counter()
        est.predict(X, groups=g)
        res["predict"] = time.perf_counter() - start
        res["load_predict"] = _fresh_process_load_and_predict(est, X, g)
    elif method == "independent":
        fit_skhier(name, correlated_effects=False)  # warm-up (compile)
        res = fit_skhier(name, correlated_effects=False)[1]
    elif method.startswith("pymc"):  # "pymc" or "pymc:<iterations>"
        iters = int(method.split(":")[1]) if ":" in method else 1000
        res = fit_skhier(
            name, engine="explicit", parametrization="non-centered", draws=iters, tune=iters
        )[1]
    else:
        res = fit_mixedlm(name)
    res["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def _fresh_process_load_and_predict(est, X, g):
    """Wall time of a new Python process that loads the pickled model and predicts X."""
    import os
    import tempfile

    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.joblib")
        data = os.path.join(tmp, "data.npz")
        joblib.dump(est, model)
        np.savez(data, X=X, g=g)
        code = (
            "import time; t = time.perf_counter(); import joblib, numpy as np, skhier; "
            "t_imported = time.perf_counter(); "
            f"d = np.load({data!r}); est = joblib.load({model!r}); "
            "est.predict(d['X'], groups=d['g']); t_end = time.perf_counter(); "
            "print(t_end - t, t_end - t_imported)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
    return [float(v) for v in out.stdout.split()]


def fit_mixedlm(name):
    return mixedlm_reml(*load_case(name))


def mixedlm_reml(X, y, g):
    """Wall time of statsmodels MixedLM's REML fit with correlated random slopes."""
    import statsmodels.formula.api as smf

    cols = [f"x{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols).assign(y=y, g=g)
    rhs = " + ".join(cols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        smf.mixedlm(f"y ~ {rhs}", df, groups="g", re_formula=f"~{rhs}").fit(reml=True)
        elapsed = time.perf_counter() - start
    return {"time": elapsed}


def run(name, method, timeout=3600):
    out = (
        subprocess.run(
            [sys.executable, __file__, "--child", name, method],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--skip-pymc", action="store_true")
    parser.add_argument(
        "--pymc-iters",
        type=int,
        default=1000,
        help="tuning steps and draws per chain of the PyMC baseline (ESS/s is compared)",
    )
    parser.add_argument("--only", help="run only this case (e.g. '20k x 200 x 3')")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    names = [n for n in CASES if args.large or not n.startswith("1M")]
    names = [args.only] if args.only else names
    rows = []
    for name in names:
        sk = run(name, "skhier")
        ind = run(name, "independent")
        ml = run(name, "mixedlm")
        pymc_method = "pymc" if args.pymc_iters == 1000 else f"pymc:{args.pymc_iters}"
        pm = None if (args.skip_pymc or name.startswith("1M")) else run(name, pymc_method)
        row = {
            "case": name,
            "skhier time (s)": sk["time"],
            "skhier cold (s)": sk["cold"],
            "skhier min ESS": sk["ess"],
            "skhier max r_hat": sk["rhat"],
            "skhier ESS/s": sk["ess"] / sk["time"],
            "skhier peak MB": sk["peak_mb"],
            "independent: time (s)": ind["time"],
            "independent: min ESS": ind["ess"],
            "independent: peak MB": ind["peak_mb"],
            "predict (s)": sk["predict"],
            "new process: imports+load+predict (s)": sk["load_predict"][0],
            "new process: load+predict (s)": sk["load_predict"][1],
            "MixedLM time (s)": ml["time"],
            "time / MixedLM": sk["time"] / ml["time"],
        }
        if pm is not None:
            row.update(
                {
                    "PyMC time (s)": pm["time"],
                    "PyMC min ESS": pm["ess"],
                    "PyMC max r_hat": pm["rhat"],
                    "PyMC divergences": pm["div"],
                    "ESS/s ratio vs PyMC": (sk["ess"] / sk["time"]) / (pm["ess"] / pm["time"]),
                }
            )
        rows.append(row)
        print(pd.Series(row).to_string(), "\n", flush=True)
    table = pd.DataFrame(rows).set_index("case").T
    with pd.option_context("display.float_format", "{:,.3g}".format, "display.width", 200):
        print(table)


if __name__ == "__main__":
    main()
