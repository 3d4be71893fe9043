"""The augmented engine: Student-t noise through its scale-mixture representation.

Per-row precision weights make the model conditionally Gaussian, so each sweep
reuses the collapsed engine's density (on weighted sufficient statistics) and
its exact draws; :mod:`skhier._engines.augmented.kernels` has the sampler and its derivation.
This module prepares the data, starts the chains (in parallel threads: each
chain is one compiled loop that releases the GIL) and returns the same draws as
the collapsed engine plus ``nu``.
"""

from __future__ import annotations

import os

import numpy as np

from skhier._engines.augmented.kernels import chain_for
from skhier._engines.collapsed.engine import laplace_fit, n_params, standardized_draws
from skhier._engines.collapsed.reference import sufficient_stats
from skhier._model.spec import design
from skhier._util.threads import stop_flag, thread_map


def fit_augmented(X, y, codes, n_groups, spec, scaling, *, config, rng, weights=None):
    """Sample the Student-t model; same result as
    :func:`skhier._engines.collapsed.engine.fit_collapsed` plus ``nu`` (C, D).
    ``weights``: the rows' frequency weights (each copy of a row has its own
    latent noise scale)."""
    F, Z, ys = design(X, y, spec, scaling)
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    freq = np.ones(len(ys)) if weights is None else np.ascontiguousarray(weights, np.float64)
    # The Gaussian model's Laplace approximation: chains start around its mode,
    # and its curvature is the initial HMC metric (replaced during warm-up).
    stats = sufficient_stats(F, Z, ys, codes, n_groups, weights=weights)
    mode, metric, _ = laplace_fit(stats, spec)
    if not np.all(np.isfinite(metric)) or not np.all(np.isfinite(mode)):
        mode, metric = np.zeros(n_params(spec)), np.eye(n_params(spec)) * 0.1
    chains, draws, tune = config.chains, config.draws, config.tune
    streams = np.random.SeedSequence(config.seed).spawn(chains)
    starts = mode + rng.standard_normal((chains, len(mode))) @ metric.T
    data = (F, Z, ys, codes, int(n_groups), freq)
    spec_arrays = (
        spec.beta_prior_sd,
        spec.sd_prior_rates,
        bool(spec.correlated),
        float(spec.prior_corr_eta),
    )
    p, q = spec.n_fixed, spec.n_random
    outs = [
        (
            np.empty((draws, len(mode))),
            np.empty((draws, p)),
            np.empty((draws, n_groups, q)),
            np.empty(draws),
            np.zeros(draws, dtype=np.bool_),
            np.zeros(draws, dtype=np.bool_),
        )
        for _ in range(chains)
    ]

    run_chain = chain_for(spec.n_random, spec.n_fixed + 1)

    def chain(c):
        run_chain(
            np.random.default_rng(streams[c]),
            starts[c],
            np.ascontiguousarray(metric),
            data,
            spec_arrays,
            draws,
            tune,
            float(config.target_accept),
            outs[c],
            stop,
        )

    stop = stop_flag()
    thread_map(chain, range(chains), os.cpu_count() or 1, stop)
    theta, beta, u, nu, diverging, capped = (np.stack(parts) for parts in zip(*outs, strict=True))
    result = standardized_draws(
        theta,
        beta.reshape((-1, p)),
        u.reshape((-1, n_groups, q)),
        spec,
        diverging,
        capped,
    )
    result["nu"] = nu
    return result
