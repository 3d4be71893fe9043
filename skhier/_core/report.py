"""The posterior attributes and reports every hierarchical estimator shares: the
fitted means and intervals, the convergence summary, ``summary()`` and ``idata_``.

A mixin of :class:`skhier._core.base.HierarchicalBase`, which provides ``posterior_``,
``engine_`` and ``_inference``; the posterior (one grouping factor or several)
answers for its layout.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skhier._engines.registry import BY_NAME
from skhier._posterior import diagnostics as _diagnostics

#: a group SD is reported singular when its 2.5% quantile is below this share of its 97.5%
_SINGULAR_RATIO = 0.02


class ReportMixin:
    """Posterior attributes (``intercept_``, ``coef_``, ``group_*``, ``convergence_``)
    and reports (:meth:`summary`, :attr:`idata_`)."""

    def _set_summaries(self, spec):
        post, prob = self.posterior_, self.interval_prob
        self.intercept_ = float(post.mean("intercept"))
        self.coef_ = post.mean("coef")
        self.intercept_interval_ = post.interval("intercept", prob)
        self.coef_interval_ = post.interval("coef", prob)
        self.group_intercept_ = post.mean("group_intercept")
        self.group_coef_ = post.mean("group_coef")
        self.group_intercept_interval_ = post.interval("group_intercept", prob)
        self.group_coef_interval_ = post.interval("group_coef", prob)
        self.group_intercept_sd_ = float(post.mean("group_intercept_sd"))
        self.group_coef_sd_ = post.mean("group_coef_sd")
        if post.noise_sd is not None:  # (a GLM has none)
            self.noise_sd_ = float(post.mean("noise_sd"))
            if post.noise_df is None:  # Gaussian noise: the t's limit nu = inf
                self.noise_df_, self.noise_df_interval_ = np.inf, np.array([np.inf, np.inf])
            else:
                self.noise_df_ = float(post.mean("noise_df"))
                self.noise_df_interval_ = post.interval("noise_df", prob)
        self.random_slope_mask_ = np.isin(np.arange(spec.n_features), spec.slope_idx)
        both = self._corr_mask()
        self.group_corr_ = np.where(both, post.mean("group_corr"), np.nan)
        self.group_corr_interval_ = np.where(
            both[..., None], post.interval("group_corr", prob), np.nan
        )
        post.moments  # noqa: B018 - computed once here, so predict is O(rows) and pickled
        # The collapsed engine's group effects are exact conditional draws given the
        # sampled parameters: they are diagnosed on request only (summary()).
        self.diagnostics_ = _diagnostics.parameter_diagnostics(
            post, groups=False if BY_NAME[self.engine_].exact_group_draws else "auto"
        )
        if self._inference["method"] == "importance":
            self.diagnostics_ = _diagnostics.importance_diagnostics(
                self.diagnostics_, self._inference["ess"]
            )
        self.convergence_ = _diagnostics.summarize_convergence(
            self.diagnostics_, post, self._free_masks(), self._inference
        )
        self.singular_ = self._singular_effects() if self._fit_with_groups else []

    def _sd_draws(self) -> dict:
        """Every draw of each group-level SD, by its ``summary()`` row name."""
        mask = getattr(self, "random_slope_mask_", None)
        return self.posterior_.sd_draws(self._feature_names(), mask)

    def _singular_effects(self) -> list:
        """The group-level SDs whose posterior piles up at 0 (lme4's ``isSingular``):
        its 2.5% quantile below 2% of its 97.5% quantile, the shape of a posterior
        whose mode is at 0 (a half-normal's ratio is 0.014, an exponential's 0.007;
        a gamma(2)'s, whose mode is away from 0, 0.043)."""
        out = []
        for name, draws in self._sd_draws().items():
            lo, hi = np.quantile(draws, [0.025, 0.975])
            if lo < _SINGULAR_RATIO * hi:
                out.append(name)
        return out

    def _corr_mask(self):
        """Entries of ``group_corr_`` between two varying effects (intercept first)."""
        varying = np.r_[True, self.random_slope_mask_]
        return varying[:, None] & varying[None, :]

    def _free_masks(self):
        """Which entries of each parameter are free (not fixed by the model)."""
        slopes = self.random_slope_mask_
        return {
            "group_coef_sd": slopes,
            "group_coef": np.broadcast_to(slopes, self.group_coef_.shape),
            "group_corr": self._corr_mask() & np.tri(len(slopes) + 1, k=-1, dtype=bool),
        }

    # ------------------------------------------------------------ reports
    def summary(self, group_level=True, group_diagnostics=False):
        """Posterior summary table, one row per free parameter.

        Means, SDs and intervals use every posterior draw.

        Parameters
        ----------
        group_level : bool, default=True
            Include the per-group parameters ``a[g]`` and ``b[g, feature]``.
        group_diagnostics : bool, default=False
            Compute ``r_hat`` and ``ess_bulk`` of the per-group parameters from
            the kept draws (``store_draws``).  The collapsed engine draws them
            exactly given each draw of the sampled parameters, so they mix at
            least as well as those (whose diagnostics are always reported) and
            their columns are NaN unless asked for; the other engines sample
            them and report them when there are at most 5,000.

        Returns
        -------
        summary : pandas.DataFrame
            Columns ``mean``, ``sd``, the interval bounds (``interval_prob``),
            ``r_hat`` and ``ess_bulk``; rows named ``mu_a``, ``mu_b[feature]``,
            ``sigma_a``, ``sigma_b[feature]``, ``corr[effect, effect]`` (correlated
            effects), ``eps``, ``nu`` (Student-t noise), ``a[group]``, ``b[group, feature]``.
        """
        check_is_fitted(self)
        table = self._summary_table(group_level, group_diagnostics)
        table.attrs["singular"] = list(getattr(self, "singular_", []))
        return table

    def _summary_table(self, group_level, group_diagnostics):
        diagnostics = self.diagnostics_
        if group_level and group_diagnostics:
            diagnostics = self.posterior_.diagnose(groups=True)
            if getattr(self, "_inference", {}).get("method") == "importance":
                diagnostics = _diagnostics.importance_diagnostics(
                    diagnostics, self._inference["ess"]
                )
        return self.posterior_.summary_table(self, group_level, diagnostics)

    @property
    def idata_(self):
        """The posterior as ArviZ ``InferenceData`` (dims ``feature`` and ``group``),
        with the groups that :meth:`sample_prior_predictive` and
        :meth:`compute_log_likelihood` add once they have been called."""
        check_is_fitted(self)
        return self._workflow_idata(self.posterior_.inference_data(self))

    def _feature_names(self):
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
        return [f"x{i}" for i in range(self.n_features_in_)]
