"""Reports of a model with several grouping factors: diagnostics, the summary
table and ArviZ ``InferenceData`` (what :class:`~skhier._posterior.factors.FactorsPosterior`
answers to the estimator's ``summary()``, ``diagnostics_`` and ``idata_``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skhier._posterior import diagnostics as _diagnostics
from skhier._posterior.group_draws import quantiles
from skhier._util.warn import import_quietly


def _interval(draws, prob):
    tail = (1.0 - prob) / 2.0
    return quantiles(draws, [tail, 1.0 - tail])


def population_arrays(post):
    """Name -> (C, D, ...) draws of the population-level parameters."""
    out = {"mu_a": post.intercept, "mu_b": post.coef}
    if post.noise_sd is not None:
        out["eps"] = post.noise_sd
    for name, key in (("noise_df", "nu"), ("dispersion", "dispersion")):
        if getattr(post, name, None) is not None:
            out[key] = getattr(post, name)
    for fac in post.factors:
        out[f"sigma[{fac.name}]"] = fac.sd
        if fac.corr is not None:
            out[f"corr[{fac.name}]"] = fac.corr
    return out


def diagnostics(post, groups="auto") -> dict:
    """r_hat and bulk ESS of every sampled parameter (the group effects from their
    kept draws, up to ``MAX_GROUP_PARAMS_DIAGNOSED`` unless ``groups`` is True)."""
    arrays = population_arrays(post)
    n_group = sum(fac.mean.size for fac in post.factors)
    if groups is True or (groups == "auto" and n_group <= _diagnostics.MAX_GROUP_PARAMS_DIAGNOSED):
        for fac in post.factors:
            arrays[f"u[{fac.name}]"] = fac.draws
    out = {}
    for name, arr in arrays.items():
        r, e = _diagnostics.rhat_ess(arr.reshape(arr.shape[:2] + (-1,)))
        out[name] = (r.reshape(arr.shape[2:]), e.reshape(arr.shape[2:]))
    return out


def convergence(diag, post, method="gibbs") -> dict:
    r = np.concatenate([np.ravel(v[0]) for v in diag.values()])
    e = np.concatenate([np.ravel(v[1]) for v in diag.values()])
    return {
        "method": method,
        "max_r_hat": float(np.nanmax(r)) if np.isfinite(r).any() else float("nan"),
        "min_ess_bulk": float(np.nanmin(e)) if np.isfinite(e).any() else float("nan"),
        "n_divergences": int(np.sum(post.diverging)),
        "n_max_treedepth": int(np.sum(post.max_treedepth)),
        "n_chains": int(post.intercept.shape[0]),
        "n_draws": int(post.intercept.shape[1]),
    }


def _level_name(level) -> str:
    return "/".join(str(v) for v in level) if isinstance(level, tuple) else str(level)


def summary_table(est, group_level, diag) -> pd.DataFrame:
    """Rows ``mu_a``, ``mu_b[x]``, ``sigma_a[factor]``, ``sigma_b[factor, x]``,
    ``corr[factor: e1, e2]``, ``eps`` and, with ``group_level``,
    ``a[factor=level]``, ``b[factor=level, x]``."""
    post, prob = est.posterior_, est.interval_prob
    features = est._feature_names()
    tail = 100 * (1 - prob) / 2
    cols = ["mean", "sd", f"{tail:g}%", f"{100 - tail:g}%", "r_hat", "ess_bulk"]
    blocks = []

    def add(names, draws, key, pick=None):
        flat = draws.reshape(draws.shape[0] * draws.shape[1], -1)
        nan = np.full(flat.shape[1] if pick is None else draws.shape[2], np.nan)
        r, e = (np.ravel(v) for v in diag.get(key, (nan, nan)))
        if pick is not None:
            flat, r, e = flat[:, pick], r[pick], e[pick]
        bounds = _interval(flat, prob)
        stats = [flat.mean(0), flat.std(0, ddof=1), bounds[:, 0], bounds[:, 1], r, e]
        blocks.append(pd.DataFrame(dict(zip(cols, stats, strict=True)), index=names))

    add(["mu_a"], post.intercept[..., None], "mu_a")
    add([f"mu_b[{f}]" for f in features], post.coef, "mu_b")
    for fac in post.factors:
        effects = ["intercept"] + [features[j] for j in fac.slope_idx]
        names = [f"sigma_a[{fac.name}]"] + [f"sigma_b[{fac.name}, {e}]" for e in effects[1:]]
        add(names, fac.sd, f"sigma[{fac.name}]")
        if fac.corr is not None:
            q = len(effects)
            lower = [(i, j) for i in range(q) for j in range(i)]
            names = [f"corr[{fac.name}: {effects[j]}, {effects[i]}]" for i, j in lower]
            corr = fac.corr.reshape(fac.corr.shape[:2] + (-1,))
            add(names, corr, f"corr[{fac.name}]", pick=[i * q + j for i, j in lower])
    if post.noise_sd is not None:
        add(["eps"], post.noise_sd[..., None], "eps")
    for name, key in (("noise_df", "nu"), ("dispersion", "dispersion")):
        if getattr(post, name, None) is not None:
            add([key], getattr(post, name)[..., None], key)
    if group_level:
        for f, fac in enumerate(post.factors):
            slopes = [features[j] for j in fac.slope_idx]
            names = [
                f"a[{fac.name}={lv}]" if k == 0 else f"b[{fac.name}={lv}, {slopes[k - 1]}]"
                for lv in (_level_name(v) for v in est._factors.levels[f])
                for k in range(len(slopes) + 1)
            ]
            add(names, fac.draws.reshape(fac.draws.shape[:2] + (-1,)), f"u[{fac.name}]")
    return pd.concat(blocks)


def to_inference_data(est):
    """ArviZ ``InferenceData``: the kept joint draws, one dim per factor's levels."""
    az = import_quietly("arviz")

    post = est.posterior_
    features = est._feature_names()
    kept = post.kept
    posterior = {"mu_a": post.intercept[:, kept], "mu_b": post.coef[:, kept]}
    if post.noise_sd is not None:
        posterior["eps"] = post.noise_sd[:, kept]
    coords = {"feature": features}
    dims = {"mu_b": ["feature"]}
    for f, fac in enumerate(post.factors):
        name = fac.name
        effects = ["intercept"] + [features[j] for j in fac.slope_idx]
        coords[f"{name}_effect"] = effects
        coords[f"{name}_level"] = [_level_name(v) for v in est._factors.levels[f]]
        posterior[f"sigma[{name}]"] = fac.sd[:, kept]
        dims[f"sigma[{name}]"] = [f"{name}_effect"]
        if fac.corr is not None:
            coords[f"{name}_effect_bis"] = effects
            posterior[f"corr[{name}]"] = fac.corr[:, kept]
            dims[f"corr[{name}]"] = [f"{name}_effect", f"{name}_effect_bis"]
        posterior[f"u[{name}]"] = fac.draws
        dims[f"u[{name}]"] = [f"{name}_level", f"{name}_effect"]
    return az.from_dict(posterior=posterior, coords=coords, dims=dims)
