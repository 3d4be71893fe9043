"""Convergence diagnostics (r_hat, bulk ESS, divergences) and their warnings."""

from __future__ import annotations

import warnings

import numpy as np

from .exceptions import ConvergenceWarning

R_HAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
#: group-level parameters are diagnosed only up to this many (they are cheap
#: exact conditional draws in the collapsed engine; diagnosing 10^5 of them
#: would cost more than the fit).
MAX_GROUP_PARAMS_DIAGNOSED = 20_000

POPULATION_PARAMS = ("intercept", "coef", "group_intercept_sd", "group_coef_sd", "noise_sd")
GROUP_PARAMS = ("group_intercept", "group_coef")


def parameter_diagnostics(post) -> dict:
    """Rank-normalized split r_hat and bulk ESS for every reported parameter.

    Returns a dict ``name -> (r_hat, ess_bulk)`` with arrays shaped like the
    parameter (NaN where a parameter is fixed or was not diagnosed).
    """
    import arviz as az

    names = list(POPULATION_PARAMS)
    if post.group_coef[0, 0].size <= MAX_GROUP_PARAMS_DIAGNOSED:
        names += list(GROUP_PARAMS)
    data = {name: getattr(post, name) for name in names}
    if post.intercept.shape[1] < 4:  # too few draws to diagnose
        return {
            n: (np.full(d.shape[2:], np.nan), np.full(d.shape[2:], np.nan)) for n, d in data.items()
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant parameters give NaN with a RuntimeWarning
        ds = az.convert_to_dataset(data)
        rhat = az.rhat(ds)
        ess = az.ess(ds, method="bulk")
    out = {}
    for name in names:
        r = np.asarray(rhat[name].values, dtype=float)
        e = np.asarray(ess[name].values, dtype=float)
        out[name] = (r, e)
    for name in GROUP_PARAMS:
        if name not in out:
            shape = getattr(post, name).shape[2:]
            out[name] = (np.full(shape, np.nan), np.full(shape, np.nan))
    return out


def summarize_convergence(diag: dict, post, free_mask: dict) -> dict:
    """``convergence_``: worst r_hat, smallest bulk ESS and divergences."""
    rhats, esss = [], []
    for name, (r, e) in diag.items():
        mask = free_mask.get(name)
        r = r if mask is None else r[mask]
        e = e if mask is None else e[mask]
        rhats.append(np.ravel(r))
        esss.append(np.ravel(e))
    r = np.concatenate(rhats)
    e = np.concatenate(esss)
    return {
        "max_r_hat": float(np.nanmax(r)) if np.isfinite(r).any() else float("nan"),
        "min_ess_bulk": float(np.nanmin(e)) if np.isfinite(e).any() else float("nan"),
        "n_divergences": int(post.diverging.sum()),
        "n_chains": int(post.intercept.shape[0]),
        "n_draws": int(post.intercept.shape[1]),
    }


def warn_if_not_converged(conv: dict, engine: str) -> None:
    """Warn, with concrete remedies, about each convergence problem found."""
    problems, remedies = [], []
    if conv["n_divergences"] > 0:
        problems.append(f"{conv['n_divergences']} divergent transitions")
        remedies.append("raise `target_accept` (e.g. 0.95 or 0.99)")
        if engine == "explicit":
            remedies.append(
                "use engine='collapsed' or switch `parametrization` "
                "(non-centered for groups with few rows, centered for groups with many)"
            )
    if conv["max_r_hat"] > R_HAT_MAX:
        problems.append(f"max r_hat {conv['max_r_hat']:.3f} > {R_HAT_MAX}")
        remedies.append("increase `tune` and `draws`, and use at least 4 `chains`")
    min_ess = ESS_PER_CHAIN_MIN * conv["n_chains"]
    if conv["min_ess_bulk"] < min_ess:
        problems.append(f"min bulk ESS {conv['min_ess_bulk']:.0f} < {min_ess}")
        remedies.append("increase `draws`")
    if problems:
        warnings.warn(
            "The sampler may not have converged: "
            + "; ".join(problems)
            + ". Posterior summaries may be unreliable. Remedies: "
            + "; ".join(dict.fromkeys(remedies))
            + ". Inspect `convergence_` and `summary()`.",
            ConvergenceWarning,
            stacklevel=3,
        )
