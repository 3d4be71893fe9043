"""The explicit engine: the textbook PyMC model with one row per observation.

This is the only module that imports PyMC.  The model is the one in
:mod:`skhier._model.spec`, written out with the group effects as parameters, in the
centered (``a[g] ~ Normal(mu_a, sigma_a)``) or non-centered
(``a[g] = mu_a + sigma_a * z[g]``) form.  It gives the same posterior as the
collapsed engine (a test says so) and is kept for cross-checking and for
model extensions the collapsed algebra cannot express.
"""

from __future__ import annotations

import numpy as np

from skhier._model.likelihoods import GLM_FAMILIES
from skhier._model.spec import design
from skhier._util import interrupts as _interrupts
from skhier._util.warn import import_quietly


def build_model(X, y, codes, n_groups, spec, scaling, offset=None, user_units=False,
                weights=None):  # fmt: skip
    """The explicit PyMC model on the standardized scale (a GLM: the linear
    predictor ``offset + F beta + Z u`` on the link scale, ``y`` as observed).

    ``user_units``: also record the reported parameters in the user's units as
    deterministics (``mu_a``, ``mu_b``, ``sigma_a``, ``sigma_b``, ``a``, ``eps``).
    ``weights``: the rows' frequency weights; the likelihood is then a potential
    ``y_weighted``, each row's log density times its weight (no observed ``y``).
    """
    pm = import_quietly("pymc")

    F, Z, ys = design(X, y, spec, scaling)
    q = spec.n_random
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, spec.beta_prior_sd, shape=spec.n_fixed)
        # population means of the group coefficients at X = 0 (scaled units)
        shift = scaling.x_mean / scaling.x_scale
        mu_a = beta[0] - (beta[1:] * shift).sum()
        mu = pm.math.concatenate([mu_a[None], beta[1:][list(spec.slope_idx)]])
        u = _group_effects(pm, "", n_groups, q, spec, spec.correlated, spec.parametrization, mu)
        mean = pm.math.dot(F, beta) + (Z * u[codes]).sum(axis=1)
        _likelihood(pm, spec, mean, y if spec.likelihood in GLM_FAMILIES else ys, offset,
                    weights)  # fmt: skip
        if user_units:
            _user_units(pm, beta, {"": u}, spec, scaling)
    return model


def build_factors_model(X, y, codes, spec, scaling, offset=None, user_units=False,
                        weights=None):  # fmt: skip
    """The explicit PyMC model of several grouping factors (non-centered): one
    block of effects ``u[factor]`` per factor, deviations from the population, with
    their own SDs ``tau[factor]`` (and ``corr[factor]``)."""
    pm = import_quietly("pymc")

    F, _, ys = design(X, y, spec, scaling)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0.0, spec.beta_prior_sd, shape=spec.n_fixed)
        mean = pm.math.dot(F, beta)
        effects = {}
        for f, term in enumerate(spec.factors):
            idx = list(term.slope_idx)
            Z = np.hstack([np.ones((X.shape[0], 1)), X[:, idx] / scaling.x_scale[idx]])
            name = f"[{term.name}]"
            u = _group_effects(
                pm, name, term.n_levels, term.n_random, spec, term.correlated, "non-centered"
            )
            effects[name] = (u, idx)
            mean = mean + (Z * u[codes[:, f]]).sum(axis=1)
        _likelihood(pm, spec, mean, y if spec.likelihood in GLM_FAMILIES else ys, offset,
                    weights)  # fmt: skip
        if user_units:
            _user_units(pm, beta, effects, spec, scaling)
    return model


