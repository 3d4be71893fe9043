"""The posterior summary table of a fitted HierarchicalRegressor."""

from __future__ import annotations

import numpy as np
import pandas as pd

# (attribute of Posterior, DESIGN name, indexed by group, indexed by feature)
_ROWS = (
    ("intercept", "mu_a", False, False),
    ("coef", "mu_b", False, True),
    ("group_intercept_sd", "sigma_a", False, False),
    ("group_coef_sd", "sigma_b", False, True),
    ("noise_sd", "eps", False, False),
    ("noise_df", "nu", False, False),
    ("dispersion", "dispersion", False, False),
    ("group_intercept", "a", True, False),
    ("group_coef", "b", True, True),
)


def summary_table(est, group_level: bool, diagnostics: dict) -> pd.DataFrame:
    post, prob = est.posterior_, est.interval_prob
    features = est._feature_names()
    slopes = est.random_slope_mask_
    tail = 100 * (1 - prob) / 2
    lo_name, hi_name = f"{tail:g}%", f"{100 - tail:g}%"
    blocks = []
    pooled = not getattr(est, "_fit_with_groups", True)  # complete pooling: no group rows
    for attr, name, by_group, by_feature in _ROWS:
        if (by_group and not group_level) or attr not in diagnostics:
            continue  # (nu: Gaussian noise has none)
        if pooled and attr.startswith("group_"):
            continue
        mean = post.mean(attr)
        r_hat, ess = diagnostics[attr]
        interval = post.interval(attr, prob)
        keep = np.ones(np.shape(mean), dtype=bool)
        if by_feature:  # features without random slopes have no sigma_b / own b
            keep = np.broadcast_to(slopes, keep.shape) if attr != "coef" else keep
        labels = _labels(name, by_group, by_feature, est.groups_, features)
        frame = pd.DataFrame(
            {
                "mean": np.ravel(mean),
                "sd": np.ravel(post.sd(attr)),
                lo_name: interval[..., 0].ravel(),
                hi_name: interval[..., 1].ravel(),
                "r_hat": np.broadcast_to(r_hat, keep.shape).ravel(),
                "ess_bulk": np.broadcast_to(ess, keep.shape).ravel(),
            },
            index=labels,
        )
        blocks.append(frame[keep.ravel()])
        if attr == "group_coef_sd" and not pooled:
            corr = _corr_rows(est, diagnostics, ["intercept", *features], lo_name, hi_name)
            blocks += [] if corr is None else [corr]
    return pd.concat(blocks)


def _corr_rows(est, diagnostics, effects, lo_name, hi_name):
    """``corr[a, b]`` rows: correlations between varying effects (lower triangle);
    None for a model saved before correlations existed."""
    if est.posterior_.group_corr is None or "group_corr" not in diagnostics:
        return None
    free = est._free_masks()["group_corr"] & ~np.isnan(diagnostics["group_corr"][1])
    rows, cols = np.nonzero(free)
    draws = est.posterior_.flat("group_corr")[:, rows, cols] if len(rows) else np.empty((0, 0))
    r_hat, ess = diagnostics["group_corr"]
    return pd.DataFrame(
        {
            "mean": est.group_corr_[rows, cols],
            "sd": draws.std(axis=0, ddof=1) if len(rows) else [],
            lo_name: est.group_corr_interval_[rows, cols, 0],
            hi_name: est.group_corr_interval_[rows, cols, 1],
            "r_hat": r_hat[rows, cols],
            "ess_bulk": ess[rows, cols],
        },
        index=[f"corr[{effects[j]}, {effects[i]}]" for i, j in zip(rows, cols, strict=True)],
    )


def _labels(name, by_group, by_feature, groups, features):
    if by_group and by_feature:
        return [f"{name}[{g}, {f}]" for g in groups for f in features]
    if by_group:
        return [f"{name}[{g}]" for g in groups]
    if by_feature:
        return [f"{name}[{f}]" for f in features]
    return [name]
