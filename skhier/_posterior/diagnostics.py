"""Convergence diagnostics (r_hat, bulk ESS, divergences) and their warnings."""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from skhier._util.warn import warn
from skhier.exceptions import ConvergenceWarning

R_HAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
#: engines that sample the group effects themselves have them diagnosed at fit
#: time, up to this many (diagnosing 10^5 of them would cost more than the fit)
MAX_GROUP_PARAMS_DIAGNOSED = 5_000

POPULATION_PARAMS = (
    "intercept",
    "coef",
    "group_intercept_sd",
    "group_coef_sd",
    "noise_sd",
    "group_corr",
    "noise_df",
    "dispersion",
)
GROUP_PARAMS = ("group_intercept", "group_coef")


def parameter_diagnostics(post, groups="auto") -> dict:
    """Rank-normalized split r_hat and bulk ESS for every reported parameter.

    The group effects are diagnosed (on their kept draws) when ``groups`` is True,
    or when it is "auto" and they are at most ``MAX_GROUP_PARAMS_DIAGNOSED``.
    Returns a dict ``name -> (r_hat, ess_bulk)`` with arrays shaped like the
    parameter (NaN where a parameter is constant or was not diagnosed).
    """
    names = list(POPULATION_PARAMS)
    n_group_params = post.group_intercept[0, 0].size + post.group_coef[0, 0].size
    if groups is True or (groups == "auto" and n_group_params <= MAX_GROUP_PARAMS_DIAGNOSED):
        names += list(GROUP_PARAMS)
    out = {}
    for name in names:
        arr = getattr(post, name)
        if arr is None:  # no correlations stored (a model saved by skhier 0.1.0)
            continue
        shape = arr.shape[2:]
        flat = arr.reshape(arr.shape[:2] + (-1,))
        r, e = rhat_ess(flat)
        out[name] = (r.reshape(shape), e.reshape(shape))
    for name in GROUP_PARAMS:
        if name not in out:
            shape = getattr(post, name).shape[2:]
            out[name] = (np.full(shape, np.nan), np.full(shape, np.nan))
    return out


def importance_diagnostics(diag: dict, ess: float) -> dict:
    """Diagnostics of resampled importance draws: no chains, so no r_hat; the
    effective sample size is that of the importance weights, for every parameter
    (NaN stays NaN: constants, parameters not diagnosed)."""
    return {
        name: (np.full(np.shape(r), np.nan), np.where(np.isnan(e), np.nan, ess))
        for name, (r, e) in diag.items()
    }


def rhat_ess(draws, chunk=1000):
    """Rank-normalized split r_hat (max of bulk and tail) and bulk ESS.

    Vectorized over parameters (Vehtari, Gelman, Simpson, Carpenter and Buerkner,
    2021, the definitions ArviZ and Stan use).

    Parameters
    ----------
    draws : ndarray of shape (n_chains, n_draws, n_params)

    Returns
    -------
    r_hat, ess_bulk : ndarrays of shape (n_params,)
    """
    n_params = draws.shape[2]
    r_hat = np.full(n_params, np.nan)
    ess = np.full(n_params, np.nan)
    if draws.shape[1] < 4:
        return r_hat, ess
    for start in range(0, n_params, chunk):
        x = draws[:, :, start : start + chunk]
        ok = np.ptp(x.reshape(-1, x.shape[2]), axis=0) > 0  # constants have no diagnostics
        if not ok.any():
            continue
        x = _split_chains(x[:, :, ok])
        z = _z_scale(x)
        tail = _z_scale(np.abs(x - np.median(x.reshape(-1, x.shape[2]), axis=0)))
        sl = np.flatnonzero(ok) + start
        r_hat[sl] = np.maximum(_rhat(z), _rhat(tail))
        ess[sl] = _ess(z)
    return r_hat, ess


def _split_chains(x):
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _z_scale(x):
    n_chains, n_draws, n_params = x.shape
    flat = x.reshape(-1, n_params)
    ranks = stats.rankdata(flat, axis=0, method="average")
    z = special.ndtri((ranks - 0.375) / (flat.shape[0] + 0.25))
    return z.reshape(x.shape)


def _rhat(x):
    n_draws = x.shape[1]
    chain_mean = x.mean(axis=1)
    within = x.var(axis=1, ddof=1).mean(axis=0)
    between = n_draws * chain_mean.var(axis=0, ddof=1)
    return np.sqrt(((n_draws - 1) / n_draws * within + between / n_draws) / within)


