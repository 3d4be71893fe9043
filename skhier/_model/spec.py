"""ModelSpec: a frozen, backend-independent description of the model to fit.

The model is fit on an internally standardized scale (``y`` centred and scaled,
every feature divided by its SD) where the default priors are meaningful:

    beta_0 ~ Normal(0, prior_intercept_sd)      intercept at the feature means
    beta_k ~ Normal(0, prior_coef_sd)           population slopes (mu_b)
    tau_j  ~ Exponential(mean=prior_group_sd)   group SDs (sigma_a, sigma_b)
    R      ~ LKJ(prior_corr_eta)                correlations (identity if independent)
    s      ~ Exponential(mean=prior_noise_sd)   noise SD (eps); the scale for Student-t
    u_g    ~ Normal(0, diag(tau) R diag(tau))   group deviations
    y_g    = F_g beta + Z_g u_g + Normal(0, s^2)
             (or + Student-t(nu, 0, s), nu ~ Gamma(2, rate=0.1) on nu > 1)

``F = [1, (X - mean) / sd]`` is centred (so the intercept prior concerns the
mean response) while ``Z = [1, X_slopes / sd]`` is only scaled, so the group
effects are *at the user's X = 0*: independent there, exactly as in
``lme4``'s ``(x || g)``, or correlated with a full covariance as in ``(x | g)``.
Reported parameters are transformed back to the user's units; the transform is
linear and exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scaling:
    """Affine maps between the user's units and the standardized scale."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float
    y_scale: float

    @classmethod
    def fit(cls, X, y, standardize: bool, weights=None) -> Scaling:
        """Means and SDs of the features and the target (weighted by the rows'
        frequency ``weights``, when given: those of the data the weights stand for)."""
        n_features = X.shape[1]
        if not standardize:
            return cls(np.zeros(n_features), np.ones(n_features), 0.0, 1.0)
        if weights is None:
            x_mean, x_scale = X.mean(axis=0), X.std(axis=0)
            y_mean, y_scale = float(y.mean()), float(y.std())
        else:
            x_mean = weights @ X / weights.sum()
            x_scale = np.sqrt(weights @ (X - x_mean) ** 2 / weights.sum())
            y_mean = float(weights @ y / weights.sum())
            y_scale = float(np.sqrt(weights @ (y - y_mean) ** 2 / weights.sum()))
        x_scale = np.where(x_scale > 1e-12 * (1.0 + np.abs(X).max(axis=0)), x_scale, 1.0)
        if not y_scale > 1e-12 * (1.0 + np.abs(y).max()):
            y_scale = 1.0
        return cls(x_mean, x_scale, y_mean, y_scale)


@dataclass(frozen=True)
class FactorTerm:
    """One grouping factor of a model with several: its effects ``u_f[level] ~
    Normal(0, Sigma_f)`` on ``Z_f = [1, X_slopes / sd]``, with ``Sigma_f``'s SDs ~
    Exponential(mean=prior_group_sd) and, when ``correlated``, its correlations ~
    LKJ(prior_corr_eta).  ``parent`` is the index of the factor it is nested in
    (-1: a top-level factor)."""

    name: str
    slope_idx: tuple[int, ...]
    n_levels: int
    parent: int = -1
    correlated: bool = False

    @property
    def n_random(self) -> int:
        return 1 + len(self.slope_idx)


@dataclass(frozen=True)
class ModelSpec:
    """Everything a backend needs to know to build the model (no data)."""

    n_features: int
    slope_idx: tuple[int, ...]
    prior_intercept_sd: float
    prior_coef_sd: float
    prior_group_sd: float
    prior_noise_sd: float
    engine: str  # "collapsed", "augmented" (Student-t) or "explicit"
    parametrization: str  # "centered" or "non-centered" (explicit engine)
    correlated: bool = False  # full covariance of the group effects (LKJ prior)
    prior_corr_eta: float = 2.0  # LKJ shape of the correlation matrix
    likelihood: str = "normal"  # noise: "normal" or "student_t" (nu learned)
    #: several grouping factors (empty: one factor, described by ``slope_idx``)
    factors: tuple[FactorTerm, ...] = ()

    @property
    def n_fixed(self) -> int:
        """p: number of population coefficients (intercept + features)."""
        return 1 + self.n_features

    @property
    def n_random(self) -> int:
        """q: number of group-level coefficients (intercept + random slopes)."""
        return 1 + len(self.slope_idx)

    @property
    def n_corr(self) -> int:
        """Number of correlations between group effects that are sampled."""
        q = self.n_random
        return q * (q - 1) // 2 if self.correlated else 0

    @property
    def beta_prior_sd(self) -> np.ndarray:
        return np.r_[self.prior_intercept_sd, np.full(self.n_features, self.prior_coef_sd)]

    @property
    def sd_prior_rates(self) -> np.ndarray:
        """Exponential rates of (tau_0, ..., tau_{q-1}, s)."""
        return np.r_[np.full(self.n_random, 1.0 / self.prior_group_sd), 1.0 / self.prior_noise_sd]


