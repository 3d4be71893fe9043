"""Several grouping factors: skhier (importance sampling for nested designs, Gibbs
sweeps for crossed ones) against MixedLM and PyMC's NUTS.

Cases (simulated, known parameters):

* nested, 3 levels: 100,000 pupils in 5,000 classes (labels 0-9 reused in every
  school) in 500 schools; random intercepts for schools and classes, a random slope
  of ``x1`` across schools (correlated with the intercept); 2 features.
* crossed: 100,000 ratings of 1,000 lecturers by 3,000 students (the shape of
  lme4's ``InstEval``); random intercepts for both; 2 fixed features.

Prints, per case: skhier's wall time (default settings: 4 chains x 1,000 draws),
max r_hat, min bulk ESS of the SDs and ESS/s; the REML time and estimates on the
same data: statsmodels MixedLM for the nested case, and for the crossed one (where
MixedLM needs one dense 100,000 x 4,000 random-effects matrix) :func:`sparse_reml`,
lme4's penalized least squares with a sparse factorization; and, with ``--pymc``,
PyMC's default NUTS on the explicit crossed model (short run; its ESS/s is the
baseline of the ratio).

    python benchmarks/bench_factors.py [--rows 100000] [--pymc]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def nested(n_rows, seed=0, n_schools=500, per_school=10):
    rng = np.random.default_rng(seed)
    school = rng.integers(0, n_schools, n_rows)
    klass = rng.integers(0, per_school, n_rows)
    X = rng.normal(size=(n_rows, 2))
    a_s = rng.normal(0, 0.8, n_schools)
    b_s = 0.5 * (0.3 * a_s / 0.8 + np.sqrt(1 - 0.09) * rng.normal(size=n_schools))
    a_c = rng.normal(0, 0.5, (n_schools, per_school))
    y = 2 + X @ [1.0, -0.5] + a_s[school] + b_s[school] * X[:, 0] + a_c[school, klass]
    y += rng.normal(0, 1.0, n_rows)
    truth = {"sigma_a[school]": 0.8, "sigma_b[school, x1]": 0.5, "sigma_a[class]": 0.5, "eps": 1.0}
    return X, y, pd.DataFrame({"school": school, "class": klass}), truth


def crossed(n_rows, seed=0, n_students=3000, n_lecturers=1000):
    rng = np.random.default_rng(seed)
    s, d = rng.integers(0, n_students, n_rows), rng.integers(0, n_lecturers, n_rows)
    X = rng.normal(size=(n_rows, 2))
    y = 3 + X @ [0.3, -0.2] + rng.normal(0, 0.3, n_students)[s] + rng.normal(0, 0.5, n_lecturers)[d]
    y += rng.normal(0, 1.0, n_rows)
    truth = {"sigma_a[student]": 0.3, "sigma_a[lecturer]": 0.5, "eps": 1.0}
    return X, y, pd.DataFrame({"student": s, "lecturer": d}), truth


def run_skhier(X, y, groups, **kwargs):
    from skhier import HierarchicalRegressor

    frame = pd.DataFrame(X, columns=["x1", "x2"])
    est = HierarchicalRegressor(random_state=0, **kwargs)
    start = time.perf_counter()
    est.fit(frame, y, groups=groups)
    elapsed = time.perf_counter() - start
    table = est.summary(group_level=False)
    sds = table[table.index.str.startswith(("sigma", "eps"))]
    return elapsed, est, table, sds


def mixedlm_nested(X, y, g):
    import statsmodels.formula.api as smf

    df = pd.DataFrame(
        {"y": y, "x1": X[:, 0], "x2": X[:, 1], "school": g.school, "klass": g["class"]}
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.mixedlm(
            "y ~ x1 + x2",
            df,
            groups="school",
            re_formula="~x1",
            vc_formula={"klass": "0 + C(klass)"},
        )
        fit = model.fit(reml=True)
    elapsed = time.perf_counter() - start
    cov = fit.cov_re.to_numpy()
    est = {
        "sigma_a[school]": np.sqrt(cov[0, 0]),
        "sigma_b[school, x1]": np.sqrt(cov[1, 1]),
        "sigma_a[class]": float(np.sqrt(fit.vcomp[0])),
        "eps": float(np.sqrt(fit.scale)),
    }
    return elapsed, est


def sparse_reml(X, y, codes):
    """REML for ``y ~ X + (1 | f1) + (1 | f2) + ...`` by lme4's penalized least
    squares (Bates, Maechler, Bolker & Walker 2015) with scipy's sparse LU: the
    reference for crossed designs too large for MixedLM's dense algebra.  Returns
    (seconds, {"sigma_a[f<k>]": ..., "eps": ...})."""
    import scipy.sparse as sp
    from scipy.optimize import minimize
    from scipy.sparse.linalg import splu

    start = time.perf_counter()
    n = len(y)
    Xd = np.column_stack([np.ones(n), X])
    p = Xd.shape[1]
    blocks = [sp.csc_matrix((np.ones(n), (np.arange(n), c)), shape=(n, c.max() + 1)) for c in codes]
    Z = sp.hstack(blocks, format="csc")
    sizes = [b.shape[1] for b in blocks]
    ZtZ, ZtX, Zty = (Z.T @ Z).tocsc(), Z.T @ Xd, Z.T @ y
    XtX, Xty = Xd.T @ Xd, Xd.T @ y

    def fit(log_lam):
        lam = np.repeat(np.exp(log_lam), sizes)
        A = (sp.diags(lam) @ ZtZ @ sp.diags(lam) + sp.identity(len(lam))).tocsc()
        lu = splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0)
        logdet = np.log(np.abs(lu.U.diagonal())).sum()
        cu = lu.solve(lam * Zty)
        lzx = lam[:, None] * ZtX
        cx = lu.solve(lzx)
        schur = XtX - lzx.T @ cx
        beta = np.linalg.solve(schur, Xty - lzx.T @ cu)
        u = cu - cx @ beta
        resid = y - Xd @ beta - Z @ (lam * u)
        r2 = resid @ resid + u @ u
        dev = (
            logdet + np.linalg.slogdet(schur)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p)))
        )
        return dev, r2

    res = minimize(lambda t: fit(t)[0], np.zeros(len(codes)), method="Nelder-Mead",
                   options={"xatol": 1e-4, "fatol": 1e-6})  # fmt: skip
    sigma = np.sqrt(fit(res.x)[1] / (n - p))
    out = {f"sigma_a[f{k}]": sigma * np.exp(t) for k, t in enumerate(res.x)}
    out["eps"] = sigma
    return time.perf_counter() - start, out


def pymc_crossed(X, y, g, draws=200, tune=200):
    """PyMC's default NUTS on the explicit crossed model (standardized y)."""
    import arviz as az
    import pymc as pm

    ys = (y - y.mean()) / y.std()
    s, d = g.student.to_numpy(), g.lecturer.to_numpy()
    with pm.Model():
        beta = pm.Normal("beta", 0, 1.5, shape=2)
        alpha = pm.Normal("alpha", 0, 10)
        tau_s, tau_d = pm.Exponential("tau_s", 1.0), pm.Exponential("tau_d", 1.0)
        z_s = pm.Normal("z_s", 0, 1, shape=int(s.max()) + 1)
        z_d = pm.Normal("z_d", 0, 1, shape=int(d.max()) + 1)
        eps = pm.Exponential("eps", 1.0)
        mu = alpha + pm.math.dot(X, beta) + tau_s * z_s[s] + tau_d * z_d[d]
        pm.Normal("y", mu, eps, observed=ys)
        start = time.perf_counter()
        idata = pm.sample(
            draws=draws, tune=tune, chains=4, cores=2, progressbar=False, random_seed=0
        )
        elapsed = time.perf_counter() - start
    ess = az.ess(idata, var_names=["tau_s", "tau_d", "eps"])
    return elapsed, min(float(ess[v]) for v in ("tau_s", "tau_d", "eps"))


