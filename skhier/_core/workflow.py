"""The Bayesian workflow around a fit: prior predictive checks, the pointwise log
likelihood for PSIS-LOO model comparison, and the model as a PyMC model.

Every estimator inherits these methods; they use the estimator's own validation
(``_model_inputs``: the same checks, scaling and model as ``fit``), its
prediction primitives (``_eta_draws``) and the likelihood objects, so there is
one place each piece of math lives.  ArviZ and PyMC are imported on use only.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted, column_or_1d

from skhier._dask.frames import refuse
from skhier._data.checks import check_numeric_target
from skhier._model.likelihoods import of_posterior
from skhier._model.prior import draw_prior
from skhier._util.seeds import generator
from skhier._util.warn import import_quietly
from skhier.exceptions import UnseenGroupWarning

#: above this many floats of (draws x rows) log likelihood, ask for fewer draws
_MAX_POINTWISE = 2**28  # 2 GB of float64 for the two arrays


class WorkflowMixin:
    """Prior predictive checks, pointwise log likelihood and the PyMC model."""

    def sample_prior_predictive(
        self, X, y, *, groups=None, n_samples=500, random_state=None, exposure=None
    ):
        """Draws of the parameters and of ``y`` from the prior alone (no data fit).

        The priors live on a scale standardized by the training data (section 1 of
        the user guide), so ``y`` is needed: only its mean and SD (for binary
        outcomes and counts, the log-odds or log rate of its mean) set that scale,
        exactly as in :meth:`fit`, and it becomes ``observed_data`` for
        comparison.  Draws are exact (forward sampling, no MCMC) and in the units
        of ``y``.  The estimator need not be fitted; a fitted one is left as it
        is, and ``idata_`` gains the ``prior`` and ``prior_predictive`` groups
        (they are not saved with the model).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples_X, n_features)
            Features (plus the ``group_col`` column(s), when that is set).
        y : array-like of shape (n_samples_X,)
            The outcome, as for :meth:`fit`.
        groups : array-like, DataFrame, POPULATION or None, default=None
            Group labels, as for :meth:`fit`: rows with one label share one
            drawn group effect per draw.
        n_samples : int, default=500
            Number of prior draws.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws.
        exposure : array-like of shape (n_samples_X,), default=None
            Counts only (:class:`HierarchicalPoissonRegressor`), as for ``fit``.

        Returns
        -------
        idata : arviz.InferenceData
            Groups ``prior`` (``mu_a``, ``mu_b``, ``sigma_a``, ``sigma_b``, ``a``,
            ``b``, ... as in ``idata_``; one chain of ``n_samples`` draws),
            ``prior_predictive`` (``y``, dims ``(chain, draw, obs_id)``) and
            ``observed_data`` (``y``).  Binary outcomes are 0/1, where 1 means
            ``classes_[1]``.
        """
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool) or n_samples < 1:
            raise ValueError(f"`n_samples` must be a positive integer; got {n_samples!r}.")
        refuse(X, y, groups, what="sample_prior_predictive")
        prior = clone(self)
        inputs = prior._model_inputs(X, y, groups, exposure)
        spec = inputs.spec
        rng = generator(random_state)
        n_levels = [t.n_levels for t in spec.factors] if spec.factors else len(prior.groups_)
        draws = draw_prior(spec, n_levels, int(n_samples), rng)
        from skhier._posterior import from_standardized

        prior.posterior_ = from_standardized(draws, spec, inputs.scaling, self.interval_prob)
        new_codes = np.full(inputs.codes.shape, -1)
        dataset = prior.posterior_.inference_data(prior).posterior
        idx = np.arange(int(n_samples))
        eta = prior._eta_draws(inputs.X, inputs.codes, new_codes, idx, rng)
        if inputs.offset is not None:  # log exposure (the centring is in mu_a already)
            eta += (inputs.offset - inputs.scaling.y_mean)[:, None]
        y_draws = of_posterior(prior.posterior_).draw(eta, prior.posterior_, idx, rng)
        out = _data_groups(prior_predictive=y_draws.T[None], observed_data=inputs.y)
        out.add_groups({"prior": dataset})
        if hasattr(self, "posterior_"):
            self._prior_idata = out
        return out

    def compute_log_likelihood(self, X, y, *, groups=None, exposure=None):
        """Pointwise log likelihood of the fitted model on ``(X, y)``, for PSIS-LOO.

        ``log p(y_i | theta)`` at each kept joint draw ``theta`` (``store_draws``),
        *conditional on the group effects* - the likelihood the model is written
        with, as brms and PyMC use it.  PSIS-LOO on it (``az.loo``, ``az.compare``)
        estimates how well the model predicts a new row of a group it has seen;
        how well it predicts new groups is what ``GroupKFold`` cross-validation
        measures (user guide, "Model comparison").  Pass the training data.

        ``idata_`` then has the groups ``log_likelihood``, ``posterior_predictive``
        (one outcome draw per kept draw) and ``observed_data`` (variable ``y``, dim
        ``obs_id``), so ``az.loo(est.idata_)``, ``az.compare`` and
        ``az.plot_ppc(est.idata_)`` work unchanged.  They hold data, so they are
        not saved with the model.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like, DataFrame, POPULATION or None, default=None
            As in :meth:`predict`; every label must have been seen in ``fit``.
        exposure : array-like of shape (n_samples,), default=None
            Counts only, as for ``fit``.

        Returns
        -------
        idata : arviz.InferenceData
            ``idata_``, with the new groups.
        """
        from skhier._data.groups import POPULATION

        check_is_fitted(self)
        refuse(X, y, groups, what="compute_log_likelihood")
        if groups is POPULATION and not getattr(self, "_fit_with_groups", True):
            groups = None  # the one group of a model fit without groups
        with warnings.catch_warnings():  # unseen labels are an error here, not a warning
            warnings.simplefilter("ignore", UnseenGroupWarning)
            X, codes, new_codes = self._prepare(X, groups)
        y = self._numeric_target(y)
        n = X.shape[0]
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} values for {n} rows of X.")
        unseen = (np.asarray(new_codes) >= 0).reshape(n, -1).any(axis=1)
        if unseen.any():
            raise ValueError(
                f"compute_log_likelihood needs the groups seen in fit; {int(unseen.sum())} "
                f"of {n} rows have unseen group labels (e.g. row {int(np.argmax(unseen))}). "
                "The pointwise log likelihood is conditional on each group's effect: pass "
                "the training data (for new groups, compare models by GroupKFold "
                "cross-validation)."
            )
        offset = self._log_exposure(exposure, n)
        post = self.posterior_
        n_draws = post.n_joint
        if 2 * n_draws * n > _MAX_POINTWISE:
            raise ValueError(
                f"The pointwise log likelihood of {n} rows at {n_draws} draws would take "
                f"{2 * 8 * n_draws * n / 2**30:.1f} GB; refit with fewer kept draws "
                "(`store_draws`, e.g. 500) or pass a subsample of the rows."
            )
        idx = np.arange(n_draws)
        rng = np.random.default_rng(self._predict_seed)
        lik = of_posterior(post)
        log_lik, y_rep = np.empty((n, n_draws)), np.empty((n, n_draws))
        step = max(1, 2**22 // n_draws)
        for start in range(0, n, step):
            sl = slice(start, start + step)
            eta = self._eta_draws(X[sl], codes[sl], new_codes[sl], idx, rng)
            if offset is not None:
                eta += offset[sl, None]
            log_lik[sl] = lik.log_density(y[sl], eta, post, idx)
            y_rep[sl] = lik.draw(eta, post, idx, rng)
        n_chains = post.intercept.shape[0]

        def chains(a):
            return a.T.reshape(n_chains, n_draws // n_chains, n)

        self._data_idata = _data_groups(
            log_likelihood=chains(log_lik), posterior_predictive=chains(y_rep), observed_data=y
        )
        return self.idata_

    def to_pymc(self, X, y=None, *, groups=None, exposure=None, sample_weight=None, **fit_params):
        """The estimator's model as a ``pymc.Model`` on ``(X, y, groups)``.

        The same priors, data and structure that skhier fits, written out
        explicitly with the group effects as parameters, so a PyMC user can extend
        it (a new term, another prior) and sample it with ``pm.sample``; unchanged,
        it has the posterior skhier reports (a test says so).

        The model lives on skhier's standardized scale (user guide, section 1):
        ``y_std = (y - y_mean) / y_sd`` (GLMs: ``y`` as observed, with the
        intercept centred at the link of the mean outcome through a fixed offset),
        ``F = [1, (X - X_mean) / X_sd]`` with coefficients ``beta``, and group
        effects ``u`` (``u[factor]`` with several factors) on ``[1, X_slopes /
        X_sd]`` with SDs ``tau`` (``corr``: their correlations).  The reported
        parameters are added as deterministics in the user's units: ``mu_a``,
        ``mu_b``, ``sigma_a``, ``sigma_b``, ``a`` (group intercepts; with several
        factors, ``sigma_a[factor]`` and the deviations ``a[factor]``) and ``eps``.

        Parameters
        ----------
        X, y, groups, exposure, sample_weight
            The training data, as for :meth:`fit` (with ``formula``: the DataFrame, and
            ``y`` only for a one-sided formula).  With ``sample_weight`` (or the
            classifier's ``trials``) the likelihood is the potential ``y_weighted``,
            each row's log density times its weight, instead of an observed ``y``.
        **fit_params
            The classifier's ``trials``, as for :meth:`fit`.

        Returns
        -------
        model : pymc.Model
        """
        from skhier._engines.pymc import build_factors_model, build_model

        refuse(X, y, groups, what="to_pymc")
        model_est = clone(self)
        if self.formula is not None:  # the formula's model, through the matrix interface
            from skhier._core.formula import encode_fit
            from skhier._core.formula_fit import refuse_conflicts

            refuse_conflicts(self, groups)
            X, y, groups, params, _ = encode_fit(self.formula, X, y)
            model_est.set_params(formula=None, **params)
        weights = {"sample_weight": sample_weight, **fit_params}
        inputs = model_est._model_inputs(X, y, groups, exposure, **weights)
        X, y, codes, spec, scaling, offset = inputs[:6]
        extra = {"user_units": True, "weights": inputs.weights}
        if spec.factors or not model_est._fit_with_groups:  # (no groups: no group effects)
            return build_factors_model(X, y, codes, spec, scaling, offset, **extra)
        n_groups = len(model_est.groups_)
        return build_model(X, y, codes, n_groups, spec, scaling, offset, **extra)

    # ----------------------------------------------------------- primitives
    def _log_exposure(self, exposure, n_rows):
        """Log exposure per row (None: no offset); only count models have one."""
        no_exposure(exposure)

    def _numeric_target(self, y):
        """``y`` as the likelihood sees it (floats; binary outcomes as 0/1)."""
        check_numeric_target(y)
        return np.asarray(column_or_1d(y), dtype=np.float64)

    def _eta_draws(self, X, codes, new_codes, idx, rng):
        """Draws of the linear predictor (n, len(idx)) at joint draws ``idx`` (the
        mean for Gaussian noise); rows of one new group share its drawn effect."""
        return self.posterior_.linear_draws(X, codes, idx, rng=rng, new_codes=new_codes)

    def _workflow_idata(self, idata):
        """``idata`` extended by the groups the workflow methods added (the data of
        :meth:`compute_log_likelihood` first: its ``observed_data`` is the one that
        goes with ``log_likelihood``)."""
        for extra in (getattr(self, "_data_idata", None), getattr(self, "_prior_idata", None)):
            if extra is not None:
                idata.extend(extra)
        return idata

    def __getstate__(self):
        state = super().__getstate__()
        for name in ("_prior_idata", "_data_idata"):  # they hold data: not saved
            state.pop(name, None)
        return state


def no_exposure(exposure):
    """Estimators without an offset refuse ``exposure``."""
    if exposure is not None:
        raise ValueError(
            "`exposure` is an offset of count models (HierarchicalPoissonRegressor); "
            "this estimator has none. Drop the argument."
        )


def _data_groups(observed_data, **groups):
    """InferenceData with ``y`` in each of ``groups`` ((chain, draw, obs_id)) and in
    ``observed_data`` ((obs_id,))."""
    az = import_quietly("arviz")

    return az.from_dict(
        **{name: {"y": values} for name, values in groups.items()},
        observed_data={"y": np.asarray(observed_data)},
        dims={"y": ["obs_id"]},
    )
