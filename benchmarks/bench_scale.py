"""Scaling with the number of groups: time, peak memory, model size, predict speed.

Cases (simulated from the model, every feature with a random slope, correlated
effects - skhier's default model):

* ``5M x 100k x 2``: 5,000,000 rows, 100,000 groups, 2 features;
* ``31k x 2410 x 1``: 31,000 rows in 2,410 groups, 1 feature (the shape of a real
  exam data set), against statsmodels ``MixedLM`` (REML point estimates);
* ``1M x 2000 x 3``: 1,000,000 rows, 2,000 groups, 3 features.

Methods: ``auto`` is the default estimator (``inference="auto"``: importance
sampling from 1,000 groups on, NUTS below); ``nuts``, ``importance`` and
``laplace`` force that inference; ``draws=250`` keeps 4 x 250 draws.  Each
measurement runs in a fresh subprocess (peak memory = that process's maximum
RSS, data included) after a small warm-up fit that compiles (or loads) the
kernels the fit runs, so "fit" is a warm fit.  "model MB" is the pickled
estimator; "predict 1M" predicts 1,000,000 rows of seen groups.

Usage::

    python benchmarks/bench_scale.py                 # every case
    python benchmarks/bench_scale.py --only "31k x 2410 x 1"
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

CASES = {  # (groups, rows per group, features): methods
    "5M x 100k x 2": ((100_000, 50, 2), ["auto", "auto draws=250"]),
    "31k x 2410 x 1": ((2410, 13, 1), ["nuts", "importance", "laplace", "mixedlm"]),
    "1M x 2000 x 3": ((2000, 500, 3), ["auto", "nuts"]),
}


def load_case(name):
    from skhier.datasets import make_hierarchical_regression

    n_groups, n_per, k = CASES[name][0]
    X, y, g, _ = make_hierarchical_regression(
        n_groups, n_per, k, intercept=1.0, group_intercept_sd=0.7, group_coef_sd=0.3, random_state=0
    )
    return X, y, g


def _params(method):
    inference, *rest = method.split()
    params = dict(kv.split("=") for kv in rest)
    return {"inference": inference, **{k: int(v) for k, v in params.items()}}


def _child(name, method):
    import resource

    X, y, g = load_case(name)
    if method == "mixedlm":
        res = _mixedlm(X, y, g)
    else:
        from skhier import HierarchicalRegressor

        params = _params(method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # warm-up: compile (or load) this shape class's kernels, the reduction of
            # large blocks of group draws included (300 groups x 4,000 draws is more
            # than the 2**20 values reduced in numpy instead)
            small = np.isin(g, np.unique(g)[:300])
            HierarchicalRegressor(**{**params, "draws": 1000, "tune": 50}).fit(
                X[small], y[small], groups=g[small]
            )
            est = HierarchicalRegressor(random_state=0, **params)
            start = time.perf_counter()
            est.fit(X, y, groups=g)
            fit = time.perf_counter() - start
        rows = np.random.default_rng(0).integers(0, len(y), 1_000_000)
        Xp, gp = X[rows], g[rows]
        start = time.perf_counter()
        est.predict(Xp, groups=gp)
        predict = time.perf_counter() - start
        conv = est.convergence_
        res = {
            "fit": fit,
            "method": conv["method"],
            "r_hat": conv["max_r_hat"],
            "pareto_k": conv.get("pareto_k", float("nan")),
            "ess": conv["min_ess_bulk"],
            "model_mb": len(pickle.dumps(est)) / 2**20,
            "predict_1M": predict,
        }
    res["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def _mixedlm(X, y, g):
    from bench_engines import mixedlm_reml  # this script's folder is on sys.path

    return {"fit": mixedlm_reml(X, y, g)["time"], "method": "REML"}


def run(name, method, timeout=3600):
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, method],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", help="run only this case")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    rows = []
    for name in [args.only] if args.only else list(CASES):
        for method in CASES[name][1]:
            res = run(name, method)
            rows.append({"case": name, "setting": method, **res})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows).set_index(["case", "setting"])
    cols = ["method", "fit", "peak_mb", "model_mb", "predict_1M", "r_hat", "pareto_k", "ess"]
    print()
    print(table.reindex(columns=cols).to_string(float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
