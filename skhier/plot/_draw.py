"""Drawing for :func:`skhier.plot.plot_ppc` and :func:`skhier.plot.plot_group_predictions`.

Callers pass matplotlib Axes; this module never imports matplotlib itself.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from skhier.plot import _data as data
from skhier.plot._axes import legend_on_top
from skhier.plot._axes import sqrt_ticks as _sqrt_ticks


def _counts_kw(est, exposure):
    if exposure is None:
        return {}
    if data.family(est) != "poisson":
        raise ValueError("`exposure` applies to HierarchicalPoissonRegressor only; leave it None.")
    return {"exposure": exposure}


def replicated(est, X, y, groups, kind, n_draws, exposure, random_state):
    """``(n_rows, n_draws)`` outcome draws (0/1 for a classifier) and the kind's name."""
    kw = _counts_kw(est, exposure)
    if kind == "posterior":
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(est)
        draws = est.sample_y(X, groups=groups, n_samples=n_draws, random_state=random_state, **kw)
        if data.family(est) == "binomial":
            draws = draws == est.classes_[1]
        return np.asarray(draws, dtype=np.float64), "posterior predictive"
    if kind == "prior":
        idata = est.sample_prior_predictive(
            X, y, groups=groups, n_samples=n_draws, random_state=random_state, **kw
        )
        draws = np.asarray(idata.prior_predictive["y"], dtype=np.float64)
        return draws.reshape(-1, draws.shape[-1]).T, "prior predictive"
    raise ValueError(f'`kind` must be "posterior" or "prior"; got {kind!r}.')


def ppc_continuous(ax, observed, reps, name, yname):
    bw = data.bandwidth(observed)
    lo = min(observed.min(), np.nanquantile(reps, 0.001)) - 4 * bw
    hi = max(observed.max(), np.nanquantile(reps, 0.999)) + 4 * bw
    grid = np.linspace(lo, hi, 512)
    for j in range(reps.shape[1]):
        label = f"{name} draws" if j == 0 else "_nolegend_"
        ax.plot(
            grid, data.density(reps[:, j], grid, bw), color="C0", alpha=0.25, lw=0.8, label=label
        )
    ax.plot(grid, data.density(observed, grid, bw), color="k", lw=2, label="observed")
    ax.set_xlabel(yname)
    ax.set_ylabel("density")


def ppc_binary(ax, observed, reps, labels, prob, name, ylabel, group="group"):
    """Proportion of 1s per group (first factor), observed and replicated."""
    if labels is None:
        codes, names = np.zeros(len(observed), dtype=np.intp), np.array(["all rows"])
    else:
        labels = labels[:, 0] if labels.ndim == 2 else labels
        codes, names = pd.factorize(pd.Series(labels), sort=True)
    n = np.bincount(codes)
    obs = np.bincount(codes, observed) / n
    sums = np.zeros((len(n), reps.shape[1]))
    np.add.at(sums, codes, reps)
    rep = sums / n[:, None]
    lo, hi = np.quantile(rep, [(1 - prob) / 2, (1 + prob) / 2], axis=1)
    order = np.argsort(obs, kind="stable")
    x = np.arange(len(n))
    ax.vlines(
        x, lo[order], hi[order], color="C0", alpha=0.45, lw=3, label=f"{name}: {prob:.0%} interval"
    )
    ax.plot(x, rep.mean(1)[order], "_", color="C0", ms=9, mew=2, label=f"{name}: mean")
    ax.plot(x, obs[order], "o", color="k", ms=4, label="observed")
    if len(n) <= 40:
        ax.set_xticks(x, [data.level_name(v) for v in np.asarray(names)[order]], rotation=90)
    else:
        ax.set_xticks([])
    ax.set_xlabel(f"{group} (sorted by the observed proportion)" if labels is not None else "")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.03, 1.03)
    ax.set_yticks(np.linspace(0, 1, 6))


