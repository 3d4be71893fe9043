"""Bayesian workflow on sleepstudy: prior predictive check, fit, LOO model comparison.
===================================================================================

Three steps of the workflow every Bayesian guide starts with (Gelman et al. 2020,
"Bayesian Workflow"), on reaction times (ms) of 18 subjects over 10 days:

1. **Prior predictive check.**  What reaction times do the priors imply, before
   seeing the data?  ``sample_prior_predictive`` draws them exactly.  The table
   shows, for the default priors and two tighter ones, the implied population
   intercept ``mu_a`` and spread of subjects ``sigma_a`` (in ms) and the share of
   simulated reaction times that are impossible (below 0 ms) or implausible
   (above 2 s).  The default intercept prior is deliberately vague (10 SDs of
   ``y`` around its mean), so about a third of its simulated reaction times are
   negative; with 180 rows the data dominate it, which the sensitivity check
   (the fit under both priors) confirms.  Tighten a prior when the data are too
   few to override it and it allows the impossible.
2. **Fit** and check the posterior predictive distribution against the data.
3. **Compare pooling choices with PSIS-LOO** (``az.compare``): one line for
   everyone (complete pooling), varying intercepts, varying intercepts and slopes.
   The pointwise log likelihood is conditional on the group effects, so LOO
   measures predictions for new days of the *same* subjects.

Run::

      python examples/bayesian_workflow.py          (about ten seconds)
      python examples/bayesian_workflow.py --fast   (smoke test)
"""

import sys
import warnings

import arviz as az
import numpy as np

from skhier import POPULATION, HierarchicalRegressor
from skhier.datasets import load_sleepstudy

#: prior settings to check (all on the standardized scale: units of sd(y), sd(X))
PRIORS = {
    "default": {},
    "prior_intercept_sd=1": {"prior_intercept_sd": 1.0},
    "+ prior_group_sd=0.5": {"prior_intercept_sd": 1.0, "prior_group_sd": 0.5},
}


def prior_table(X, y, subject, n_samples):
    """Implied mu_a and sigma_a (ms), and outcomes out of range, per prior."""
    print(f"Prior predictive check ({n_samples} draws from each prior):")
    print(f"{'prior':>22} {'mu_a 95% (ms)':>16} {'sigma_a median':>15} "
          f"{'y < 0 ms':>9} {'y > 2000 ms':>12}")  # fmt: skip
    for name, params in PRIORS.items():
        prior = HierarchicalRegressor(**params).sample_prior_predictive(
            X, y, groups=subject, n_samples=n_samples, random_state=0
        )
        mu_a = np.quantile(prior.prior["mu_a"].values, [0.025, 0.975])
        sigma_a = np.median(prior.prior["sigma_a"].values)
        draws = prior.prior_predictive["y"].values
        print(
            f"{name:>22} {mu_a[0]:>7.0f} {mu_a[1]:>7.0f} {sigma_a:>15.0f} "
            f"{(draws < 0).mean():>9.1%} {(draws > 2000).mean():>12.1%}"
        )


def main(fast=False):
    data = load_sleepstudy()
    X, y, subject = data[["Days"]], data["Reaction"], data["Subject"]
    settings = {"draws": 200, "tune": 200, "chains": 2} if fast else {}

    # 1. what do the priors say about reaction times?
    prior_table(X, y, subject, n_samples=200 if fast else 2000)
    print(f"Observed: {y.min():.0f} to {y.max():.0f} ms, subjects' means differ by "
          f"SD {y.groupby(subject).mean().std():.0f} ms")  # fmt: skip
    # The default intercept prior is deliberately vague (10 SDs of y); is the
    # posterior sensitive to it?  Fit both and compare.
    for name in ("default", "prior_intercept_sd=1"):
        est = HierarchicalRegressor(random_state=0, **PRIORS[name], **settings)
        est.fit(X, y, groups=subject)
        low, high = est.intercept_interval_
        print(f"Posterior with the {name} prior: mu_a {est.intercept_:.1f} ms "
              f"[{low:.1f}, {high:.1f}], sigma_a {est.group_intercept_sd_:.1f} ms")  # fmt: skip
    print()

    # 2. fit, and check the posterior predictive distribution against the data
    models = {
        "intercepts + slopes": (HierarchicalRegressor(random_state=0, **settings), subject),
        "intercepts only": (
            HierarchicalRegressor(random_slopes=None, random_state=0, **settings),
            subject,
        ),
        "complete pooling": (HierarchicalRegressor(random_state=0, **settings), POPULATION),
    }
    loo = {}
    with warnings.catch_warnings():
        # LOO's Pareto k warning: a few influential days of extreme subjects
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        # ArviZ's own use of a pandas keyword that newer pandas deprecates
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame")
        for name, (est, groups) in models.items():
            est.fit(X, y, groups=groups)
            loo[name] = est.compute_log_likelihood(X, y, groups=groups)
        best = models["intercepts + slopes"][0]
        replicated = loo["intercepts + slopes"].posterior_predictive["y"].values
        sd_rep = replicated.std(axis=-1).ravel()
        print(
            "Posterior predictive check: SD of reaction times observed "
            f"{y.std(ddof=0):.1f} ms, replicated {np.median(sd_rep):.1f} ms "
            f"(share of replicates above observed: {(sd_rep > y.std(ddof=0)).mean():.2f})\n"
        )

        # 3. which pooling predicts new days of these subjects best?
        table = az.compare(loo)
    print("PSIS-LOO comparison (elpd: expected log predictive density, higher is better):")
    print(table[["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight"]].round(1))
    return best


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