def _group_effects(pm, suffix, n_levels, q, spec, correlated, parametrization, mu=None):
    """Effects ``u`` (n_levels, q), deviations from ``mu``: SDs ``tau`` ~
    Exponential(mean prior_group_sd), LKJ correlations when ``correlated``."""
    rate = 1.0 / spec.prior_group_sd
    centered = parametrization == "centered" and mu is not None
    if correlated and q > 1:
        chol, corr, tau = pm.LKJCholeskyCov(
            f"chol_cov{suffix}",
            n=q,
            eta=spec.prior_corr_eta,
            sd_dist=pm.Exponential.dist(rate, shape=q),
            compute_corr=True,
        )
        pm.Deterministic(f"tau{suffix}", tau)
        pm.Deterministic(f"corr{suffix}", corr)
        if centered:
            coef = pm.MvNormal(f"coef{suffix}", mu=mu, chol=chol, shape=(n_levels, q))
            return pm.Deterministic(f"u{suffix}", coef - mu)
        z = pm.Normal(f"z{suffix}", 0.0, 1.0, shape=(n_levels, q))
        return pm.Deterministic(f"u{suffix}", z @ chol.T)
    tau = pm.Exponential(f"tau{suffix}", rate, shape=q)
    if centered:
        coef = pm.Normal(f"coef{suffix}", mu=mu, sigma=tau, shape=(n_levels, q))
        return pm.Deterministic(f"u{suffix}", coef - mu)
    z = pm.Normal(f"z{suffix}", 0.0, 1.0, shape=(n_levels, q))
    return pm.Deterministic(f"u{suffix}", z * tau)


def _likelihood(pm, spec, mean, y, offset, weights=None):
    if spec.likelihood in GLM_FAMILIES:
        _glm_likelihood(pm, spec.likelihood, mean + offset, y, weights)
        return
    s = pm.Exponential("s", 1.0 / spec.prior_noise_sd)
    if spec.likelihood == "student_t":
        nu = pm.Truncated("nu", pm.Gamma.dist(alpha=2.0, beta=0.1), lower=1.0)
        _observe(pm, pm.StudentT, y, weights, nu=nu, mu=mean, sigma=s)
    else:
        _observe(pm, pm.Normal, y, weights, mu=mean, sigma=s)


def _observe(pm, dist, y, weights, **params):
    """``y ~ dist(**params)``, observed; with frequency ``weights``, a potential
    of the weighted log density instead."""
    if weights is None:
        dist("y", observed=y, **params)
    else:
        pm.Potential("y_weighted", (weights * pm.logp(dist.dist(**params), y)).sum())


def _user_units(pm, beta, effects, spec, scaling):
    """Deterministics in the user's units, as skhier reports them: ``mu_a`` (at
    X = 0), ``mu_b``, and per factor ``sigma_a``, ``sigma_b`` (random slopes only)
    and the group intercepts ``a`` (one factor: ``mu_a`` plus the effect; several:
    the deviation, as ``group_effects_``)."""
    ys, xm, xsc = scaling.y_scale, scaling.x_mean, scaling.x_scale
    mu_a = pm.Deterministic("mu_a", scaling.y_mean + ys * (beta[0] - (beta[1:] * xm / xsc).sum()))
    pm.Deterministic("mu_b", ys * beta[1:] / xsc)
    model = pm.modelcontext(None)
    for suffix, (u, idx) in _effect_slopes(effects, spec).items():
        tau = model[f"tau{suffix}"]
        pm.Deterministic(f"sigma_a{suffix}", ys * tau[0])
        if idx:
            pm.Deterministic(f"sigma_b{suffix}", ys * tau[1:] / xsc[idx])
        pm.Deterministic(f"a{suffix}", (mu_a if suffix == "" else 0.0) + ys * u[:, 0])
    if "s" in model.named_vars:
        pm.Deterministic("eps", ys * model["s"])


def _effect_slopes(effects, spec):
    if "" in effects:  # one factor
        return {"": (effects[""], list(spec.slope_idx))}
    return effects


def _glm_likelihood(pm, family, eta, y, weights=None):
    """Observed ``y`` given the linear predictor ``eta`` (logit or log link).  Negative
    binomial: ``alpha = 1 / phi^2`` with ``phi ~ HalfNormal(1)``, so ``phi = 0`` is
    Poisson and the prior shrinks toward it (Stan's prior-choice recommendation).
    With ``weights``, a binary ``y`` may be a proportion (successes out of trials:
    the weight holds the trials)."""
    if family == "bernoulli":
        if weights is None:
            pm.Bernoulli("y", logit_p=eta, observed=y)
        else:  # w (y log p + (1 - y) log(1 - p)), y a proportion
            log_p, log_q = -pm.math.log1pexp(-eta), -pm.math.log1pexp(eta)
            pm.Potential("y_weighted", (weights * (y * log_p + (1.0 - y) * log_q)).sum())
    elif family == "poisson":
        _observe(pm, pm.Poisson, y, weights, mu=pm.math.exp(eta))
    else:
        phi = pm.HalfNormal("phi", 1.0)
        alpha = pm.Deterministic("alpha", 1.0 / phi**2)
        _observe(pm, pm.NegativeBinomial, y, weights, mu=pm.math.exp(eta), alpha=alpha)


