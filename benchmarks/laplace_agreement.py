"""How close is ``inference="laplace"`` to full NUTS?  Prints, for each data set and
population-level parameter, both posterior means and SDs, the difference in units of
the NUTS posterior SD, and both fit times.

Usage::

    python benchmarks/laplace_agreement.py
"""

import time
import warnings

import numpy as np
import pandas as pd

from skhier import HierarchicalRegressor
from skhier.datasets import load_radon, load_sleepstudy, make_hierarchical_regression

PARAMS = ["intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd"]


def datasets():
    sleep = load_sleepstudy()
    yield "sleepstudy", sleep[["Days"]], sleep["Reaction"], sleep["Subject"], {}
    radon = load_radon()
    yield "radon", radon[["basement"]], radon["log.radon"], radon["county"], {"random_slopes": None}
    X, y, g, _ = make_hierarchical_regression(200, 100, 3, random_state=0)
    yield "20k x 200 x 3", X, y, g, {}


def main():
    rows = []
    for name, X, y, g, kwargs in datasets():
        fits = {}
        for inference in ("nuts", "laplace"):
            est = HierarchicalRegressor(inference=inference, random_state=0, **kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y, groups=g)  # warm-up (compilation)
                start = time.perf_counter()
                est.fit(X, y, groups=g)
            fits[inference] = (est, time.perf_counter() - start)
        (nuts, t_nuts), (lap, t_lap) = fits["nuts"], fits["laplace"]
        for param in PARAMS:
            a = nuts.posterior_.flat(param).reshape(nuts.posterior_.n_draws, -1)
            b = lap.posterior_.flat(param).reshape(lap.posterior_.n_draws, -1)
            for j in range(a.shape[1]):
                if a[:, j].std() == 0:
                    continue
                rows.append(
                    {
                        "data": name,
                        "parameter": f"{param}[{j}]" if a.shape[1] > 1 else param,
                        "NUTS mean": a[:, j].mean(),
                        "Laplace mean": b[:, j].mean(),
                        "diff / NUTS sd": (b[:, j].mean() - a[:, j].mean()) / a[:, j].std(),
                        "sd ratio": b[:, j].std() / a[:, j].std(),
                        "NUTS s": t_nuts,
                        "Laplace s": t_lap,
                    }
                )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    print(
        f"\nmax |diff| / sd: {np.abs(table['diff / NUTS sd']).max():.3f}; "
        f"sd ratio range: {table['sd ratio'].min():.3f} - {table['sd ratio'].max():.3f}"
    )


if __name__ == "__main__":
    main()
