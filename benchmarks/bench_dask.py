"""Out-of-core fit on a Dask cluster: the statistics pass against a plain read.

Data: 10,000,000 rows in 20,000 groups with 5 features by default, simulated from
the model (every feature with a random slope; the group effects of
``make_hierarchical_regression(..., intercept=1, group_intercept_sd=0.7,
group_coef_sd=0.3)``), rows in random group order so that every file holds every
group (the combine's worst case).  It is written chunk by chunk (one numpy
Generator per chunk, at most ~1M rows in memory) as ``--files`` Parquet files of
one row group each, columns ``x0 .. x{k-1}, y, g``, and cached under
``--data-dir`` (default ``~/.cache/skhier-bench``): a directory with the same
size and seed is reused.  Every file is read once before the timings, so all
steps read from the OS page cache.

Cluster: ``distributed.LocalCluster(n_workers=2, threads_per_worker=1,
processes=True, memory_limit="2GB")``; skhier's pass runs on it, the sampling
runs in this (the client's) process.  Before anything is timed, every worker
reads a file and runs the moments kernel, and a small fit runs on the cluster,
so numba's kernels are compiled or loaded (the timings are warm), in the
workers and locally alike.

Steps (one row each in the printed table):

* ``read + sum``: the baseline, ``dd.read_parquet(files, columns=cols).sum()
  .compute()`` over the columns the fit reads (features, ``y``, ``g``); the
  median of ``--repeat`` runs (3), as for the pass, since a shared 2-core
  machine's timings vary by 10-20 % from run to run;
* ``pass``: ``est._model_inputs(X, y, groups)``, the one pass
  over the partitions that ``fit`` starts with (per-partition per-group moments,
  tree-combined on the workers), with ``X = ddf[features]``, ``y = ddf["y"]``,
  ``groups = ddf["g"]``;
* ``sampling``: ``est._fit_inputs(inputs)``, the rest of ``fit`` (local);
* ``whole fit``: a fresh ``est.fit(X, y, groups=groups)``;
* ``pass`` / ``sampling`` again on the first tenth of the files (same groups),
  to show the pass growing with the rows and the sampling flat;
* ``in-memory fit``: the same data read into pandas in a fresh subprocess and
  fitted there (warm); its peak is that process's maximum RSS, data included.

Estimator: ``HierarchicalRegressor(progressbar=False, random_state=0)``
(``inference="auto"``: importance sampling from 1,000 groups on).  "peak MB per
worker" is each worker's maximum RSS (``ru_maxrss``, MiB) since it started; the
workers are restarted after the baseline, so the later peaks are the fit's
(warm-up included).  The final lines compare with the targets: pass speed at
least half the read speed, at most 2 GiB per worker, whole fit within 2 minutes.

Usage::

    python benchmarks/bench_dask.py                     # 10M rows x 20k groups x 5
    python benchmarks/bench_dask.py --quick             # 1M rows x 2,000 groups
    python benchmarks/bench_dask.py --rows 2000000 --groups 2000 --skip-in-memory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

SEED = 0
LAYOUT = 1  # bump when the data written for the same options changes
TARGET_SPEED = 0.5  # pass speed / read speed
TARGET_PEAK_MB = 2048.0  # per worker (MiB)
TARGET_FIT_S = 120.0


# ------------------------------------------------------------------ data
def chunk_sizes(rows, files):
    return [rows // files + (i < rows % files) for i in range(files)]


def feature_names(k):
    return [f"x{j}" for j in range(k)]


def dataset(data_dir, rows, groups, features, files):
    """The Parquet files of this size (written once, then reused)."""
    meta = {
        "rows": rows,
        "groups": groups,
        "features": features,
        "files": files,
        "seed": SEED,
        "layout": LAYOUT,
    }
    path = Path(data_dir).expanduser() / f"hier_{rows}x{groups}x{features}_{files}files"
    names = [path / f"part-{i:04d}.parquet" for i in range(files)]
    stamp = path / "_bench.json"
    if stamp.exists() and json.loads(stamp.read_text()) == meta and all(p.exists() for p in names):
        print(f"reusing {path}", flush=True)
        return [str(p) for p in names]
    print(f"writing {rows:,} rows to {path} ...", flush=True)
    start = time.perf_counter()
    _write(path, meta)
    print(f"  written in {time.perf_counter() - start:.1f} s", flush=True)
    return [str(p) for p in names]


def _write(path, meta):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from skhier.datasets import make_hierarchical_regression

    k, n_groups = meta["features"], meta["groups"]
    _, _, _, truth = make_hierarchical_regression(  # the group effects only (0 rows)
        n_groups,
        0,
        k,
        intercept=1.0,
        group_intercept_sd=0.7,
        group_coef_sd=0.3,
        random_state=SEED,
    )
    a, b = truth["group_intercept"], truth["group_coef"]
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, n in enumerate(chunk_sizes(meta["rows"], meta["files"])):
        rng = np.random.default_rng([SEED, i])
        g = rng.integers(0, n_groups, n)
        X = rng.standard_normal((n, k))
        y = a[g] + np.einsum("ij,ij->i", X, b[g]) + rng.standard_normal(n)
        columns = {name: X[:, j] for j, name in enumerate(feature_names(k))}
        table = pa.table({**columns, "y": y, "g": g})
        pq.write_table(table, tmp / f"part-{i:04d}.parquet", row_group_size=n)
    (tmp / "_bench.json").write_text(json.dumps(meta))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)


def warm_page_cache(files):
    """Read every file's bytes once, so the baseline and the pass both read from
    the OS page cache (the data may come from an earlier run)."""
    for name in files:
        with open(name, "rb") as f:
            while f.read(1 << 24):
                pass


def warmup_data(groups, features):
    """Small data of the same shape class (same features, the same inference)."""
    from skhier.datasets import make_hierarchical_regression

    X, y, g, _ = make_hierarchical_regression(
        min(groups, 1000),
        20,
        features,
        intercept=1.0,
        group_intercept_sd=0.7,
        group_coef_sd=0.3,
        random_state=1,
    )
    return X, y, g


# ------------------------------------------------------------------ workers
def _peak_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm_worker(path, features, moments):
    """Import and run what the timed steps run in a worker: read a file; the
    moments kernel and the combine (numba: compiled, or loaded from the cache)."""
    import dask.dataframe  # noqa: F401
    import pyarrow.parquet as pq

    pq.read_table(path).to_pandas()
    if moments:
        from skhier._dask import moments as _moments

        rng = np.random.default_rng(0)
        part = _moments.partition_moments(
            rng.standard_normal((100, features)), rng.standard_normal(100), np.arange(100) % 7
        )
        _moments.combine_all([part, part])
    return True


def worker_peaks(client):
    return [v for _, v in sorted(client.run(_peak_mb).items())]


def fmt_peaks(peaks):
    return " / ".join(f"{v:.0f}" for v in peaks)


# ------------------------------------------------------------------ steps
def _runs(times):
    return "median of " + ", ".join(f"{t:.2f}" for t in times) + " s"


def timed(func):
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def frames(files, features):
    import dask.dataframe as dd

    ddf = dd.read_parquet(files, columns=[*features, "y", "g"])
    return ddf[features], ddf["y"], ddf["g"]


def estimator(**params):
    from skhier import HierarchicalRegressor

    return HierarchicalRegressor(progressbar=False, random_state=0, **params)


def describe(est):
    conv = est.convergence_
    note = conv["method"]
    if np.isfinite(conv.get("pareto_k", np.nan)):
        note += f", pareto_k {conv['pareto_k']:.2f}"
    if conv.get("fallback"):
        note += f" (fallback: {conv['fallback']})"
    return note


def cluster_steps(files, sub_files, rows, sub_rows, args, table):
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    features = feature_names(args.features)
    cols = [*features, "y", "g"]
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        # (a) the baseline: read the same columns and sum them
        client.run(_warm_worker, files[0], args.features, False)
        reads = [
            timed(lambda: dd.read_parquet(files, columns=cols).sum().compute())[1]
            for _ in range(args.repeat)
        ]
        t_read = float(np.median(reads))
        table.append(
            ["read + sum (baseline)", rows, t_read, fmt_peaks(worker_peaks(client)), _runs(reads)]
        )
        print(f"baseline: {t_read:.2f} s", flush=True)

        # fresh workers, warmed up: then the pass, the sampling, a whole fit
        client.restart()
        client.run(_warm_worker, files[0], args.features, True)
        Xw, yw, gw = warmup_data(args.groups, args.features)
        frame = pd.DataFrame(Xw, columns=features).assign(y=yw, g=gw)
        wddf = dd.from_pandas(frame, npartitions=2 * args.workers)
        estimator(draws=100, tune=100).fit(wddf[features], wddf["y"], groups=wddf["g"])
        table.append(["warm-up fit", len(yw), np.nan, fmt_peaks(worker_peaks(client)), ""])

        X, y, g = frames(files, features)
        passes = []
        for _ in range(args.repeat):
            est = estimator()
            inputs, t = timed(lambda: est._model_inputs(X, y, g))  # noqa: B023
            passes.append(t)
        t_pass = float(np.median(passes))
        peaks = fmt_peaks(worker_peaks(client))
        table.append(["pass (_model_inputs)", rows, t_pass, peaks, f"on workers; {_runs(passes)}"])
        print(f"pass: {t_pass:.2f} s", flush=True)
        _, t_sample = timed(lambda: est._fit_inputs(inputs))
        table.append(["sampling (_fit_inputs)", rows, t_sample, "", f"local; {describe(est)}"])
        print(f"sampling: {t_sample:.2f} s", flush=True)
        del inputs

        est = estimator()
        _, t_fit = timed(lambda: est.fit(X, y, groups=g))
        peaks = worker_peaks(client)
        note = f"{describe(est)}; client peak {_peak_mb():.0f} MB"
        table.append(["whole fit", rows, t_fit, fmt_peaks(peaks), note])
        print(f"whole fit: {t_fit:.2f} s", flush=True)

        # (f) scaling: the first tenth of the files
        Xs, ys, gs = frames(sub_files, features)
        est = estimator()
        inputs, t_pass_sub = timed(lambda: est._model_inputs(Xs, ys, gs))
        table.append(["pass (_model_inputs)", sub_rows, t_pass_sub, "", f"{len(sub_files)} files"])
        _, t_sample_sub = timed(lambda: est._fit_inputs(inputs))
        table.append(["sampling (_fit_inputs)", sub_rows, t_sample_sub, "", describe(est)])
        print(f"scaling: pass {t_pass_sub:.2f} s, sampling {t_sample_sub:.2f} s", flush=True)
    return {
        "read": t_read,
        "pass": t_pass,
        "sample": t_sample,
        "fit": t_fit,
        "peak": max(peaks),
        "pass_sub": t_pass_sub,
        "sample_sub": t_sample_sub,
    }


# ------------------------------------------------------------------ in memory
def _child_in_memory(files, n_features, n_groups):
    import pyarrow.parquet as pq

    features = feature_names(n_features)
    Xw, yw, gw = warmup_data(n_groups, n_features)
    estimator(draws=100, tune=100).fit(Xw, yw, groups=gw)
    start = time.perf_counter()
    df = pq.read_table(files).to_pandas()
    t_read = time.perf_counter() - start
    est = estimator()
    start = time.perf_counter()
    est.fit(df[features], df["y"], groups=df["g"])
    t_fit = time.perf_counter() - start
    print(json.dumps({"read": t_read, "fit": t_fit, "peak": _peak_mb(), "note": describe(est)}))


def in_memory(files, args, timeout=3600):
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child-in-memory",
            json.dumps(files),
            "--features",
            str(args.features),
            "--groups",
            str(args.groups),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ main
def print_table(table):
    print()
    print("| step | rows | wall s | peak MB per worker | note |")
    print("|---|---:|---:|---|---|")
    for step, rows, wall, peak, note in table:
        wall = "" if not np.isfinite(wall) else f"{wall:.2f}"
        print(f"| {step} | {rows:,} | {wall} | {peak} | {note} |")


def verdict(ok):
    return "PASS" if ok else "MISS"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, help="rows (default 10,000,000; --quick 1,000,000)")
    parser.add_argument("--groups", type=int, help="groups (default 20,000; --quick 2,000)")
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--files", type=int, default=40, help="Parquet files (partitions)")
    parser.add_argument("--data-dir", default="~/.cache/skhier-bench")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GB", help="per worker")
    parser.add_argument("--skip-in-memory", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the baseline and of the pass (median)"
    )
    parser.add_argument("--quick", action="store_true", help="1M rows, 2,000 groups")
    parser.add_argument("--child-in-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    args.groups = args.groups or (2_000 if args.quick else 20_000)
    warnings.simplefilter("ignore")
    if args.child_in_memory:
        _child_in_memory(json.loads(args.child_in_memory), args.features, args.groups)
        return

    files_n = max(args.files, -(-args.rows // 1_000_000))  # at most ~1M rows a file
    files = dataset(args.data_dir, args.rows, args.groups, args.features, files_n)
    warm_page_cache(files)
    sizes = chunk_sizes(args.rows, files_n)
    n_sub = max(1, files_n // 10)
    sub_rows = sum(sizes[:n_sub])

    table = []
    res = cluster_steps(files, files[:n_sub], args.rows, sub_rows, args, table)
    if not args.skip_in_memory:
        mem = in_memory(files, args)
        note = f"fresh process, peak RSS (data incl.); read {mem['read']:.1f} s; {mem['note']}"
        table.append(["in-memory fit", args.rows, mem["fit"], f"{mem['peak']:.0f}", note])

    print_table(table)
    speed = res["read"] / res["pass"]
    print()
    print(
        f"{args.rows:,} rows x {args.groups:,} groups x {args.features} features, "
        f"{files_n} files, {args.workers} workers x 1 thread, memory_limit {args.memory_limit}"
    )
    print(
        f"pass speed / read speed: {speed:.2f} (pass {res['pass']:.2f} s, read "
        f"{res['read']:.2f} s; target >= {TARGET_SPEED}): {verdict(speed >= TARGET_SPEED)}"
    )
    print(
        f"peak per worker: {res['peak']:.0f} MB (target <= {TARGET_PEAK_MB:.0f} MB): "
        f"{verdict(res['peak'] <= TARGET_PEAK_MB)}"
    )
    print(
        f"whole fit: {res['fit']:.1f} s (target <= {TARGET_FIT_S:.0f} s): "
        f"{verdict(res['fit'] <= TARGET_FIT_S)}"
    )
    ratio = args.rows / sub_rows
    print(
        f"scaling: rows x{ratio:.1f} -> pass x{res['pass'] / res['pass_sub']:.2f} "
        f"(linear: x{ratio:.1f}), sampling x{res['sample'] / res['sample_sub']:.2f} (flat: x1)"
    )


if __name__ == "__main__":
    main()
