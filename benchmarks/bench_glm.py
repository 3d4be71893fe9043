"""Binary outcomes and counts: skhier's engines against PyMC's default NUTS.

Cases (simulated, known parameters; 3 features, each with a random slope, plus
the random intercept, correlated):

* ``binary``: 20,000 rows x 200 groups, ``HierarchicalClassifier`` with default
  settings (Pólya-Gamma Gibbs, 4 chains x 1,000 draws after 500 sweeps of burn-in).
* ``counts``: 20,000 rows x 200 groups of negative binomial counts,
  ``HierarchicalPoissonRegressor(family="negative_binomial")`` with default settings
  (the explicit model, nutpie's NUTS).
* ``big``: 1,000,000 rows x 2,000 groups, binary, 4 chains x 250 draws after 150
  sweeps; wall time and peak memory (this process's maximum resident set).

Prints, per case: wall time, max r_hat over every diagnosed parameter (the group
effects included), min bulk ESS, ESS/s, and the population estimates against the
truth; with ``--pymc``, PyMC's default NUTS (``pm.sample``) on the explicit
non-centered model of the same data, a short run, whose ESS/s is the baseline of
the ratio (min bulk ESS over the population-level parameters, both sides).

    python benchmarks/bench_glm.py [--case binary counts big] [--pymc]
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np

TRUE = {"mu_a": -0.5, "mu_b": [0.8, -0.4, 0.3], "sigma_a": 0.8, "sigma_b": [0.4, 0.3, 0.2]}


def simulate(n_rows, n_groups, family, seed=0, dispersion=0.5):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n_rows)
    X = rng.normal(size=(n_rows, 3))
    a = TRUE["mu_a"] + TRUE["sigma_a"] * rng.normal(size=n_groups)
    b = np.array(TRUE["mu_b"]) + np.array(TRUE["sigma_b"]) * rng.normal(size=(n_groups, 3))
    eta = a[g] + np.einsum("ij,ij->i", X, b[g])
    if family == "bernoulli":
        y = (rng.random(n_rows) < 1 / (1 + np.exp(-eta))).astype(int)
    else:
        mu = np.exp(eta + 1.0)
        y = rng.poisson(rng.gamma(1 / dispersion, mu * dispersion))
    return X, y, g


def population_ess(est):
    table = est.summary(group_level=False)
    keep = [i for i in table.index if i.startswith(("mu_", "sigma_", "dispersion"))]
    return float(table.loc[keep, "ess_bulk"].min()), table.loc[keep, "mean"]


def run_skhier(case, X, y, g, **kwargs):
    from skhier import HierarchicalClassifier, HierarchicalPoissonRegressor

    if case == "counts":
        est = HierarchicalPoissonRegressor(family="negative_binomial", random_state=0, **kwargs)
    else:
        est = HierarchicalClassifier(random_state=0, **kwargs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, groups=g)
    return time.perf_counter() - start, est


def run_pymc(case, X, y, g, draws=300, tune=300):
    """PyMC's default NUTS on the explicit non-centered model (skhier's own
    reference model, ``skhier._engines.pymc.build_model``), standardized scale."""
    import arviz as az
    import pymc as pm

    from skhier._engines.pymc import build_model
    from skhier._model.spec import ModelSpec, Scaling

    family = "negative_binomial" if case == "counts" else "bernoulli"
    n_groups = int(g.max()) + 1
    spec = ModelSpec(
        n_features=3, slope_idx=(0, 1, 2), prior_intercept_sd=2.5, prior_coef_sd=2.5,
        prior_group_sd=1.0, prior_noise_sd=1.0, engine="explicit",
        parametrization="non-centered", correlated=True, likelihood=family,
    )  # fmt: skip
    mean = y.mean()
    center = np.log(mean) if case == "counts" else np.log(mean / (1 - mean))
    scaling = Scaling(X.mean(0), X.std(0), float(center), 1.0)
    model = build_model(X, y, g, n_groups, spec, scaling, np.full(len(y), center))
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        idata = pm.sample(
            draws=draws, tune=tune, chains=4, cores=2, progressbar=False, random_seed=0
        )
        elapsed = time.perf_counter() - start
    names = ["beta", "tau"] + (["phi"] if case == "counts" else [])
    ess = az.ess(idata, var_names=names)
    return elapsed, min(float(ess[v].min()) for v in names)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", nargs="+", default=["binary", "counts", "big"])
    parser.add_argument("--pymc", action="store_true", help="also run PyMC's NUTS (minutes)")
    args = parser.parse_args()

    # compile (cached afterwards) outside the timings
    for case in args.case:
        X, y, g = simulate(500, 10, "bernoulli" if case != "counts" else "nb", seed=9)
        run_skhier(case, X, y, g, draws=20, tune=20, chains=1)

    rows = []
    for case in args.case:
        big = case == "big"
        n_rows, n_groups = (1_000_000, 2_000) if big else (20_000, 200)
        X, y, g = simulate(n_rows, n_groups, "nb" if case == "counts" else "bernoulli")
        kwargs = {"draws": 250, "tune": 150} if big else {}
        t, est = run_skhier(case, X, y, g, **kwargs)
        ess, means = population_ess(est)
        conv = est.convergence_
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(
            (case, f"skhier ({est.engine_})", t, conv["max_r_hat"], conv["min_ess_bulk"], ess, peak)
        )
        print(rows[-1], flush=True)
        print("  estimates:", means.round(3).to_dict(), flush=True)
        if args.pymc and not big:
            t_pm, ess_pm = run_pymc(case, X, y, g)
            rows.append((case, "PyMC NUTS (300+300)", t_pm, np.nan, np.nan, ess_pm, np.nan))
            ratio = (ess / t) / (ess_pm / t_pm)
            print(rows[-1], f"ESS/s ratio {ratio:.0f}x", flush=True)
    print(f"\ntruth: {TRUE} (counts: intercept +1.0, dispersion 0.5)")
    head = (
        f"{'case':7} {'method':22} {'time s':>8} {'max r_hat':>9} {'min ESS':>8} "
        f"{'min ESS pop':>11} {'ESS/s pop':>9} {'peak MB':>8}"
    )
    print(head)
    for case, method, t, r, e_all, e_pop, peak in rows:
        print(
            f"{case:7} {method:22} {t:8.1f} {r:9.4f} {e_all:8.0f} {e_pop:11.0f} "
            f"{e_pop / t:9.2f} {peak:8.0f}"
        )


if __name__ == "__main__":
    main()