def _sample(pm, model, spec, config, wanted):
    """PyMC's NUTS on ``model`` with ``config``, keeping the variables of ``wanted``
    the model has: nutpie for GLMs (compiled once per model structure by numba),
    PyMC's own sampler with skhier's Ctrl-C callback otherwise."""
    fast = (
        {"nuts_sampler": "nutpie"}
        if spec.likelihood in GLM_FAMILIES
        else {"callback": _interrupts.pymc_callback}
    )
    with model:
        idata = pm.sample(
            draws=config.draws, tune=config.tune, chains=config.chains, cores=1,
            random_seed=config.seed, target_accept=config.target_accept,
            progressbar=config.progressbar, compute_convergence_checks=False, **fast,
            var_names=[v for v in wanted if v in model.named_vars],
        )  # fmt: skip
    _interrupts.check()  # PyMC returns the draws so far on Ctrl-C
    return idata


def fit_explicit(X, y, codes, n_groups, spec, scaling, *, config, rng, offset=None,
                 weights=None):  # fmt: skip
    """Sample the explicit model with PyMC's NUTS; same return value as
    :func:`skhier._engines.collapsed.engine.fit_collapsed`."""
    pm = import_quietly("pymc")

    model = build_model(X, y, codes, n_groups, spec, scaling, offset, weights=weights)
    wanted = ["beta", "tau", "u", "s", "corr", "nu", "alpha"]
    idata = _sample(pm, model, spec, config, wanted)
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


def fit_explicit_factors(X, y, codes, spec, scaling, *, config, rng, store_draws="auto",
                         offset=None, weights=None):  # fmt: skip
    """Sample the explicit model of several grouping factors with PyMC's NUTS (nutpie
    for GLMs); the draws in the Gibbs engine's form (each factor's effects as moments
    over every draw plus the kept joint draws)."""
    from skhier._posterior.group_draws import kept_per_chain, kept_positions

    pm = import_quietly("pymc")
    model = build_factors_model(X, y, codes, spec, scaling, offset, weights=weights)
    names = [f"[{t.name}]" for t in spec.factors]
    wanted = ["beta"] + [f"{v}{n}" for n in names for v in ("tau", "u", "corr")]
    wanted += ["s", "nu", "alpha"]
    idata = _sample(pm, model, spec, config, wanted)
    post = idata.posterior
    beta = np.asarray(post["beta"].values)
    n_chains, n_draws = beta.shape[:2]
    factors = []
    for term, name in zip(spec.factors, names, strict=True):
        u = np.asarray(post[f"u{name}"].values)  # (C, D, L, q)
        flat = u.reshape((-1,) + u.shape[2:])
        mean = flat.mean(0)
        second = np.einsum("slq,slr->lqr", flat, flat) / len(flat)
        n_kept = kept_per_chain(store_draws, n_chains, n_draws, term.n_levels, term.n_random)
        kept = kept_positions(n_draws, n_kept)
        factors.append({
            "tau": np.asarray(post[f"tau{name}"].values),
            "corr": np.asarray(post[f"corr{name}"].values) if f"corr{name}" in post else None,
            "u": u[:, kept],
            "mean": mean,
            "cov": second - mean[:, :, None] * mean[:, None, :],
        })  # fmt: skip
    return {
        "beta": beta,
        "s": np.asarray(post["s"].values) if "s" in post else np.ones((n_chains, n_draws)),
        "nu": np.asarray(post["nu"].values) if "nu" in post else None,
        "dispersion": 1.0 / np.asarray(post["alpha"].values) if "alpha" in post else None,
        "factors": factors,
        "kept": kept,
        "diverging": np.asarray(idata.sample_stats["diverging"].values, dtype=bool),
        "max_treedepth": _treedepth(idata.sample_stats),
        "inference": {"method": "nuts"},
    }