def ppc_counts(ax, observed, reps, prob, name, yname):
    """Rootogram-like: how many rows have each count (in bins of several counts when
    they reach far), observed (bars) and replicated."""
    top = int(min(max(observed.max(), np.nanquantile(reps, 0.99)), 100))
    width = int(np.ceil((top + 1) / 40))  # at most 40 bars
    n_bins = top // width + 1
    obs = np.bincount(np.minimum(observed, top).astype(np.intp) // width, minlength=n_bins)
    capped = np.minimum(np.nan_to_num(reps, nan=0.0, posinf=top), top).astype(np.intp) // width
    freq = np.stack([np.bincount(c, minlength=n_bins) for c in capped.T])
    lo, hi = np.quantile(freq, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    k = np.arange(n_bins) * width + (width - 1) / 2
    ax.bar(k, obs, width=0.8 * width, color="0.85", edgecolor="0.5", label="observed")
    ax.vlines(k, lo, hi, color="C0", alpha=0.6, lw=2, label=f"{name}: {prob:.0%} interval")
    ax.plot(k, freq.mean(0), "o", color="C0", ms=4, label=f"{name}: mean")
    ax.set_yscale("function", functions=(_sqrt, np.square))
    _sqrt_ticks(ax, max(obs.max(), hi.max()))
    last = (n_bins - 1) * width
    more = (observed > top).any() or (reps > top).any()
    notes = [f"bins of {width}"] if width > 1 else []
    notes += [f"the last bar: {last} or more"] if more else []
    ax.set_xlabel(f"{yname} ({'; '.join(notes)})" if notes else yname)
    what = "this count" if width == 1 else "a count in this bin"
    ax.set_ylabel(f"rows with {what} (square-root scale)")


def _sqrt(v):
    return np.sqrt(np.clip(v, 0.0, None))


# ---------------------------------------------------------- group predictions
def _band(est, Xp, kw, band, prob):
    fam = data.family(est)
    if fam == "gaussian" and band == "mean":
        mean, sd = est.predict(Xp, return_std=True, **kw)
        z = NormalDist().inv_cdf(0.5 + (est.interval_prob if prob is None else prob) / 2)
        return mean - z * sd, mean + z * sd
    if fam == "binomial":
        bounds = est.predict_proba_interval(Xp, prob=prob, **kw)
    elif fam == "poisson" and band == "mean":
        bounds = est.predict_rate_interval(Xp, prob=prob, **kw)
    else:
        bounds = est.predict_interval(Xp, prob=prob, **kw)
    return bounds[:, 0], bounds[:, 1]


def _pick_groups(est, codes, group_labels, n_groups):
    if group_labels is not None:
        pick = data.group_codes(est.groups_, group_labels)
        if (pick < 0).any():
            missing = [g for g, c in zip(group_labels, pick, strict=True) if c < 0]
            raise ValueError(f"`group_labels` {missing} are not groups of the model (groups_).")
        present = np.isin(pick, codes)
        if not present.all():
            raise ValueError(
                f"`group_labels` {list(np.asarray(group_labels)[~present])} have no rows in X."
            )
        return pick
    sizes = np.bincount(codes[codes >= 0], minlength=len(est.groups_))
    present = np.flatnonzero(sizes > 0)
    by_size = present[np.argsort(sizes[present], kind="stable")]
    at = np.linspace(0, len(by_size) - 1, min(n_groups, len(by_size))).round().astype(np.intp)
    return by_size[np.unique(at)]


def group_predictions(
    est, X, groups, feature, group_labels, n_groups, y, band, prob, n_points, axes
):
    features, names, labels = data.split_rows(est, X, groups)
    if labels is None:
        raise ValueError(
            "plot_group_predictions needs the group label of every row: pass `groups=` (or "
            "keep the `group_col` column in X)."
        )
    j = data.effect_index(est, feature, names)
    if j < 0:
        raise ValueError(f"`feature` must be a feature name ({names}) or index; got {feature!r}.")
    fam = data.family(est)
    band = ("mean" if fam == "binomial" else "predictive") if band is None else band
    if band not in ("predictive", "mean") or (fam == "binomial" and band == "predictive"):
        allowed = '"mean"' if fam == "binomial" else '"predictive" or "mean"'
        raise ValueError(f"`band` must be {allowed} for this estimator; got {band!r}.")
    codes = data.group_codes(est.groups_, labels)
    pick = _pick_groups(est, codes, group_labels, n_groups)
    if len(axes) > 1 and len(axes) < len(pick):
        raise ValueError(f"`ax` has {len(axes)} Axes for {len(pick)} groups; pass one or enough.")
    yv = None if y is None else data.outcome(est, y, features.shape[0])
    in_x = getattr(est, "group_col", None) is not None and hasattr(X, "columns")
    panels = len(axes) > 1
    values = np.unique(features[:, j])
    binary = len(values) == 2  # drawn at its two values, not along a line between them
    rng = np.random.default_rng(0)  # jitter of the observed points: the same every time
    with data.matrix_interface(est):  # the grid is in the (encoded) feature columns
        _draw_groups(est, X, features, names, codes, pick, j, values, binary, in_x, fam, band,
                     prob, n_points, axes, panels, yv, rng)  # fmt: skip
    _label_group_axes(est, axes, pick, panels, names, j, y, fam, band, prob, groups, values)


def _draw_groups(est, X, features, names, codes, pick, j, values, binary, in_x, fam, band,
                 prob, n_points, axes, panels, yv, rng):  # fmt: skip
    for i, g in enumerate(pick):
        ax, color = axes[i if panels else 0], f"C{i % 10}"
        rows = codes == g
        span = features[rows, j] if np.ptp(features[rows, j]) > 0 else features[:, j]
        at = values if binary else np.linspace(span.min(), span.max(), n_points)
        grid = np.tile(features[rows].mean(0), (len(at), 1))
        grid[:, j] = at
        label = est.groups_[g : g + 1].repeat(len(at))
        if hasattr(X, "columns"):
            grid = pd.DataFrame(grid, columns=names)
            if in_x:
                grid[est.group_col] = label
        kw = {} if in_x else {"groups": label}
        mean = est.predict_proba(grid, **kw)[:, 1] if fam == "binomial" else est.predict(grid, **kw)
        lo, hi = _band(est, grid, kw, band, prob)
        alpha = 0.15 if panels or len(pick) == 1 else 0.08  # lighter where bands overlap
        ax.fill_between(at, lo, hi, color=color, alpha=alpha, lw=0)
        marker = "o" if binary else None
        ax.plot(at, mean, color=color, marker=marker, ms=4, label=data.level_name(est.groups_[g]))
        if yv is not None:
            _observed(ax, features[rows, j], yv[rows], fam, binary, np.ptp(values), color, rng)


def _label_group_axes(est, axes, pick, panels, names, j, y, fam, band, prob, groups, values):
    binary = len(values) == 2
    yname = "y" if getattr(y, "name", None) is None else str(y.name)
    ylabel = {"gaussian": yname, "poisson": f"expected {yname} (exposure 1)"}
    if fam == "binomial":
        ylabel["binomial"] = f"P({yname} = {est.classes_[1]})"
    p = est.interval_prob if prob is None else prob
    what = (
        "predictive interval (noise included)" if band == "predictive" else "interval of the mean"
    )
    title, group = f"Posterior mean and {p:.0%} {what}", data.group_name(est, groups)
    for ax, g in zip(axes[: len(pick)] if panels else axes, pick, strict=False):
        spec = ax.get_subplotspec() if panels else None
        if spec is None or spec.is_last_row():
            ax.set_xlabel(names[j])
        if spec is None or spec.is_first_col():
            ax.set_ylabel(ylabel[fam])
        if binary:
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.margins(x=0.12)
        if fam == "binomial":
            ax.set_ylim(-0.03, 1.03)
        if panels:  # each panel names its group; the figure says what the band is
            ax.set_title(f"{group} {data.level_name(est.groups_[g])}", fontsize="medium")
        else:
            ax.set_title(title)
            legend_on_top(ax, ncol=min(len(pick), 6), title=group)
        if fam == "binomial":
            ax.set_yticks(np.linspace(0, 1, 6))
    fig = axes[0].figure
    if panels and getattr(fig, "_suptitle", None) is None:
        fig.suptitle(title)


def _observed(ax, x, y, fam, binary, width, color, rng):
    """The observed rows of a group: 0/1 outcomes moved a little inside [0, 1] (off the
    frame, apart from each other); a 0/1 feature jittered sideways; small and
    see-through, so that the curves and bands stay visible."""
    if binary and width > 0:
        x = x + rng.uniform(-0.05, 0.05, len(x)) * width
    if fam == "binomial":
        inward = rng.uniform(0.01, 0.06, len(y))
        y = np.where(y > 0.5, 1.0 - inward, inward)
        ax.scatter(x, y, color=color, s=8, alpha=0.35, lw=0)
    else:
        ax.scatter(x, y, color=color, s=12, alpha=0.6, lw=0)
