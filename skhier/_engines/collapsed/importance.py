"""Importance sampling from the Laplace approximation, corrected to exactness.

With many groups the posterior of the few sampled variance parameters is close
to Gaussian, so a proposal built from its mode and curvature (a multivariate t,
for heavier tails than the target) gets importance weights that are nearly
equal.  Pareto-smoothed importance sampling (PSIS; Vehtari, Simpson, Gelman, Yao
and Gabry, 2024, JMLR 25(72)) stabilises the largest weights and its shape
estimate ``k_hat`` says whether the estimate can be trusted: below 0.7 the
weighted draws are reliable (and exact as their number grows); above it the
caller falls back to MCMC.  Sampling-importance-resampling then turns the
weighted draws into equally weighted ones.

Each proposal costs one density evaluation, independent of the others (run in
threads, the density releases the GIL), where NUTS needs several sequential
gradient evaluations per draw.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from skhier._util.threads import thread_map

#: above this Pareto k_hat the importance weights are unreliable
K_HAT_MAX = 0.7
#: degrees of freedom of the multivariate t proposal
PROPOSAL_DF = 10.0
#: above this k_hat, another round of proposals from the last round's weighted
#: moments (its scale widened by ``REFIT_SCALE``), up to ``ROUNDS`` rounds in all
REFIT_K_HAT = 0.5
REFIT_SCALE = 1.5
ROUNDS = 3


def importance_resample(log_density, mode, chol, n_proposals, n_out, rng, n_threads=1,
                        vectorized=False, keep=False, df=PROPOSAL_DF):  # fmt: skip
    """Draws from the density ``log_density`` (a function of one point; of every
    point at once, rows of an array, when ``vectorized``) by PSIS from a
    multivariate t (``df`` degrees of freedom) around ``mode`` with scale factor
    ``chol``.

    Returns ``(draws (n_out, d), info)`` with ``info`` holding ``pareto_k``,
    ``ess`` (the effective sample size of the smoothed weights) and
    ``n_proposals``; ``draws`` is None when ``pareto_k > K_HAT_MAX`` (then, with
    ``keep``, ``info["resampled"]`` holds them all the same: for a better proposal).
    """
    d = len(mode)
    z = rng.standard_normal((n_proposals, d))
    scale = np.sqrt(rng.chisquare(df, n_proposals) / df)
    x = mode + (z @ chol.T) / scale[:, None]
    log_q = -0.5 * (df + d) * np.log1p((z**2).sum(1) / scale**2 / df)
    if vectorized:
        log_p = np.asarray(log_density(x), dtype=np.float64)
    else:
        log_p = np.array(thread_map(log_density, x, n_threads), dtype=np.float64)
    log_w = np.where(np.isfinite(log_p), log_p - log_q, -np.inf)
    smoothed, k_hat = psis(log_w)
    weights = np.exp(smoothed)
    info = {
        "pareto_k": float(k_hat),
        "ess": float(1.0 / np.sum(weights**2)),
        "n_proposals": int(n_proposals),
    }
    if not k_hat <= K_HAT_MAX:
        if keep and np.isfinite(weights).all():
            info["resampled"] = x[systematic_resample(weights, n_out, rng)]
        return None, info
    return x[systematic_resample(weights, n_out, rng)], info


def adaptive_importance(log_density, mode, chol, n_proposals, n_out, rng, n_threads=1,
                        vectorized=False, df=PROPOSAL_DF):  # fmt: skip
    """:func:`importance_resample`, then, while ``k_hat > REFIT_K_HAT`` (a skewed
    posterior: an SD near 0 above all), up to ``ROUNDS`` rounds in all of proposals
    from the moments of the last round's weighted draws, widened by ``REFIT_SCALE``
    (adaptive importance sampling; only the last round's weights are used, so the
    draws stay exact).  Returns ``(draws or None, info)``, ``info["rounds"]`` the
    rounds run."""
    kw = {"n_threads": n_threads, "vectorized": vectorized, "keep": True, "df": df}
    draws, info = importance_resample(log_density, mode, chol, n_proposals, n_out, rng, **kw)
    rounds = 1
    while info["pareto_k"] > REFIT_K_HAT and rounds < ROUNDS:
        last = draws if draws is not None else info.get("resampled")
        if last is None:
            break
        try:
            cov = np.cov(last, rowvar=False).reshape(len(mode), len(mode)) * REFIT_SCALE**2
            chol = np.linalg.cholesky(cov + 1e-10 * np.eye(len(mode)))
        except np.linalg.LinAlgError:
            break
        draws, info = importance_resample(
            log_density, last.mean(0), chol, n_proposals, n_out, rng, **kw
        )
        rounds += 1
    info["rounds"] = rounds
    info.pop("resampled", None)
    return draws, info


def systematic_resample(weights, n_out, rng):
    """``n_out`` indices drawn with probabilities ``weights`` (systematic
    resampling, in random order)."""
    cdf = np.cumsum(weights)
    cdf[-1] = 1.0
    idx = np.searchsorted(cdf, (rng.uniform() + np.arange(n_out)) / n_out)
    return rng.permutation(np.minimum(idx, len(weights) - 1))


def psis(log_weights):
    """Pareto-smoothed log importance weights (normalized) and the shape ``k_hat``.

    The largest ``M = ceil(min(n / 5, 3 sqrt(n)))`` weights are replaced by the
    expected order statistics of a generalized Pareto distribution fitted to them
    (Zhang and Stephens' estimator with the weakly informative prior of the PSIS
    paper); the result is truncated at the largest raw weight.
    """
    lw = np.asarray(log_weights, dtype=np.float64) - np.max(log_weights)
    n = len(lw)
    tail_len = int(np.ceil(min(0.2 * n, 3.0 * np.sqrt(n))))
    order = np.argsort(lw)
    cutoff = max(lw[order[-tail_len - 1]], np.log(np.finfo(float).tiny))
    tail_idx = order[-tail_len:]
    tail_idx = tail_idx[lw[tail_idx] > cutoff]
    k_hat = np.inf
    if len(tail_idx) > 4:
        exceed = np.exp(lw[tail_idx]) - np.exp(cutoff)  # ascending
        k_hat, sigma = _gpd_fit(exceed)
        if np.isfinite(k_hat):
            probs = np.arange(0.5, len(tail_idx)) / len(tail_idx)
            lw[tail_idx] = np.log(_gpd_quantile(probs, k_hat, sigma) + np.exp(cutoff))
            lw[lw > 0] = 0.0
    return lw - special.logsumexp(lw), k_hat


def _gpd_fit(x):
    """Generalized Pareto fit ``(k, sigma)`` to sorted positive exceedances ``x``
    (Zhang and Stephens 2009, with a prior pulling ``k`` towards 0.5)."""
    n = len(x)
    m = 30 + int(np.sqrt(n))
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b /= 3.0 * x[int(n / 4 + 0.5) - 1]
    b += 1.0 / x[-1]
    k = np.log1p(-b[:, None] * x).mean(axis=1)
    profile = n * (np.log(-(b / k)) - k - 1.0)
    weights = 1.0 / np.exp(profile - profile[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, b = weights[keep], b[keep]
    weights /= weights.sum()
    b_post = np.sum(b * weights)
    k_post = np.log1p(-b_post * x).mean()
    sigma = -k_post / b_post
    return (n * k_post + 10 * 0.5) / (n + 10), sigma


def _gpd_quantile(probs, k, sigma):
    if abs(k) < 1e-12:
        return -sigma * np.log1p(-probs)
    return sigma * np.expm1(-k * np.log1p(-probs)) / k
