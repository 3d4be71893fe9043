"""The explicit engine: the textbook PyMC model with one row per observation.

This is the only module that imports PyMC.  The model is the one in
:mod:`skhier._spec`, written out with the group effects as parameters, in the
centered (``a[g] ~ Normal(mu_a, sigma_a)``) or non-centered
(``a[g] = mu_a + sigma_a * z[g]``) form.  It gives the same posterior as the
collapsed engine (a test says so) and is kept for cross-checking and for
model extensions the collapsed algebra cannot express.
"""

from __future__ import annotations

import numpy as np

from ._likelihoods import GLM_FAMILIES
from ._spec import design


def build_model(X, y, codes, n_groups, spec, scaling, offset=None):
    """The explicit PyMC model on the standardized scale (a GLM: the linear
    predictor ``offset + F beta + Z u`` on the link scale, ``y`` as observed)."""
    import pymc as pm

    F, Z, ys = design(X, y, spec, scaling)
    glm = spec.likelihood in GLM_FAMILIES
    q = spec.n_random
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, spec.beta_prior_sd, shape=spec.n_fixed)
        rates = spec.sd_prior_rates
        # population means of the group coefficients at X = 0 (scaled units)
        shift = scaling.x_mean / scaling.x_scale
        mu_a = beta[0] - (beta[1:] * shift).sum()
        mu = pm.math.concatenate([mu_a[None], beta[1:][list(spec.slope_idx)]])
        if spec.correlated and q > 1:
            chol, corr, tau = pm.LKJCholeskyCov(
                "chol_cov",
                n=q,
                eta=spec.prior_corr_eta,
                sd_dist=pm.Exponential.dist(rates[:q], shape=q),
                compute_corr=True,
            )
            pm.Deterministic("tau", tau)
            pm.Deterministic("corr", corr)
            if spec.parametrization == "centered":
                coef = pm.MvNormal("coef", mu=mu, chol=chol, shape=(n_groups, q))
                pm.Deterministic("u", coef - mu)
            else:
                z = pm.Normal("z", 0.0, 1.0, shape=(n_groups, q))
                pm.Deterministic("u", z @ chol.T)
        else:
            tau = pm.Exponential("tau", rates[:q], shape=q)
            if spec.parametrization == "centered":
                coef = pm.Normal("coef", mu=mu, sigma=tau, shape=(n_groups, q))
                pm.Deterministic("u", coef - mu)
            else:
                z = pm.Normal("z", 0.0, 1.0, shape=(n_groups, q))
                pm.Deterministic("u", z * tau)
        u = model["u"]
        mean = pm.math.dot(F, beta) + (Z * u[codes]).sum(axis=1)
        if glm:
            _glm_likelihood(pm, spec.likelihood, mean + offset, y)
            return model
        s = pm.Exponential("s", rates[q])
        if spec.likelihood == "student_t":
            nu = pm.Truncated("nu", pm.Gamma.dist(alpha=2.0, beta=0.1), lower=1.0)
            pm.StudentT("y", nu=nu, mu=mean, sigma=s, observed=ys)
        else:
            pm.Normal("y", mu=mean, sigma=s, observed=ys)
    return model


def _glm_likelihood(pm, family, eta, y):
    """Observed ``y`` given the linear predictor ``eta`` (logit or log link).  Negative
    binomial: ``alpha = 1 / phi^2`` with ``phi ~ HalfNormal(1)``, so ``phi = 0`` is
    Poisson and the prior shrinks toward it (Stan's prior-choice recommendation)."""
    if family == "bernoulli":
        pm.Bernoulli("y", logit_p=eta, observed=y)
    elif family == "poisson":
        pm.Poisson("y", mu=pm.math.exp(eta), observed=y)
    else:
        phi = pm.HalfNormal("phi", 1.0)
        alpha = pm.Deterministic("alpha", 1.0 / phi**2)
        pm.NegativeBinomial("y", mu=pm.math.exp(eta), alpha=alpha, observed=y)


def fit_explicit(X, y, codes, n_groups, spec, scaling, *, sampler_kwargs, rng, offset=None):
    """Sample the explicit model with PyMC's NUTS; same return value as
    :func:`skhier._backend_collapsed.fit_collapsed`."""
    import pymc as pm

    model = build_model(X, y, codes, n_groups, spec, scaling, offset)
    # GLMs: nutpie, PyMC's fast NUTS (compiled once per model structure by numba)
    fast = {"nuts_sampler": "nutpie"} if spec.likelihood in GLM_FAMILIES else {}
    with model:
        idata = pm.sample(
            draws=sampler_kwargs["draws"],
            tune=sampler_kwargs["tune"],
            chains=sampler_kwargs["chains"],
            cores=1,
            random_seed=sampler_kwargs["seed"],
            target_accept=sampler_kwargs["target_accept"],
            progressbar=sampler_kwargs["progressbar"],
            compute_convergence_checks=False,
            **fast,
            var_names=["beta", "tau", "u"]
            + [name for name in ("s", "corr", "nu", "alpha") if name in model.named_vars],
        )
    post = idata.posterior
    return {
        "corr": np.asarray(post["corr"].values) if "corr" in post else None,
        "nu": np.asarray(post["nu"].values) if "nu" in post else None,
        "beta": np.asarray(post["beta"].values),
        "u": np.asarray(post["u"].values),
        "tau": np.asarray(post["tau"].values),
        "s": np.asarray(post["s"].values) if "s" in post else np.ones(post["beta"].shape[:2]),
        # negative binomial: 1 / alpha (variance mu + dispersion * mu^2; 0 is Poisson)
        "dispersion": 1.0 / np.asarray(post["alpha"].values) if "alpha" in post else None,
        "diverging": np.asarray(idata.sample_stats["diverging"].values, dtype=bool),
        "max_treedepth": _treedepth(idata.sample_stats),
    }


def _treedepth(stats):
    """Transitions that hit the maximum tree depth (nutpie names the flag differently)."""
    for name in ("reached_max_treedepth", "maxdepth_reached"):
        if name in stats:
            return np.asarray(stats[name].values, dtype=bool)
    return np.zeros(stats["diverging"].shape, dtype=bool)