def design(X: np.ndarray, y: np.ndarray | None, spec: ModelSpec, scaling: Scaling):
    """Standardized ``F`` (centred), ``Z`` (scaled only) and ``y``."""
    xs = (X - scaling.x_mean) / scaling.x_scale
    ones = np.ones((X.shape[0], 1))
    F = np.hstack([ones, xs])
    idx = list(spec.slope_idx)
    Z = np.hstack([ones, X[:, idx] / scaling.x_scale[idx]])
    ys = None if y is None else (y - scaling.y_mean) / scaling.y_scale
    return F, Z, ys


def choose_parametrization(y_std: np.ndarray, codes: np.ndarray, n_groups: int) -> str:
    """The automatic rule for the explicit engine.

    A one-way ANOVA (method of moments) estimates the between-group variance
    ``t2`` and within-group variance ``w2`` of the standardized response; the
    information a group carries about its own effect relative to the prior is
    ``r_g = n_g * t2 / w2``.  When the median group is informative
    (``r_g >= 1``: its posterior is dominated by its own rows) the centered form
    mixes well, otherwise the non-centered form avoids the funnel.
    """
    n = np.bincount(codes, minlength=n_groups).astype(float)
    sums = np.bincount(codes, weights=y_std, minlength=n_groups)
    resid = y_std - (sums / np.maximum(n, 1))[codes]
    return parametrization_rule(n, sums, float(resid @ resid), len(y_std), float(y_std.mean()))


def parametrization_rule(n, sums, within_ss, n_obs, grand) -> str:
    """:func:`choose_parametrization` from the group sizes ``n``, the per-group sums
    of the standardized response, its within-group sum of squares and its mean."""
    n_groups = len(n)
    if n_groups < 2 or np.all(n <= 1):
        return "non-centered"
    means = sums / np.maximum(n, 1)
    dof_w = max(n_obs - n_groups, 1)
    w2 = max(within_ss / dof_w, 1e-12)
    t2 = float(np.var(means[n > 0] - grand, ddof=1)) - w2 * float(np.mean(1.0 / n[n > 0]))
    r_median = float(np.median(n[n > 0])) * max(t2, 0.0) / w2
    return "centered" if r_median >= 1.0 else "non-centered"


def resolve_random_slopes(
    random_slopes, n_features, feature_names=None, group_level=None
) -> tuple[int, ...]:
    """Column indices of the features with random slopes ("all", None, names or indices).

    ``"all"`` leaves out the features flagged in the boolean mask ``group_level``.
    """
    if isinstance(random_slopes, str):  # "all" (validated by the estimator)
        fixed = np.zeros(n_features, dtype=bool) if group_level is None else group_level
        return tuple(j for j in range(n_features) if not fixed[j])
    if random_slopes is None:
        return ()
    names = None if feature_names is None else list(feature_names)
    out = []
    for item in np.atleast_1d(np.asarray(random_slopes, dtype=object)).tolist():
        if isinstance(item, str):
            if names is None or item not in names:
                raise ValueError(
                    f"`random_slopes` names feature {item!r}, which is not among the "
                    f"features of X ({names}). Name features only when X is a DataFrame, "
                    "or pass column indices."
                )
            out.append(names.index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not -n_features <= item < n_features:
                raise ValueError(
                    f"`random_slopes` index {item} is out of range for X with "
                    f"{n_features} features."
                )
            out.append(int(item) % n_features)
        else:
            raise TypeError(
                "`random_slopes` must be 'all', None, or a list of feature names "
                f"or integer column indices; got an element {item!r}."
            )
    return tuple(sorted(set(out)))
