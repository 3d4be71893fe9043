"""Robust noise: Student-t against Gaussian on data with gross outliers.

Data: 20k rows x 200 groups x 3 features (intercept and all slopes varying,
correlated), Gaussian noise (SD 1), then 5% of the rows corrupted by a gross
error of -15 (15 noise SDs; the corrupted rows are drawn among those with the
top 20% of ``x0``, so the errors pull the ``x0`` slope the way a bad batch of
readings at one end of a range does).  Both models run 4 chains x 1000 draws
after 1000 tuning steps (skhier's defaults), each in a fresh subprocess after
a warm-up fit (so "time" excludes numba's one-time compile).

Columns: fit time, max r_hat and min bulk ESS over the population parameters,
divergences, peak RSS, and the population slopes' bias (posterior mean minus
the true value) with their 95% interval coverage of the truth.  The Gaussian
model is the baseline of the same run.  ``--pymc`` adds PyMC's NUTS on the
explicit Student-t model (slow).

Usage::

    python benchmarks/bench_student_t.py [--pymc] [--rows-per-group 100]
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

COEF = np.array([1.0, -0.5, 0.25])


def load(n_per):
    from skhier.datasets import make_hierarchical_regression

    X, y, g, _ = make_hierarchical_regression(
        200,
        n_per,
        3,
        intercept=1.0,
        coef=COEF,
        group_intercept_sd=0.7,
        group_coef_sd=0.3,
        noise_sd=1.0,
        random_state=0,
    )
    rng = np.random.default_rng(1)
    high = np.flatnonzero(X[:, 0] > np.quantile(X[:, 0], 0.8))
    bad = rng.choice(high, size=int(0.05 * len(y)), replace=False)
    y = y.copy()
    y[bad] -= 15.0
    return X, y, g


def fit(n_per, likelihood, engine="auto"):
    from skhier import HierarchicalRegressor

    X, y, g = load(n_per)
    est = HierarchicalRegressor(likelihood=likelihood, engine=engine, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        est.fit(X, y, groups=g)
        elapsed = time.perf_counter() - start
    conv = est.convergence_
    covered = (est.coef_interval_[:, 0] <= COEF) & (COEF <= est.coef_interval_[:, 1])
    return {
        "time (s)": elapsed,
        "max r_hat": conv["max_r_hat"],
        "min ESS": conv["min_ess_bulk"],
        "divergences": conv["n_divergences"],
        "nu": est.noise_df_,
        "bias mu_b[x0]": est.coef_[0] - COEF[0],
        "bias mu_b[x1]": est.coef_[1] - COEF[1],
        "bias mu_b[x2]": est.coef_[2] - COEF[2],
        "95% intervals covering mu_b": f"{int(covered.sum())}/3",
        "eps": est.noise_sd_,
    }


def _child(n_per, likelihood, engine):
    import resource

    if engine != "explicit":
        fit(n_per, likelihood, engine)  # warm-up: numba compiles once per machine
    res = fit(n_per, likelihood, engine)
    res["peak MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def run(n_per, likelihood, engine="auto"):
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(n_per), likelihood, engine],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-group", type=int, default=100)
    parser.add_argument("--pymc", action="store_true")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        _child(int(args.child[0]), args.child[1], args.child[2])
        return
    n_per = args.rows_per_group
    cols = {
        "student_t (augmented)": run(n_per, "student_t"),
        "normal (collapsed, baseline)": run(n_per, "normal"),
    }
    if args.pymc:
        cols["student_t (PyMC explicit)"] = run(n_per, "student_t", "explicit")
    table = pd.DataFrame(cols)
    print(f"{200 * n_per} rows x 200 groups x 3 features, 5% gross outliers")
    with pd.option_context("display.float_format", "{:,.4g}".format, "display.width", 200):
        print(table)


if __name__ == "__main__":
    main()
