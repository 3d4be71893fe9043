"""External reference suite: lme4 fits shipped with statsmodels' own tests.

statsmodels ships 12 simulated data sets (``regression/tests/results/lme*.csv``,
100 groups of 1-4 rows) and lme4's REML results for them with independent random
effects (``lme_r_results.py``; ``*_reml_irf_*``, and for the intercept-only sets, where
independent and dependent random effects coincide, ``*_reml_drf_*``).  The data have a random
intercept and, in data sets 6-11, a random slope on a within-group covariate;
their fixed part has no intercept, and the random effects have mean zero.
skhier always estimates a population intercept and a population mean for each
random slope, which here are truly zero; the remaining parameters are the same.
"""

import importlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalRegressor
from skhier.exceptions import ConvergenceWarning

pytestmark = pytest.mark.slow

try:
    _R = importlib.import_module("statsmodels.regression.tests.results.lme_r_results")
    _DIR = Path(_R.__file__).parent
except ImportError:  # pragma: no cover - statsmodels without its test files
    _R = None


@pytest.mark.skipif(_R is None, reason="statsmodels installed without its test files")
@pytest.mark.parametrize("ds", range(12))
def test_agrees_with_lme4_reml(ds):
    data = pd.read_csv(_DIR / f"lme{ds:02d}.csv")
    fe = [c for c in data.columns if c.startswith("exog_fe")]
    re = [c for c in data.columns if c.startswith("exog_re")][1:]  # exog_re_0 is the intercept
    X = data[fe + re]
    est = HierarchicalRegressor(
        random_slopes=re or None, correlated_effects=False, draws=2000, random_state=ds
    )
    with warnings.catch_warnings():
        # 100 groups of 1-4 rows put sigma_a near 0: a stray divergence (of 8,000
        # transitions) comes with some seeds; anything more is a failure below
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, data["endog"], groups=data["groups"])
    conv = est.convergence_
    assert conv["n_divergences"] <= 0.001 * conv["n_chains"] * conv["n_draws"], conv
    assert conv["max_r_hat"] < 1.01 and conv["min_ess_bulk"] >= 400, conv
    # one random effect: lme4's "dependent" and "independent" fits are the same model
    kind = "irf" if re else "drf"
    coef = getattr(_R, f"coef_reml_{kind}_{ds}")
    se = np.sqrt(np.diag(getattr(_R, f"vcov_reml_{kind}_{ds}")))
    sd_re = np.sqrt(np.diag(getattr(_R, f"cov_re_reml_{kind}_{ds}")))
    noise = np.sqrt(getattr(_R, f"scale_reml_{kind}_{ds}")[0])

    # population coefficients within half a standard error of lme4's
    np.testing.assert_array_less(np.abs(est.coef_[: len(fe)] - coef), 0.5 * se)
    assert est.noise_sd_ == pytest.approx(noise, rel=0.15)
    # group SDs: with 1-4 rows per group they are weakly identified, so compare the
    # posterior mean with lme4's REML estimate on the scale of posterior uncertainty
    post = est.posterior_
    ours = np.column_stack(
        [post.flat("group_intercept_sd"), post.flat("group_coef_sd")[:, len(fe) :]]
    )
    # Where REML sits on the boundary (SD estimated as 0) a posterior for an SD is
    # right-skewed with its mass piled toward 0, like a half-normal (mean = 1.3 sd,
    # median = 1.1 sd): there compare its median, within 1.5 posterior sd.
    boundary = sd_re < 1e-3 * noise
    centre = np.where(boundary, np.median(ours, axis=0), ours.mean(0))
    tol = np.where(boundary, 1.5, 1.0) * ours.std(0)
    assert np.all(np.abs(centre - sd_re) < tol), (centre, sd_re)
