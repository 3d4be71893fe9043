"""Seeing a multilevel model: radon in 85 Minnesota counties
=========================================================

Gelman & Hill's radon data (919 homes, 1 to 116 per county): log radon against
the floor it was measured on (``basement``: 0 = basement, 1 = first floor), with a
varying intercept per county.  Four pictures of the fitted model, each a function
of :mod:`skhier.plot` that returns a matplotlib ``Axes``:

1. **Shrinkage** (:func:`~skhier.plot.plot_shrinkage`): each county's own mean
   (open circles) against the number of homes measured there, pulled toward the
   state-wide mean (dotted) to the model's estimate (dots, with 95% intervals).
   Counties with one or two homes move most; the largest barely move.
2. **Forest plot** (:func:`~skhier.plot.plot_forest`): the 40 most extreme
   county intercepts, sorted, with their intervals.
3. **Prior and posterior predictive checks** (:func:`~skhier.plot.plot_ppc`): the
   density of log radon against data sets replicated from the priors alone, then
   from the posterior.
4. **Group predictions** (:func:`~skhier.plot.plot_group_predictions`): the fitted
   lines of six counties across ``basement`` with 90% credible bands of the mean,
   one small panel per county (given an array of Axes) so the bands do not overlap.

Counties are labelled by name (``county.name``).

Run::

      python examples/plot_radon_pictures.py          (a few seconds)
      python examples/plot_radon_pictures.py --fast   (smoke test)
"""

import sys

import matplotlib.pyplot as plt

from skhier import HierarchicalRegressor
from skhier.datasets import load_radon
from skhier.plot import plot_forest, plot_group_predictions, plot_ppc, plot_shrinkage


def main(fast=False):
    radon = load_radon()
    X, y, county = radon[["basement"]], radon["log.radon"], radon["county.name"].rename("county")
    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}
    est = HierarchicalRegressor(random_slopes=None, random_state=0, **settings)
    est.fit(X, y, groups=county)
    print(
        f"{len(est.groups_)} counties: state-wide intercept {est.intercept_:.2f}, "
        f"first-floor effect {est.coef_[0]:.2f}, counties differ by SD "
        f"{est.group_intercept_sd_:.2f} (log radon)"
    )

    _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    plot_shrinkage(est, X, y, groups=county, ax=ax)

    _, ax = plt.subplots(figsize=(6, 8), layout="constrained")
    plot_forest(est, max_groups=40, ax=ax)

    _, (prior_ax, post_ax) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    plot_ppc(est, X, y, groups=county, kind="prior", random_state=0, ax=prior_ax)
    prior_ax.set_xlim(-15, 15)  # the default priors allow far wider data than these
    plot_ppc(est, X, y, groups=county, random_state=0, ax=post_ax)

    _, axes = plt.subplots(2, 3, figsize=(9, 5.5), sharex=True, sharey=True, layout="constrained")
    plot_group_predictions(
        est, X, groups=county, feature="basement", y=y, band="mean", prob=0.9, ax=axes
    )
    return est


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
    plt.show()
