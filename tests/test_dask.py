"""Out-of-core fitting and lazy prediction with Dask (the `dask` extra).

The one pass over the partitions must give the in-memory fit's statistics (to
rounding), hence its posterior; prediction must be lazy and equal to the
in-memory prediction; everything that needs the rows must say so clearly."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from skhier import POPULATION, HierarchicalClassifier, HierarchicalRegressor
from skhier._dask import moments as _moments
from skhier._data.checks import group_level_features
from skhier._data.groups import encode, unique_labels
from skhier._engines.collapsed.reference import sufficient_stats
from skhier._model.spec import ModelSpec, Scaling, choose_parametrization, design
from skhier.exceptions import (
    BinaryTargetWarning,
    FewGroupsWarning,
    IdentifiabilityWarning,
    NoGroupsWarning,
)

pytestmark = pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
FAST = dict(draws=150, tune=150, chains=2, progressbar=False, random_state=0)


def _simulate(n=3000, n_groups=40, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=(n, 2)) + offset
    a, b = rng.normal(0, 1, n_groups), rng.normal(0, 0.5, n_groups)
    y = 1 + a[g] + (2 + b[g]) * x[:, 0] - x[:, 1] + rng.normal(0, 1, n) + offset
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "y": y, "g": g})


# ----------------------------------------------------------- moments (no Dask)
@pytest.mark.parametrize("standardize", [True, False])
def test_moments_give_the_in_memory_statistics(standardize):
    """Pieces of any size (one empty, one holding a group alone), far from the
    origin, combine to the statistics, scaling and checks of the whole."""
    df = _simulate(offset=1e4)
    df["lvl"] = df["g"] * 0.5  # a group-level predictor
    labels = np.array([f"s{v}" for v in df["g"]], dtype=object)
    labels[-1] = "only-in-the-last-piece"
    X, y = df[["x0", "x1", "lvl"]].to_numpy(), df["y"].to_numpy()
    cuts = [0, 10, 10, 700, 2100, len(y)]
    parts = [
        _moments.partition_moments(X[a:b].copy(), y[a:b], labels[a:b])
        for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]
    m = _moments.combine_all(parts)
    classes = unique_labels(labels)
    codes = encode(labels, classes)
    np.testing.assert_array_equal(m.labels, classes)
    scale = _moments.scaling(m, standardize)
    expected = Scaling.fit(X, y, standardize)
    np.testing.assert_allclose(scale.x_mean, expected.x_mean, rtol=1e-12)
    np.testing.assert_allclose(scale.x_scale, expected.x_scale, rtol=1e-9)
    np.testing.assert_allclose([scale.y_mean, scale.y_scale], [expected.y_mean, expected.y_scale])
    spec = ModelSpec(3, (0, 1), 1.0, 1.0, 1.0, 1.0, "collapsed", "centered")
    F, Z, ys = design(X, y, spec, expected)
    want = sufficient_stats(F, Z, ys, codes, len(classes))
    got = _moments.sufficient_stats(m, spec.slope_idx, scale)
    for name in ("n", "zz", "zw", "ww"):
        a, b = getattr(got, name), getattr(want, name)
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max(), err_msg=name)
    mask, means = _moments.group_level_features(m)
    want_mask, want_means = group_level_features(X, codes, len(classes))
    np.testing.assert_array_equal(mask, want_mask)
    assert mask.tolist() == [False, False, True]
    np.testing.assert_allclose(means, want_means)
    assert _moments.parametrization(m, expected) == choose_parametrization(ys, codes, len(classes))
    assert m.y_values is None


@pytest.mark.parametrize(
    "make_labels",
    [
        lambda g: g + 7,  # a compact integer range (table lookup)
        lambda g: g * 10**12 - 5,  # a wide integer range (hashing)
        lambda g: g.astype(np.uint8),
        lambda g: (g - 50).astype(np.int8),  # negative labels, 8-bit arithmetic
        lambda g: np.array([f"p{v:03d}" for v in g], dtype=object),
    ],
    ids=["compact-int", "wide-int", "uint8", "int8", "str"],
)
def test_partition_moments_equal_a_direct_computation(make_labels):
    """Per-group count, sums, cross products, minima and maxima of one piece, with
    groups of one row, uneven sizes and label types the codes take other paths for."""
    rng = np.random.default_rng(3)
    g = np.r_[rng.integers(0, 60, 400), 99]  # group 99 has one row
    labels = make_labels(g)
    X, y = rng.normal(size=(len(g), 3)) * [1, 5, 100], rng.normal(size=len(g))
    m = _moments.partition_moments(X, y, labels)
    np.testing.assert_array_equal(m.labels, unique_labels(labels))
    codes = encode(labels, m.labels)
    v = np.c_[X, y] - m.shift
    for j in range(len(m.labels)):
        rows = v[codes == j]
        assert m.n[j] == len(rows)
        np.testing.assert_allclose(m.s1[j], rows.sum(axis=0), atol=1e-10)
        np.testing.assert_allclose(m.cross_products()[j], rows.T @ rows, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(m.lo[j], rows[:, :3].min(axis=0))
        np.testing.assert_allclose(m.hi[j], rows[:, :3].max(axis=0))
    np.testing.assert_allclose(m.abs_max, np.abs(np.c_[X, y]).max(axis=0))


def test_moments_track_two_valued_targets():
    X = np.arange(8.0).reshape(4, 2)
    a = _moments.partition_moments(X[:2].copy(), np.array([0.0, 0.0]), np.array([1, 2]))
    b = _moments.partition_moments(X[2:].copy(), np.array([1.0, 0.0]), np.array([2, 3]))
    assert _moments.combine_all([a, b]).y_values == (0.0, 1.0)
    c = _moments.partition_moments(X[:1].copy(), np.array([5.0]), np.array([1]))
    assert _moments.combine_all([a, b, c]).y_values is None


# -------------------------------------------------------------------- Dask
dd = pytest.importorskip("dask.dataframe")
da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def frames():
    df = _simulate()
    df.loc[df.index[-1], "g"] = 999  # a label seen in one partition only
    return df, dd.from_pandas(df, npartitions=5)


def _features(df):
    return df[["x0", "x1"]]


@pytest.mark.parametrize("inference", ["laplace", "nuts"])
def test_dask_fit_equals_in_memory_fit(frames, inference):
    df, ddf = frames
    kw = dict(FAST, inference=inference, random_slopes=["x0"])
    mem = HierarchicalRegressor(**kw).fit(_features(df), df["y"], groups=df["g"])
    lazy = HierarchicalRegressor(**kw).fit(_features(ddf), ddf["y"], groups=ddf["g"])
    np.testing.assert_array_equal(lazy.groups_, mem.groups_)
    assert 999 in lazy.groups_
    np.testing.assert_array_equal(lazy.feature_names_in_, ["x0", "x1"])
    assert lazy.n_features_in_ == 2 and lazy.parametrization_ == mem.parametrization_
    # the same statistics and seed: the same posterior, up to rounding (NUTS may
    # amplify rounding along a trajectory: compare on the posterior's own scale)
    tol = 1e-6 if inference == "laplace" else 0.1
    width = np.ptp(mem.coef_interval_, axis=-1)  # about 3.3 posterior SDs
    np.testing.assert_allclose(lazy.coef_, mem.coef_, atol=tol * width.max())
    np.testing.assert_allclose(lazy.group_intercept_, mem.group_intercept_, atol=tol * 3)
    np.testing.assert_allclose(lazy.noise_sd_, mem.noise_sd_, rtol=tol)
    assert lazy.convergence_["method"] == mem.convergence_["method"]


def test_dask_fit_group_col_population_and_arrays(frames):
    df, ddf = frames
    kw = dict(FAST, inference="laplace")
    mem = HierarchicalRegressor(**kw).fit(_features(df), df["y"], groups=df["g"])
    by_col = HierarchicalRegressor(group_col="g", **kw).fit(ddf[["x0", "x1", "g"]], ddf["y"])
    np.testing.assert_allclose(by_col.coef_, mem.coef_, rtol=1e-6)
    Xa = da.from_array(_features(df).to_numpy(), chunks=(700, 1))
    ya = da.from_array(df["y"].to_numpy(), chunks=700)
    ga = da.from_array(df["g"].to_numpy(), chunks=700)
    arr = HierarchicalRegressor(**kw).fit(Xa, ya, groups=ga)
    np.testing.assert_allclose(arr.coef_, mem.coef_, rtol=1e-6)
    assert not hasattr(arr, "feature_names_in_")
    pooled_mem = HierarchicalRegressor(**kw).fit(_features(df), df["y"], groups=POPULATION)
    pooled = HierarchicalRegressor(**kw).fit(_features(ddf), ddf["y"], groups=POPULATION)
    np.testing.assert_allclose(pooled.coef_, pooled_mem.coef_, rtol=1e-6)
    with pytest.warns(NoGroupsWarning):
        HierarchicalRegressor(**kw).fit(_features(ddf), ddf["y"])


def test_dask_fit_warns_as_in_memory():
    df = _simulate(n=400, n_groups=2)
    df["lvl"] = df["g"] * 1.0 + 3.0
    df["y"] = (df["y"] > df["y"].median()).astype(float)
    ddf = dd.from_pandas(df, npartitions=3)
    kw = dict(FAST, inference="laplace", random_slopes=["x0", "lvl"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HierarchicalRegressor(**kw).fit(ddf[["x0", "x1", "lvl"]], ddf["y"], groups=ddf["g"])
    kinds = {type(w.message) for w in caught}
    assert {FewGroupsWarning, BinaryTargetWarning} <= kinds
    df = _simulate(n=600, n_groups=12)
    df["lvl"] = df["g"] * 0.5 + 0.25
    ddf = dd.from_pandas(df, npartitions=3)
    with pytest.warns(IdentifiabilityWarning, match="constant within every group"):
        HierarchicalRegressor(**kw).fit(ddf[["x0", "x1", "lvl"]], ddf["y"], groups=ddf["g"])
    est = HierarchicalRegressor(**{**kw, "random_slopes": "all"})
    est.fit(ddf[["x0", "x1", "lvl"]], ddf["y"], groups=ddf["g"])
    assert est.group_level_features_.tolist() == [False, False, True]
    assert est.random_slope_mask_.tolist() == [True, True, False]


def test_lazy_prediction_equals_in_memory(frames):
    df, ddf = frames
    est = HierarchicalRegressor(**FAST, inference="laplace").fit(
        _features(ddf), ddf["y"], groups=ddf["g"]
    )
    new = ddf.assign(g=ddf["g"] + 5000)  # unseen groups
    for frame, groups in ((ddf, ddf["g"]), (new, new["g"])):
        local = frame.compute()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = est.predict(_features(frame), groups=groups)
            want = est.predict(_features(local), groups=local["g"])
            got = pred.compute()
        assert isinstance(pred, dd.Series)
        np.testing.assert_allclose(got.to_numpy(), want)
        pd.testing.assert_index_equal(got.index, local.index)
    mean, std = est.predict(_features(ddf), groups=ddf["g"], return_std=True)
    want_mean, want_std = est.predict(_features(df), groups=df["g"], return_std=True)
    np.testing.assert_allclose(mean.compute().to_numpy(), want_mean)
    np.testing.assert_allclose(std.compute().to_numpy(), want_std)
    interval = est.predict_interval(_features(ddf), groups=POPULATION, prob=0.8).compute()
    assert list(interval.columns) == ["lower", "upper"] and len(interval) == len(df)
    assert np.all(interval["lower"] < interval["upper"])
    draws = est.sample_y(_features(ddf), groups=ddf["g"], n_samples=3, random_state=1)
    again = est.sample_y(_features(ddf), groups=ddf["g"], n_samples=3, random_state=1)
    a, b = draws.compute(), again.compute()
    assert a.shape == (len(df), 3) and list(a.columns) == ["sample_0", "sample_1", "sample_2"]
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    first = a.to_numpy()[: len(a) // 5]
    assert not np.allclose(first, a.to_numpy()[len(a) // 5 : 2 * (len(a) // 5)])
    want = est.score(_features(df), df["y"], groups=df["g"])
    assert est.score(_features(ddf), ddf["y"], groups=ddf["g"]) == pytest.approx(want, rel=1e-9)


def test_lazy_prediction_edge_cases(frames):
    """Empty partitions, a snapshot of the model, one check of unseen groups for the
    whole data, joint sample_y draws across partitions, clear errors."""
    from skhier.exceptions import UnseenGroupWarning

    df, ddf = frames
    est = HierarchicalRegressor(**FAST, inference="laplace").fit(
        _features(ddf), ddf["y"], groups=ddf["g"]
    )
    some = ddf[ddf["x0"] > 1.0]  # every partition keeps a few rows
    none = ddf[ddf["x0"] > 100.0]  # every partition empty
    for part in (some, none):
        local = part.compute()
        got = est.predict(_features(part), groups=part["g"]).compute()
        np.testing.assert_allclose(
            got.to_numpy(), est.predict(_features(local), groups=local["g"]) if len(local) else []
        )
        assert est.predict_interval(_features(part), groups=part["g"]).compute().shape == (
            len(local),
            2,
        )
        assert est.sample_y(_features(part), groups=part["g"], n_samples=2).compute().shape == (
            len(local),
            2,
        )
    lazy = est.predict(_features(ddf), groups=ddf["g"])
    want = est.predict(_features(df), groups=df["g"])
    est.fit(_features(ddf), ddf["y"] * 10, groups=ddf["g"])  # a refit does not change `lazy`
    np.testing.assert_allclose(lazy.compute().to_numpy(), want)
    new = ddf.assign(g=ddf["g"] % 7 + 5000)
    with pytest.warns(
        UnseenGroupWarning, match=f"None of the 7 group label.*{len(df)}|None of the 7"
    ) as caught:
        pred = est.predict(_features(new), groups=new["g"])  # checked here, once
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred.compute()  # the partitions do not warn again
    with pytest.raises(TypeError, match="`groups` is a ndarray"):
        est.predict(_features(ddf), groups=df["g"].to_numpy())
    with pytest.raises(ValueError, match="two-dimensional"):
        est.predict(ddf["x0"], groups=ddf["g"])
    with pytest.raises(ValueError, match="NaN"):
        est.score(_features(ddf), ddf["y"].mask(ddf["x0"] > 1.5), groups=ddf["g"])


@pytest.mark.filterwarnings("ignore::skhier.exceptions.IdentifiabilityWarning")  # x = 0
def test_sample_y_columns_are_joint_draws_across_partitions():
    """Rows of one new group share its drawn effect in every partition: the
    difference of two such rows with equal features is noise only."""
    rng = np.random.default_rng(5)
    n, n_groups = 1200, 30
    g = rng.integers(0, n_groups, n)
    y = 3.0 * rng.normal(size=n_groups)[g] + rng.normal(size=n)  # sigma_a 3, eps 1
    df = pd.DataFrame({"x": np.zeros(n), "g": g, "y": y})
    est = HierarchicalRegressor(
        **FAST, inference="laplace", random_slopes=None, unseen_groups="population"
    )
    est.fit(df[["x"]], df["y"], groups=df["g"])
    new = dd.from_pandas(pd.DataFrame({"x": np.zeros(40), "g": ["new"] * 40}), npartitions=4)
    draws = est.sample_y(new[["x"]], groups=new["g"], n_samples=400, random_state=0).compute()
    first, last = draws.iloc[0].to_numpy(), draws.iloc[-1].to_numpy()  # partitions 1 and 4
    assert np.var(first - last) < 3.0  # noise only: 2 eps^2 = 2 (not shared: about 20)
    assert np.var(first) > 6.0  # the new group's effect does vary across draws


def test_parquet_columns_read_apart_stay_aligned(tmp_path):
    """Dask may partition column selections of the same files differently (it fuses
    small partitions when fewer columns are read): the fit and the predictions
    must still pair each row's features, target and group."""
    df = _simulate(n=4000, n_groups=50, seed=4)
    for i in range(8):
        df.iloc[i * 500 : (i + 1) * 500].to_parquet(tmp_path / f"p{i}.parquet", index=False)
    ddf = dd.read_parquet(tmp_path)
    kw = dict(FAST, inference="laplace")
    mem = HierarchicalRegressor(**kw).fit(_features(df), df["y"], groups=df["g"])
    est = HierarchicalRegressor(**kw).fit(_features(ddf), ddf["y"], groups=ddf["g"])
    np.testing.assert_allclose(est.coef_, mem.coef_, rtol=1e-6)
    paired = ddf[["y"]].assign(pred=est.predict(_features(ddf), groups=ddf["g"])).compute()
    want = mem.predict(_features(df), groups=df["g"])
    np.testing.assert_allclose(paired["pred"].to_numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(paired["y"].to_numpy(), df["y"].to_numpy())


def test_lazy_prediction_of_dask_arrays(frames):
    df, _ = frames
    Xa = da.from_array(_features(df).to_numpy(), chunks=(1000, 2))
    ga = da.from_array(df["g"].to_numpy(), chunks=1000)
    X, g = _features(df).to_numpy(), df["g"].to_numpy()
    est = HierarchicalRegressor(**FAST, inference="laplace").fit(X, df["y"], groups=g)
    pred = est.predict(Xa, groups=ga)
    assert isinstance(pred, da.Array) and pred.shape == (len(df),)
    want = est.predict(X, groups=g)
    np.testing.assert_allclose(pred.compute(), want)
    one_block = da.from_array(X, chunks=(len(X), 2))  # Monte Carlo: the same seed, same rows
    interval = est.predict_interval(one_block, groups=da.from_array(g, chunks=len(g)), prob=0.8)
    np.testing.assert_allclose(interval.compute(), est.predict_interval(X, groups=g, prob=0.8))
    draws = est.sample_y(Xa, groups=ga, n_samples=2, random_state=0).compute()
    assert draws.shape == (len(df), 2) and np.all(np.isfinite(draws))
    assert abs(np.corrcoef(draws[:, 0], want)[0, 1]) > 0.5  # draws follow the predictions


def test_what_cannot_work_out_of_core_says_so(frames):
    df, ddf = frames
    X, y, g = _features(ddf), ddf["y"], ddf["g"]
    with pytest.raises(ValueError, match="likelihood='student_t' needs the rows"):
        HierarchicalRegressor(likelihood="student_t").fit(X, y, groups=g)
    with pytest.raises(ValueError, match="engine='explicit' samples from the rows"):
        HierarchicalRegressor(engine="explicit").fit(X, y, groups=g)
    with pytest.raises(ValueError, match="several grouping factors"):
        HierarchicalRegressor(group_col=["g", "x1"]).fit(ddf[["x0", "x1", "g"]], y)
    with pytest.raises(TypeError, match="HierarchicalClassifier.fit cannot take a Dask collection"):
        HierarchicalClassifier().fit(X, y > 1, groups=g)
    with pytest.raises(TypeError, match="`groups` as a Dask collection"):
        HierarchicalRegressor().fit(X, y, groups=df["g"].to_numpy())
    with pytest.raises(TypeError, match="pass X as a Dask DataFrame"):
        HierarchicalRegressor().fit(_features(df), y, groups=g)
    Xa = da.from_array(_features(df).to_numpy(), chunks=(700, 2))
    ya = da.from_array(df["y"].to_numpy(), chunks=500)
    with pytest.raises(ValueError, match="partitioned alike"):
        HierarchicalRegressor().fit(Xa, ya, groups=POPULATION)
    bad = df.copy()
    bad.loc[7, "x0"] = np.nan  # one NaN, in one partition
    bad = dd.from_pandas(bad, npartitions=5)
    with pytest.raises(ValueError, match="NaN"):
        HierarchicalRegressor(**FAST).fit(_features(bad), bad["y"], groups=bad["g"])
    with pytest.raises(ValueError, match="non-numeric column"):
        HierarchicalRegressor().fit(ddf.assign(s="a")[["x0", "s"]], y, groups=g)
    est = HierarchicalRegressor(**FAST, inference="laplace").fit(X, y, groups=g)
    with pytest.raises(TypeError, match="compute_log_likelihood cannot take a Dask collection"):
        est.compute_log_likelihood(X, y, groups=g)
    with pytest.raises(TypeError, match="sample_prior_predictive cannot take a Dask collection"):
        est.sample_prior_predictive(X, y, groups=g)
    with pytest.raises(ValueError, match="sample_weight"):
        est.score(X, y, groups=g, sample_weight=np.ones(len(df)))


def test_skhier_works_without_dask():
    """skhier never imports Dask itself, and works where it cannot be imported."""
    code = (
        "import sys\n"
        "sys.modules['dask'] = sys.modules['distributed'] = None  # as if not installed\n"
        "import numpy as np, skhier\n"
        "X = np.random.default_rng(0).normal(size=(60, 1)); g = np.arange(60) % 4\n"
        "est = skhier.HierarchicalRegressor(draws=20, tune=20, chains=1, progressbar=False)\n"
        "est.fit(X, X[:, 0] + g, groups=g).predict(X, groups=g)\n"
        "est.score(X, X[:, 0], groups=g)\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)
    code = "import sys, skhier; assert 'dask' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_prediction_checks_unseen_levels_of_several_factors():
    """A model with two grouping factors (fit in memory, labels in X via group_col)
    predicting lazily: unseen levels warn once on the client with whole-data counts,
    as in memory (not silently in the workers), and "raise" raises there."""
    from skhier.exceptions import UnseenGroupWarning
    from tests.test_factors import crossed_data

    X, y, g = crossed_data(n_rows=300)
    frame = pd.DataFrame(X, columns=["x1", "x2"]).join(g)
    kw = dict(group_col=["student", "lecturer"], nested=False, random_slopes=None)
    est = HierarchicalRegressor(**kw, draws=30, tune=30, chains=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame, y)
    new = frame.assign(student=frame["student"].where(frame.index % 3 != 0, 10_000))
    lazy_frame = dd.from_pandas(new, npartitions=4)
    with pytest.warns(UnseenGroupWarning, match=r"student.*100 of 300 rows") as record:
        pred = est.predict(lazy_frame)
    assert len([w for w in record if issubclass(w.category, UnseenGroupWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the workers do not warn again
        got = pred.compute()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = est.predict(new)
    np.testing.assert_allclose(got.to_numpy(), want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(dd.from_pandas(frame, npartitions=4))  # every level seen: silent
    est.set_params(unseen_groups="raise")
    with pytest.raises(Exception, match="student"):
        est.predict(lazy_frame)


def test_sample_y_new_levels_of_several_factors_are_shared_across_partitions():
    """With two crossed factors, rows of one new level share its drawn effect in
    every partition, as with one factor: rows with the same new student and the
    same seen lecturer differ by noise only."""
    rng = np.random.default_rng(6)
    n = 1500
    s, lec = rng.integers(0, 30, n), rng.integers(0, 10, n)
    y = 3.0 * rng.normal(size=30)[s] + rng.normal(size=10)[lec] + rng.normal(size=n)
    frame = pd.DataFrame({"x": np.zeros(n), "student": s, "lecturer": lec, "y": y})
    est = HierarchicalRegressor(
        group_col=["student", "lecturer"], nested=False, random_slopes=None,
        unseen_groups="population", draws=200, tune=200, chains=2, random_state=0,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame[["x", "student", "lecturer"]], frame["y"])
    new = pd.DataFrame({"x": np.zeros(40), "student": [999] * 40, "lecturer": [3] * 40})
    lazy_new = dd.from_pandas(new, npartitions=4)
    draws = est.sample_y(lazy_new, n_samples=400, random_state=0).compute()
    first, last = draws.iloc[0].to_numpy(), draws.iloc[-1].to_numpy()  # partitions 1 and 4
    assert np.var(first - last) < 3.0  # noise only: 2 eps^2 = 2 (not shared: about 20)
    assert np.var(first) > 6.0  # the new student's effect does vary across draws


def test_bad_data_in_one_partition_is_named():
    """A partition with NaN in X, or whose group labels have another dtype: one
    clear error naming the partition and the column, as in memory."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "g": np.arange(60) % 6})
    frame["y"] = frame["x"] + rng.normal(size=60)
    est = HierarchicalRegressor(draws=20, tune=20, chains=1, group_col="g")
    bad = frame.copy()
    bad.loc[45, "x"] = np.nan  # in the last of three partitions
    ddf = dd.from_pandas(bad, npartitions=3, sort=False)
    with pytest.raises(ValueError, match=r"Partition 2 .*NaN.*\['x'\]"):
        est.fit(ddf[["x", "g"]], ddf["y"])
    parts = [frame.iloc[:30], frame.iloc[30:].assign(g=lambda d: d["g"].astype(str))]
    mixed = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])
    with pytest.raises(TypeError, match="numbers in some .* strings"):
        est.fit(mixed[["x", "g"]], mixed["y"])


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_during_a_dask_pass_reaches_the_caller():
    """Ctrl-C while Dask reads the partitions: KeyboardInterrupt within seconds,
    the estimator unfitted, and the next fit works."""
    import _thread
    import signal
    import threading
    import time

    frame = _simulate(n=2000, n_groups=20)
    ddf = dd.from_pandas(frame, npartitions=20)

    def slow(part):
        time.sleep(0.5)
        return part

    slowed = ddf.map_partitions(slow, meta=ddf._meta)
    est = HierarchicalRegressor(group_col="g", **FAST)
    timer = threading.Timer(1.0, _thread.interrupt_main, args=(signal.SIGINT,))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            est.fit(slowed[["x0", "x1", "g"]], slowed["y"])
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 4.0  # the whole pass would take 5 s on 2 threads
    assert not [k for k in vars(est) if k.endswith("_")]
    est.fit(ddf[["x0", "x1", "g"]], ddf["y"])
    assert np.isfinite(est.coef_).all()
