"""Complete pooling: the regression with no group effects.

A model fit without groups (``groups=POPULATION``, or none) is the plain Bayesian
linear, robust or generalized linear regression with the estimator's priors on the
coefficients and the noise.  Its result has the one-factor engines' shape with one
group whose effects and SDs are 0 in every draw, so prediction, summaries and saving
work unchanged, and ``intercept_`` / ``coef_`` are the regression's own.

* Gaussian noise: exact independent draws.  With the coefficients integrated out,
  the noise SD's posterior is one-dimensional: it is evaluated on a fine grid of
  ``log s`` and drawn by its inverse CDF, then the coefficients from their Gaussian
  conditional.  Only the cross products ``[F, y]'[F, y]`` are needed, so Dask's
  summarized data fit the same way.
* Binary outcomes: Gibbs sampling with Pólya-Gamma augmentation (exact conditionals).
* Counts and Student-t noise: independence Metropolis-Hastings from a multivariate
  t proposal at the posterior mode (its scale from the curvature there).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

from skhier._data.weights import n_observations, weighted_rows
from skhier._model.likelihoods import nb_log_pmf
from skhier._model.spec import design

#: grid points of the noise SD's marginal posterior (log scale)
_GRID = 4001
#: bound on |log s| of the grid (standardized units: the noise SD is a share of y's SD)
_LOG_S_BOUND = 25.0
#: degrees of freedom of the independence proposal
_PROPOSAL_DF = 5.0


def fit_pooled(X, y, codes, n_groups, spec, scaling, *, config, rng, offset=None, stats=None,
               weights=None):  # fmt: skip
    """Draws of the regression without group effects, in the engines' common form
    (``weights``: the rows' frequency weights; a binary ``y`` may then be a share of
    successes, its weight the trials)."""
    chains, draws = config.chains, config.draws
    family = spec.likelihood
    prior_sd = spec.beta_prior_sd
    extra = {}
    if family == "normal":
        if stats is not None:
            ww, n_obs = stats.ww, stats.n_obs
        else:
            F, _, ys = design(X, y, spec, scaling)
            w = np.column_stack(weighted_rows(weights, F, ys))
            ww, n_obs = w.T @ w, n_observations(weights, len(ys))
        beta, s = _gaussian(ww, n_obs, prior_sd, 1.0 / spec.prior_noise_sd, chains * draws, rng)
        method, accept = "exact", None
    else:
        F, _, ys = design(X, y, spec, scaling)
        if family == "bernoulli":
            beta = _logistic(F, np.asarray(y, float), offset, prior_sd, config, rng, weights)
            s, method, accept = np.ones(len(beta)), "gibbs", None
        else:
            target = _Target(F, ys if family == "student_t" else np.asarray(y, float),
                             offset, prior_sd, family, 1.0 / spec.prior_noise_sd,
                             weights)  # fmt: skip
            theta, accept = _independence_mh(target, config, rng)
            beta, s, extra = target.unpack(theta)
            method = "metropolis"
    p, q = beta.shape[1], spec.n_random
    shape = (chains, draws)
    zeros = np.zeros(shape)
    out = {
        "beta": beta.reshape(shape + (p,)),
        "u": np.zeros(shape + (1, q)),
        "tau": np.zeros(shape + (q,)),
        "corr": np.broadcast_to(np.eye(q), shape + (q, q)).copy(),
        "s": s.reshape(shape),
        "diverging": zeros.astype(bool),
        "max_treedepth": zeros.astype(bool),
        "n_groups": 1,
        "inference": {"method": method, "pooled": True},
        **{k: v.reshape(shape) for k, v in extra.items()},
    }
    if accept is not None:
        out["inference"]["acceptance"] = float(accept)
    return out


# ------------------------------------------------------------------ Gaussian
def _gaussian(ww, n_obs, prior_sd, noise_rate, n_total, rng):
    """Exact draws ``(beta (S, p), s (S,))`` of ``y ~ N(F beta, s^2)``, ``beta ~
    N(0, diag(prior_sd^2))``, ``s ~ Exponential(noise_rate)``, from ``ww`` =
    ``[F, y]'[F, y]``.

    All algebra runs in the eigenbasis of ``D F'F D`` (``D = diag(prior_sd)``):
    the posterior precision of ``beta`` given ``s`` is ``D^-1 V (I + Lambda / s^2)
    V' D^-1``, so every ``s`` costs O(p) and nothing is factorized per ``s`` (and a
    rank-deficient ``F'F``, more features than rows, stays exact: its eigenvalues
    are clipped at 0, not left at -1e-14 to break a Cholesky)."""
    p = ww.shape[0] - 1
    ftf, fty, yty = ww[:p, :p], ww[:p, p], ww[p, p]
    d = np.asarray(prior_sd, float)
    lam, vec = np.linalg.eigh(d[:, None] * ftf * d[None, :])
    lam = np.maximum(lam, 0.0)
    c = vec.T @ (d * fty)  # F'y in the eigenbasis

    def log_post(log_s):  # marginal posterior of log s (beta integrated out)
        inv = np.exp(-2.0 * log_s)[:, None]
        shrink = 1.0 + lam[None, :] * inv
        logdet = np.log(shrink).sum(1)  # (up to the constant log det of the prior)
        quad = np.maximum(yty * inv[:, 0] - (inv * inv * c * c / shrink).sum(1), 0.0)
        return -n_obs * log_s - 0.5 * logdet - 0.5 * quad - noise_rate * np.exp(log_s) + log_s

    beta_hat = d * (vec @ (c / (1.0 + lam)))  # the posterior mode at s = 1
    rss = max(yty - 2 * beta_hat @ fty + beta_hat @ ftf @ beta_hat, 1e-12 * max(yty, 1.0))
    dof = max(n_obs - p, 1)
    center = 0.5 * np.log(rss / dof)
    half = 12.0 * (1.0 / np.sqrt(2.0 * dof) + 0.05)
    for _ in range(8):  # widen until the density at both ends is negligible
        # (within e^-25..e^25 standardized units: the noise SD is a share of y's SD)
        grid = np.linspace(max(center - half, -_LOG_S_BOUND), min(center + half, _LOG_S_BOUND),
                           _GRID)  # fmt: skip
        lp = log_post(grid)
        if lp[0] < lp.max() - 30 and lp[-1] < lp.max() - 30:
            break
        center, half = grid[np.argmax(lp)], 2.0 * half
    dens = np.exp(lp - lp.max())
    cdf = np.r_[0.0, np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))]
    log_s = np.interp(rng.random(n_total) * cdf[-1], cdf, grid)
    inv = np.exp(-2.0 * log_s)[:, None]
    shrink = 1.0 + lam[None, :] * inv
    # the noise through the symmetric root V S^-1/2 V', which does not depend on how
    # eigh picks the eigenvectors of (nearly) equal eigenvalues: the draws are a
    # continuous function of the data
    noise = rng.standard_normal((n_total, p)) @ vec
    z = (inv * c / shrink + noise / np.sqrt(shrink)) @ vec.T
    return z * d, np.exp(log_s)


# ------------------------------------------------------------------ binary
def _logistic(F, y, offset, prior_sd, config, rng, weights=None):
    """Pólya-Gamma Gibbs sampling of logistic regression; draws (chains * draws, p).
    ``weights``: whole-number trials (times frequency weights) of each row, whose
    ``y`` is then its share of successes."""
    from skhier._engines.gibbs.pg import pg_fill

    n, p = F.shape
    off = np.zeros(n) if offset is None else np.asarray(offset, float)
    prec0 = np.diag(1.0 / np.asarray(prior_sd, float) ** 2)
    trials = np.ones(n, dtype=np.int64) if weights is None else np.rint(weights).astype(np.int64)
    kappa = trials * (y - 0.5)
    out = np.empty((config.chains, config.draws, p))
    omega = np.empty(n)
    for c in range(config.chains):
        beta = rng.normal(scale=0.1, size=p)
        for it in range(config.tune + config.draws):
            pg_fill(rng, np.abs(off + F @ beta), omega, trials)
            chol = np.linalg.cholesky(prec0 + F.T @ (omega[:, None] * F))
            rhs = F.T @ (kappa - omega * off)
            z = np.linalg.solve(chol, rhs) + rng.standard_normal(p)
            beta = np.linalg.solve(chol.T, z)
            if it >= config.tune:
                out[c, it - config.tune] = beta
    return out.reshape(-1, p)


# ---------------------------------------------------- counts and Student-t noise
class _Target:
    """Log posterior of the unconstrained parameters ``[beta, extra]``: Poisson
    (none), negative binomial (``phi`` reflected to the real line: the dispersion is
    ``phi^2``, ``phi ~ HalfNormal(1)``, so Poisson, ``phi = 0``, is an interior
    point and not minus infinity), Student-t (``log s``, ``log(nu - 1)``, ``nu ~
    Gamma(2, 0.1)`` on ``nu > 1``)."""

    def __init__(self, F, y, offset, prior_sd, family, noise_rate, weights=None):
        self.F, self.y, self.family, self.noise_rate = F, y, family, noise_rate
        self.w = np.ones(len(y)) if weights is None else weights
        self.off = np.zeros(len(y)) if offset is None else np.asarray(offset, float)
        self.prior_sd = np.asarray(prior_sd, float)
        self.p = F.shape[1]
        self.n_extra = {"poisson": 0, "negative_binomial": 1, "student_t": 2}[family]
        self.lgy = special.gammaln(y + 1.0) if family != "student_t" else 0.0

    @property
    def dim(self):
        return self.p + self.n_extra

    def start(self):
        x = np.zeros(self.dim)
        if self.family == "student_t":
            x[self.p :] = [np.log(np.std(self.y) + 1e-12), np.log(3.0)]
        elif self.family == "negative_binomial":
            x[self.p] = 0.5  # off the mirror point phi = 0
        return x

    def __call__(self, theta):
        """Log posterior at each row of ``theta`` (m, dim): (m,)."""
        theta = np.atleast_2d(theta)
        beta = theta[:, : self.p]
        eta = self.off[None, :] + beta @ self.F.T  # (m, n)
        lp = -0.5 * ((beta / self.prior_sd) ** 2).sum(1)
        if self.family == "poisson":
            return lp + (self.y * eta - np.exp(eta) - self.lgy) @ self.w
        if self.family == "negative_binomial":
            phi = theta[:, self.p]
            ll = nb_log_pmf(self.y[None, :], eta, (phi**2)[:, None])
            return lp + ll @ self.w - 0.5 * phi**2
        log_s, log_nu1 = theta[:, self.p], theta[:, self.p + 1]
        s, nu = np.exp(log_s), 1.0 + np.exp(log_nu1)
        z = (self.y[None, :] - eta) / s[:, None]
        ll = (special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2)
              - 0.5 * np.log(nu * np.pi) - log_s)[:, None] - (nu[:, None] + 1) / 2 * np.log1p(
            z * z / nu[:, None])  # fmt: skip
        prior = -self.noise_rate * s + log_s + np.log(nu) - 0.1 * nu + log_nu1
        return lp + ll @ self.w + prior

    def unpack(self, theta):
        beta = theta[:, : self.p]
        if self.family == "poisson":
            return beta, np.ones(len(theta)), {}
        if self.family == "negative_binomial":
            return beta, np.ones(len(theta)), {"dispersion": theta[:, self.p] ** 2}
        s, nu = np.exp(theta[:, self.p]), 1.0 + np.exp(theta[:, self.p + 1])
        return beta, s, {"nu": nu}


def _mode_and_scale(target):
    """The posterior mode and the Cholesky factor of the inverse curvature there."""
    res = optimize.minimize(lambda x: -target(x)[0], target.start(), method="BFGS")
    mode, d = res.x, target.dim
    h = 1e-4 * np.maximum(1.0, np.abs(mode))
    hess = np.empty((d, d))  # central differences of the log posterior
    f0 = target(mode)[0]
    for i in range(d):
        for j in range(i, d):
            pts = []
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                x = mode.copy()
                x[i] += si * h[i]
                x[j] += sj * h[j]
                pts.append(x)
            if i == j:
                xp, xm = mode.copy(), mode.copy()
                xp[i] += h[i]
                xm[i] -= h[i]
                hess[i, i] = (target(xp)[0] - 2 * f0 + target(xm)[0]) / h[i] ** 2
            else:
                v = target(np.array(pts))
                hess[i, j] = hess[j, i] = (v[0] - v[1] - v[2] + v[3]) / (4 * h[i] * h[j])
    cov = np.linalg.inv(-hess)
    cov = 0.5 * (cov + cov.T)
    return mode, np.linalg.cholesky(cov + 1e-12 * np.eye(d))


def _independence_mh(target, config, rng):
    """Independence Metropolis-Hastings from a multivariate t at the mode; draws
    (chains * draws, dim) and the acceptance rate after tuning."""
    mode, chol = _mode_and_scale(target)
    d, df = target.dim, _PROPOSAL_DF
    n_iter = config.tune + config.draws

    flip = np.ones(d)  # the negative binomial's phi enters as phi^2: mirror it too
    if target.family == "negative_binomial":
        flip[-1] = -1.0

    def t_logpdf(x):
        z = np.linalg.solve(chol, (x - mode).T).T
        return -0.5 * (df + d) * np.log1p((z * z).sum(1) / df)

    def proposal_logpdf(x):
        return np.logaddexp(t_logpdf(x), t_logpdf(x * flip)) - np.log(2.0)

    out = np.empty((config.chains, config.draws, d))
    accepted = 0
    for c in range(config.chains):
        z = rng.standard_normal((n_iter + 1, d))
        w = np.sqrt(df / rng.chisquare(df, size=n_iter + 1))
        props = mode + (z * w[:, None]) @ chol.T
        mirrored = rng.random(n_iter + 1) < 0.5
        props[mirrored] *= flip
        lt = np.concatenate([target(props[i : i + 64]) for i in range(0, n_iter + 1, 64)])
        lq = proposal_logpdf(props)
        cur, cur_w = 0, lt[0] - lq[0]
        log_u = np.log(rng.random(n_iter))
        for it in range(n_iter):
            new_w = lt[it + 1] - lq[it + 1]
            if log_u[it] < new_w - cur_w:
                cur, cur_w = it + 1, new_w
                accepted += it >= config.tune
            if it >= config.tune:
                out[c, it - config.tune] = props[cur]
    return out.reshape(-1, d), accepted / (config.chains * config.draws)