def _method(conv):
    """skhier's row label: how it sampled (importance sampling: with its k_hat)."""
    if conv["method"] == "importance":
        return f"skhier (IS, k_hat {conv['pareto_k']:.2f})"
    return f"skhier ({conv['method']})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pymc", action="store_true", help="also run PyMC's NUTS (minutes)")
    args = parser.parse_args()
    from skhier import HierarchicalRegressor

    X, y, g, _ = crossed(5000, seed=1)  # compile (cached afterwards) outside the timings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        HierarchicalRegressor(nested=False, random_slopes=None, draws=10, tune=10).fit(
            X, y, groups=g
        )

    rows = []
    X, y, g, truth = nested(args.rows)
    t, est, table, sds = run_skhier(
        X, y, g, nested=[("school", "class")], random_slopes={"school": ["x1"]}
    )
    conv = est.convergence_
    t_ref, ref = mixedlm_nested(X, y, g)
    rows.append(
        (
            "nested",
            _method(conv),
            t,
            conv["max_r_hat"],
            sds["ess_bulk"].min(),
            sds["mean"].to_dict(),
        )
    )
    rows.append(("nested", "MixedLM REML", t_ref, np.nan, np.nan, ref))
    print(rows[-2], rows[-1], flush=True)
    print(f"nested truth: {truth}")

    X, y, g, truth = crossed(args.rows)
    t, est, table, sds = run_skhier(X, y, g, nested=False, random_slopes=None)
    conv = est.convergence_
    ess_s = sds["ess_bulk"].min() / t
    rows.append(
        (
            "crossed",
            _method(conv),
            t,
            conv["max_r_hat"],
            sds["ess_bulk"].min(),
            sds["mean"].to_dict(),
        )
    )
    print(rows[-1], flush=True)
    t_ref, ref = sparse_reml(X, y, [g.student.to_numpy(), g.lecturer.to_numpy()])
    ref = dict(zip(["sigma_a[student]", "sigma_a[lecturer]", "eps"], ref.values(), strict=True))
    rows.append(("crossed", "sparse REML (lme4 PLS)", t_ref, np.nan, np.nan, ref))
    print(rows[-1], flush=True)
    if args.pymc:
        t_pm, ess_pm = pymc_crossed(X, y, g)
        rows.append(("crossed", "PyMC NUTS (200+200)", t_pm, np.nan, ess_pm, {}))
        ratio = ess_s / (ess_pm / t_pm)
        print(f"ESS/s of the SDs: skhier {ess_s:.1f}, PyMC {ess_pm / t_pm:.3f}, ratio {ratio:.0f}x")
    print(f"crossed truth: {truth}")

    head = f"{'case':8} {'method':22} {'time s':>8} {'max r_hat':>9} {'min ESS (SDs)':>13}"
    print(f"\n{head}  estimates")
    for case, method, t, r, e, est in rows:
        ests = ", ".join(f"{k} {v:.3f}" for k, v in est.items())
        print(f"{case:8} {method:22} {t:8.2f} {r:9.4f} {e:13.0f}  {ests}")


if __name__ == "__main__":
    main()
