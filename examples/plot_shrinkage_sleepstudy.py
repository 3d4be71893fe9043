"""Shrinkage, pictured: partial pooling on the sleepstudy data
=============================================================

Fits ``Reaction ~ Days + (Days | Subject)`` on the raw data and draws, with
:func:`skhier.plot.plot_shrinkage`, each subject's intercept (reaction time on day 0)
and slope (added reaction time per day) three ways: the subject's own least-squares
line (no pooling, open circles), the hierarchical model's posterior means with their
credible intervals (partial pooling, filled), and one line for everybody (complete
pooling, dashed). Every subject has 10 rows, so instead of an axis of group sizes the
subjects stand side by side, sorted by their own estimates; the arrows show how far
the model pulls each subject toward the population mean (dotted).

Run::

      python examples/plot_shrinkage_sleepstudy.py          (a few seconds)
      python examples/plot_shrinkage_sleepstudy.py --fast   (smoke test)
      python examples/plot_shrinkage_sleepstudy.py --save-figure shrinkage.png
"""

import sys

import matplotlib.pyplot as plt
import numpy as np

from skhier import HierarchicalRegressor
from skhier.datasets import load_sleepstudy
from skhier.plot import plot_shrinkage


def main(fast=False, save_figure=None):
    data = load_sleepstudy()
    X, y, subject = data[["Days"]], data["Reaction"], data["Subject"]
    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}
    est = HierarchicalRegressor(random_state=0, **settings)
    est.fit(X, y, groups=subject)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    plot_shrinkage(est, X, y, groups=subject, ax=left)
    plot_shrinkage(est, X, y, groups=subject, effect="Days", ax=right)

    own = {g: np.polyfit(d["Days"], d["Reaction"], 1) for g, d in data.groupby("Subject")}
    own_slope = np.array([own[g][0] for g in est.groups_])
    moved = np.abs(est.group_coef_[:, 0] - own_slope)
    i = int(np.argmax(moved))
    print(
        f"Population: intercept {est.intercept_:.1f} ms, slope {est.coef_[0]:.1f} ms/day; "
        f"subjects differ by SD {est.group_intercept_sd_:.1f} ms (intercept) and "
        f"{est.group_coef_sd_[0]:.1f} ms/day (slope)."
    )
    print(
        f"Subject {est.groups_[i]} moves most: slope {own_slope[i]:.1f} alone -> "
        f"{est.group_coef_[i, 0]:.1f} ms/day pooled."
    )
    if save_figure is not None:
        fig.savefig(save_figure, dpi=100)
        print(f"Saved {save_figure}")
    return est


if __name__ == "__main__":
    path = sys.argv[sys.argv.index("--save-figure") + 1] if "--save-figure" in sys.argv else None
    main(fast="--fast" in sys.argv, save_figure=path)
    plt.show()
