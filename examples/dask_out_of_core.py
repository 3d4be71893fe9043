"""Data beyond memory: Parquet files to Dask to a hierarchical fit
===============================================================

A sales table too large for one process, stored as Parquet files: one row per
product and week, with a price and a promotion flag.  Products differ in their base
level and in how strongly they react to price.  ``HierarchicalRegressor`` fits it
from the Dask DataFrame: one pass reduces every partition to per-group sums, and the
sampler runs on those.  The result equals the in-memory fit of the same rows.  The
predictions stay lazy and are written back to Parquet one partition at a time.

The example uses Dask's default local scheduler.  On a cluster, create a
``distributed.Client`` first; nothing else changes.  Needs ``pip install
"skhier[dask]"``.

Run::

      python examples/dask_out_of_core.py          (1M rows, about a minute)
      python examples/dask_out_of_core.py --fast   (smoke test)
"""

import sys
import tempfile
import warnings
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd

from skhier import HierarchicalRegressor


def write_sales(path, n_products, n_weeks, n_files, seed=0):
    """Simulated sales, written one file at a time (no process holds them all)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(3.0, 0.8, n_products)  # each product's level
    elasticity = rng.normal(-1.2, 0.4, n_products)  # and its reaction to price
    per_file = n_products // n_files
    for f in range(n_files):
        product = np.repeat(np.arange(f * per_file, (f + 1) * per_file), n_weeks)
        price = rng.normal(0.0, 1.0, len(product))
        promo = rng.binomial(1, 0.2, len(product)).astype(float)
        units = (
            base[product]
            + elasticity[product] * price
            + 0.5 * promo
            + rng.normal(0.0, 1.0, len(product))
        )
        frame = pd.DataFrame({"price": price, "promo": promo, "product": product, "units": units})
        frame.to_parquet(Path(path) / f"part-{f:03d}.parquet", index=False)


def main(fast=False):
    n_products, n_weeks, n_files = (400, 10, 4) if fast else (10_000, 100, 20)
    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}
    with tempfile.TemporaryDirectory() as tmp:
        write_sales(tmp, n_products, n_weeks, n_files)
        sales = dd.read_parquet(tmp)
        print(f"{len(sales):,} rows in {sales.npartitions} partitions")

        X, y = sales[["price", "promo", "product"]], sales["units"]
        est = HierarchicalRegressor(
            group_col="product", random_slopes=["price"], random_state=0, **settings
        )
        est.fit(X, y)  # one pass over the files, then sampling on per-product sums
        print(est.summary(group_level=False).round(3))

        # the same rows in memory give the same posterior (the same seed, to rounding)
        local = sales.compute()
        in_memory = HierarchicalRegressor(
            group_col="product", random_slopes=["price"], random_state=0, **settings
        ).fit(local[["price", "promo", "product"]], local["units"])
        gap = np.max(np.abs(est.coef_ - in_memory.coef_))
        print(f"largest difference in coef_ from the in-memory fit: {gap:.1e}")

        pred = est.predict(X)  # lazy: nothing is computed yet
        low_high = est.predict_interval(X, prob=0.9)
        out = low_high.assign(prediction=pred, units=y)
        out.to_parquet(Path(tmp) / "predictions")  # computed partition by partition
        scored = dd.read_parquet(Path(tmp) / "predictions")
        inside = (
            (scored["units"] >= scored["lower"]) & (scored["units"] <= scored["upper"])
        ).mean()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r2 = est.score(X, y)
        print(f"R^2 {r2:.3f}; 90% intervals hold {float(inside.compute()):.1%} of the rows")
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