def _ess(x):
    """ESS with Geyer's initial monotone sequence, as Stan and ArviZ compute it."""
    n_chains, n_draws, n_params = x.shape
    centred = x - x.mean(axis=1, keepdims=True)
    size = 2 * n_draws
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conjugate(f), n=size, axis=1)[:, :n_draws] / n_draws
    chain_var = acov[:, 0] * n_draws / (n_draws - 1)
    mean_var = chain_var.mean(axis=0)
    var_plus = mean_var * (n_draws - 1) / n_draws
    if n_chains > 1:
        var_plus = var_plus + x.mean(axis=1).var(axis=0, ddof=1)
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus  # (n_draws, n_params)
    rho[0] = 1.0
    n_pairs = (n_draws - 1) // 2
    pairs = rho[0 : 2 * n_pairs : 2] + rho[1 : 2 * n_pairs : 2]
    positive = np.cumprod(pairs > 0, axis=0).astype(bool)  # initial positive sequence
    monotone = np.minimum.accumulate(np.where(positive, pairs, np.inf), axis=0)
    tau = -1.0 + 2.0 * np.where(positive, monotone, 0.0).sum(axis=0)
    total = n_chains * n_draws
    tau = np.maximum(tau, 1.0 / np.log10(total))
    return total / tau


def summarize_convergence(diag: dict, post, free_mask: dict, inference=None) -> dict:
    """``convergence_``: how the sampler ran (``inference``, e.g. ``{"method":
    "nuts"}``), worst r_hat, smallest bulk ESS and divergences."""
    rhats, esss = [], []
    for name, (r, e) in diag.items():
        mask = free_mask.get(name)
        r = r if mask is None else r[mask]
        e = e if mask is None else e[mask]
        rhats.append(np.ravel(r))
        esss.append(np.ravel(e))
    r = np.concatenate(rhats)
    e = np.concatenate(esss)
    info = dict(inference or {"method": "nuts"})
    conv = {
        "method": info.pop("method"),
        "max_r_hat": float(np.nanmax(r)) if np.isfinite(r).any() else float("nan"),
        "min_ess_bulk": float(np.nanmin(e)) if np.isfinite(e).any() else float("nan"),
        "n_divergences": int(post.diverging.sum()),
        "n_max_treedepth": int(post.max_treedepth.sum()),
        "n_chains": int(post.intercept.shape[0]),
        "n_draws": int(post.intercept.shape[1]),
    }
    if conv["method"] == "importance":  # resampled independent draws: no chains
        conv["max_r_hat"] = float("nan")
        conv["min_ess_bulk"] = info.pop("ess")
    conv.update(info)
    return conv


def warn_if_not_converged(conv: dict, engine: str, noise: bool = True) -> None:
    """Warn, with concrete remedies, about each convergence problem found
    (``noise``: the model has a noise SD ``eps``; binary and count models do not)."""
    problems, remedies = [], []
    if conv["n_divergences"] > 0:
        problems.append(f"{conv['n_divergences']} divergent transitions")
        remedies.append("raise `target_accept` (e.g. 0.95 or 0.99)")
        if engine == "explicit":
            remedies.append(
                "use engine='auto' (the collapsed or augmented engine) or switch `parametrization` "
                "(non-centered for groups with few rows, centered for groups with many)"
            )
    if conv.get("n_max_treedepth", 0) > 0.05 * conv["n_chains"] * conv["n_draws"]:
        problems.append(
            f"{conv['n_max_treedepth']} transitions hit the maximum tree depth (a "
            "ridge in the posterior: some parameters are barely identified)"
        )
        remedies.append(
            "check identifiability (e.g. with one row per group sigma_a and eps are "
            "not separable: use random_slopes=None or tighter `prior_group_sd`)"
            if noise
            else "check identifiability (e.g. a random slope on a feature that barely "
            "varies within groups: drop it from `random_slopes`, or use a tighter "
            "`prior_group_sd`)"
        )
    unknown = [
        name
        for name, key in (("r_hat", "max_r_hat"), ("bulk ESS", "min_ess_bulk"))
        if np.isnan(conv[key]) and not (name == "r_hat" and conv.get("method") == "importance")
    ]
    if unknown:  # never a silent pass: NaN compares False with every threshold
        problems.append(
            f"{' and '.join(unknown)} could not be computed (NaN: too few draws, or draws "
            "that do not vary)"
        )
        remedies.append("increase `draws`")
    if conv["max_r_hat"] > R_HAT_MAX:
        problems.append(f"max r_hat {conv['max_r_hat']:.3f} > {R_HAT_MAX}")
        remedies.append("increase `tune` and `draws`, and use at least 4 `chains`")
    min_ess = ESS_PER_CHAIN_MIN * conv["n_chains"]
    if conv["min_ess_bulk"] < min_ess:
        problems.append(f"min bulk ESS {conv['min_ess_bulk']:.0f} < {min_ess}")
        if not any("`draws`" in r for r in remedies):
            remedies.append("increase `draws`")
    if problems:
        warn(
            "The sampler may not have converged: "
            + "; ".join(problems)
            + ". Posterior summaries may be unreliable. Remedies: "
            + "; ".join(dict.fromkeys(remedies))
            + ". Inspect `convergence_` and `summary()`.",
            ConvergenceWarning,
        )
