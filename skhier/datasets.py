"""Bundled real datasets and a simulator with known true parameters.

Provenance of the bundled files is kept in ``skhier/data/README.md``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

__all__ = [
    "SLEEPSTUDY_LME4",
    "load_cbpp",
    "load_contraception",
    "load_egsingle",
    "load_epilepsy",
    "load_insteval",
    "load_radon",
    "load_sleepstudy",
    "make_hierarchical_regression",
]

#: Published lme4 (REML) results for ``Reaction ~ Days + (Days | Subject)`` on
#: sleepstudy (Bates et al., lme4): fixed effects, their SEs, group SDs and the
#: residual SD, and the conditional modes of each subject's deviations.
SLEEPSTUDY_LME4 = {
    "intercept": 251.405,
    "intercept_se": 6.825,
    "coef": 10.467,
    "coef_se": 1.546,
    "group_intercept_sd": 24.741,
    "group_coef_sd": 5.922,
    "group_corr": 0.066,
    "noise_sd": 25.592,
    "ranef": pd.DataFrame(
        {
            "intercept": [
                2.2585509,
                -40.3987381,
                -38.9604090,
                23.6906196,
                22.2603126,
                9.0395679,
                16.8405086,
                -7.2326151,
                -0.3336684,
                34.8904868,
                -25.2102286,
                -13.0700342,
                4.5778642,
                20.8636782,
                3.2754656,
                -25.6129993,
                0.8070461,
                12.3145921,
            ],
            "Days": [
                9.1989758,
                -8.6196806,
                -5.4488565,
                -4.8143503,
                -3.0699116,
                -0.2721770,
                -0.2236361,
                1.0745816,
                -10.7521652,
                8.6282652,
                1.1734322,
                6.6142178,
                -3.0152621,
                3.5360011,
                0.8722149,
                4.8224850,
                -0.9881562,
                1.2840221,
            ],
        },
        index=pd.Index(
            [
                308,
                309,
                310,
                330,
                331,
                332,
                333,
                334,
                335,
                337,
                349,
                350,
                351,
                352,
                369,
                370,
                371,
                372,
            ],
            name="Subject",
        ),
    ),
}


def _read(name: str) -> pd.DataFrame:
    if name.endswith(".gz"):
        with resources.files("skhier").joinpath("data", name).open("rb") as fh:
            return pd.read_csv(fh, compression="gzip")
    with resources.files("skhier").joinpath("data", name).open("r") as fh:
        return pd.read_csv(fh)


def load_sleepstudy() -> pd.DataFrame:
    """Reaction times under sleep deprivation (Belenky et al., 2003; lme4's ``sleepstudy``).

    Returns
    -------
    data : pandas.DataFrame of shape (180, 3)
        ``Reaction`` (mean reaction time, ms), ``Days`` (days of sleep
        deprivation, 0-9) and ``Subject`` (18 subjects).

    Examples
    --------
    >>> from skhier.datasets import load_sleepstudy
    >>> load_sleepstudy().shape
    (180, 3)
    """
    return _read("sleepstudy.csv")


def load_radon() -> pd.DataFrame:
    """Minnesota household radon (Gelman & Hill, 2007; HLMdiag's ``radon``).

    Returns
    -------
    data : pandas.DataFrame of shape (919, 5)
        ``log.radon``, ``basement`` (where radon was measured: 0 = basement,
        1 = first floor, as HLMdiag documents it; Gelman & Hill's ``floor``, so its
        effect is negative: about -0.67), ``uranium`` (county-level log
        uranium), ``county`` (1-85) and ``county.name``.

    Examples
    --------
    >>> from skhier.datasets import load_radon
    >>> load_radon()["county"].nunique()
    85
    """
    return _read("radon.csv")


def load_egsingle() -> pd.DataFrame:
    """Mathematics achievement of pupils followed over school years, in schools
    (Bryk & Raudenbush; mlmRev's ``egsingle``): a *nested* design.

    Returns
    -------
    data : pandas.DataFrame of shape (7230, 6)
        ``math`` (IRT-scaled achievement), ``year`` (school year, centred:
        -2.5 to 2.5), ``childid`` (1,721 children), ``schoolid`` (60 schools; every
        child attends one), ``female`` ("Female" / "Male") and ``lowinc`` (percent of
        low-income pupils in the school).  The classic model is
        ``math ~ year + (year | schoolid/childid)``.

    Examples
    --------
    >>> from skhier.datasets import load_egsingle
    >>> load_egsingle()[["schoolid", "childid"]].nunique().tolist()
    [60, 1721]
    """
    return _read("egsingle.csv.gz")


def load_insteval() -> pd.DataFrame:
    """Lecture evaluations at ETH Zurich (lme4's ``InstEval``): a *crossed* design,
    students rating lecturers.

    Returns
    -------
    data : pandas.DataFrame of shape (73421, 7)
        ``y`` (rating 1-5), ``s`` (2,972 students), ``d`` (1,128 lecturers; every
        student rates several, every lecturer is rated by many), ``studage`` and
        ``lectage`` (coded 1-4 and 1-6: semesters of the student, years of the
        lecture), ``service`` (1: the lecture is a service course for another
        department) and ``dept`` (14 departments).  The classic model is
        ``y ~ service + (1 | s) + (1 | d)``.

    Examples
    --------
    >>> from skhier.datasets import load_insteval
    >>> load_insteval()[["s", "d"]].nunique().tolist()
    [2972, 1128]
    """
    return _read("insteval.csv.gz")


def load_contraception() -> pd.DataFrame:
    """Contraceptive use of women in districts of Bangladesh (1988 Bangladesh
    Fertility Survey; Huq & Cleland 1990; mlmRev's ``Contraception``): a binary
    outcome.

    Returns
    -------
    data : pandas.DataFrame of shape (1934, 6)
        ``use`` (1: the woman used contraception at the time of the survey),
        ``district`` (60 districts, 2 to 118 women each; one has 2), ``urban``
        (1: urban area), ``age`` (years, centred at the mean), ``livch`` (number
        of living children: "0", "1", "2", "3+") and ``woman`` (id).  The classic
        model is ``use ~ age + I(age^2) + urban + livch + (1 | district)``, or with
        ``(urban | district)``.

    Examples
    --------
    >>> from skhier.datasets import load_contraception
    >>> data = load_contraception()
    >>> data.shape, data["district"].nunique()
    ((1934, 6), 60)
    """
    return _read("contraception.csv.gz")


def load_cbpp() -> pd.DataFrame:
    """Contagious bovine pleuropneumonia in 15 herds of zebu cattle in Ethiopia
    (Lesnoff et al. 2004; lme4's ``cbpp``): binomial outcomes, successes out of
    trials per row.

    Returns
    -------
    data : pandas.DataFrame of shape (56, 4)
        ``herd`` (1-15), ``incidence`` (new serological cases in the period),
        ``size`` (the herd's size at the start of the period: the trials) and
        ``period`` (1-4, a factor).  lme4's model is ``cbind(incidence, size -
        incidence) ~ period + (1 | herd)``, binomial:
        ``HierarchicalClassifier(random_slopes=None).fit(X, data["incidence"],
        groups=data["herd"], trials=data["size"])`` with ``X`` the period dummies.

    Examples
    --------
    >>> from skhier.datasets import load_cbpp
    >>> data = load_cbpp()
    >>> data.shape, int(data["size"].sum())
    ((56, 4), 842)
    """
    return _read("cbpp.csv")


def load_epilepsy() -> pd.DataFrame:
    """Seizure counts of 59 epileptics in a randomized trial of progabide (Thall &
    Vail 1990; MASS's ``epil``): counts, four visits per patient.

    Returns
    -------
    data : pandas.DataFrame of shape (236, 9)
        ``y`` (seizures in the two weeks before the visit), ``trt`` ("placebo" or
        "progabide"), ``base`` (seizures in the 8-week baseline period), ``age``
        (years), ``V4`` (1: the fourth visit), ``subject`` (1-59), ``period``
        (visit, 1-4), ``lbase`` (``log(base / 4)``, centred) and ``lage``
        (``log(age)``, centred).  The classic model (Breslow & Clayton 1993;
        Venables & Ripley 2002, section 10.4) is ``y ~ lbase * trt + lage + V4 +
        (1 | subject)``, Poisson.

    Examples
    --------
    >>> from skhier.datasets import load_epilepsy
    >>> data = load_epilepsy()
    >>> data.shape, data["subject"].nunique()
    ((236, 9), 59)
    """
    return _read("epil.csv.gz")


def make_hierarchical_regression(
    n_groups=20,
    n_per_group=10,
    n_features=2,
    *,
    intercept=1.0,
    coef=None,
    group_intercept_sd=0.5,
    group_coef_sd=0.3,
    noise_sd=1.0,
    random_state=None,
):
    """Simulate data from the model ``HierarchicalRegressor`` fits.

    Parameters
    ----------
    n_groups : int, default=20
    n_per_group : int or array-like of shape (n_groups,), default=10
        Rows per group.
    n_features : int, default=2
    intercept : float, default=1.0
        Population intercept ``mu_a``.
    coef : array-like of shape (n_features,), default=None
        Population slopes ``mu_b``; ``1, -1, 1, ...`` when None.
    group_intercept_sd : float, default=0.5
        ``sigma_a``.
    group_coef_sd : float or array-like of shape (n_features,), default=0.3
        ``sigma_b`` (0 for a feature without random slope).
    noise_sd : float, default=1.0
        ``eps``.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    groups : ndarray of shape (n_samples,)
        Integer group labels ``0 .. n_groups - 1``.
    truth : dict
        The true ``intercept``, ``coef``, ``group_intercept_sd``,
        ``group_coef_sd``, ``noise_sd``, ``group_intercept`` (n_groups,) and
        ``group_coef`` (n_groups, n_features).

    Examples
    --------
    >>> from skhier.datasets import make_hierarchical_regression
    >>> X, y, groups, truth = make_hierarchical_regression(5, 4, 1, random_state=0)
    >>> X.shape, truth["group_coef"].shape
    ((20, 1), (5, 1))
    """
    rng = check_random_state(random_state)
    sizes = np.broadcast_to(np.asarray(n_per_group, dtype=int), (n_groups,))
    coef = (
        np.array([(-1.0) ** k for k in range(n_features)])
        if coef is None
        else np.asarray(coef, dtype=float)
    )
    coef_sd = np.broadcast_to(np.asarray(group_coef_sd, dtype=float), (n_features,))
    a = intercept + group_intercept_sd * rng.standard_normal(n_groups)
    b = coef + coef_sd * rng.standard_normal((n_groups, n_features))
    groups = np.repeat(np.arange(n_groups), sizes)
    X = rng.standard_normal((len(groups), n_features))
    y = (
        a[groups]
        + np.einsum("ij,ij->i", X, b[groups])
        + noise_sd * rng.standard_normal(len(groups))
    )
    truth = {
        "intercept": float(intercept),
        "coef": coef,
        "group_intercept_sd": float(group_intercept_sd),
        "group_coef_sd": np.array(coef_sd),
        "noise_sd": float(noise_sd),
        "group_intercept": a,
        "group_coef": b,
    }
    return X, y, groups, truth
