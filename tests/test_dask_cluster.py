"""skhier on a `distributed` cluster of worker processes (the `dask` extra): the
out-of-core fit, lazy prediction, and cross-validation through joblib's Dask
backend, each equal to the serial, in-memory result."""

import numpy as np
import pandas as pd
import pytest

from skhier import HierarchicalRegressor

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

pytestmark = pytest.mark.filterwarnings(
    "ignore::skhier.exceptions.ConvergenceWarning",
    # the cluster's own notices (ports, scratch space, closing) are not skhier's
    "ignore::UserWarning:distributed.*",
    "ignore::ResourceWarning",
    "ignore::DeprecationWarning",
)
FAST = dict(draws=150, tune=150, chains=2, progressbar=False, random_state=0)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n, n_groups = 2400, 30
    g = rng.integers(0, n_groups, n)
    x = rng.normal(size=(n, 2))
    a = rng.normal(0, 1, n_groups)
    y = 1 + a[g] + 2 * x[:, 0] - x[:, 1] + rng.normal(0, 1, n)
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "g": g, "y": y})


def test_fit_and_predict_on_worker_processes(client, data):
    ddf = dd.from_pandas(data, npartitions=6)
    kw = dict(FAST, inference="laplace", group_col="g")
    local = HierarchicalRegressor(**kw).fit(data[["x0", "x1", "g"]], data["y"])
    remote = HierarchicalRegressor(**kw).fit(ddf[["x0", "x1", "g"]], ddf["y"])
    np.testing.assert_allclose(remote.coef_, local.coef_, rtol=1e-6)
    np.testing.assert_allclose(remote.group_intercept_, local.group_intercept_, atol=1e-6)
    pred = remote.predict(ddf[["x0", "x1", "g"]])
    np.testing.assert_allclose(pred.compute().to_numpy(), local.predict(data[["x0", "x1", "g"]]))


def test_grid_search_through_joblib_dask_backend(client, data):
    import joblib
    from sklearn.model_selection import GridSearchCV, GroupKFold

    # Laplace fits keep the test short; every method is a deterministic function of
    # the data and the seed (tests/test_numba_cache.py checks NUTS across processes).
    est = HierarchicalRegressor(
        **FAST, inference="laplace", group_col="g", unseen_groups="population"
    )
    grid = {"prior_group_sd": [0.5, 1.0], "random_slopes": [None, ["x0"]]}
    X, y = data[["x0", "x1", "g"]], data["y"]
    serial = GridSearchCV(est, grid, cv=GroupKFold(3)).fit(X, y, groups=X["g"])
    with joblib.parallel_config(backend="dask"):
        dist = GridSearchCV(est, grid, cv=GroupKFold(3)).fit(X, y, groups=X["g"])
    np.testing.assert_allclose(
        dist.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-6
    )
    assert dist.best_params_ == serial.best_params_

    def compiled():  # the collapsed engine's compiled densities in this worker
        from skhier._engines.collapsed import kernels as _kernels

        return [len(d.overloads) for d in _kernels._DENSITIES.values()]

    per_worker = client.run(compiled)
    # 12 fits (4 settings x 3 folds) over 2 workers: each worker compiled (or loaded
    # from the on-disk cache) the density of each shape class it met once, and every
    # later fit reused it - nothing is compiled per fit
    for counts in per_worker.values():
        assert max(counts) <= 1 and sum(counts) >= 1
    assert sum(sum(c) for c in per_worker.values()) >= 2  # both shape classes were fit


def _kill_worker_once(part, marker):
    """A map_partitions step that kills its own worker process the first time it
    runs anywhere (preemption, an out-of-memory kill), guarded by a marker file."""
    import os
    import signal

    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return part
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return part  # never reached


@pytest.mark.slow
def test_a_worker_killed_mid_pass_changes_nothing(data, tmp_path):
    """A worker process dies during the out-of-core fit's pass, and again during a
    lazy prediction: Dask recomputes the lost partitions from the graph, and both
    equal the in-memory results -- never a result computed from part of the data."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    kw = dict(FAST, inference="laplace", group_col="g")
    cols = ["x0", "x1", "g"]
    with cluster, distributed.Client(cluster) as client:
        ddf = dd.from_pandas(data, npartitions=6)
        killer = ddf.map_partitions(_kill_worker_once, str(tmp_path / "fit"), meta=ddf._meta)
        local = HierarchicalRegressor(**kw).fit(data[cols], data["y"])
        remote = HierarchicalRegressor(**kw).fit(killer[cols], killer["y"])
        assert (tmp_path / "fit").exists(), "no worker was killed"
        np.testing.assert_allclose(remote.coef_, local.coef_, rtol=1e-6)
        np.testing.assert_allclose(remote.group_intercept_, local.group_intercept_, atol=1e-6)
        killer = ddf.map_partitions(_kill_worker_once, str(tmp_path / "pred"), meta=ddf._meta)
        pred = remote.predict(killer[cols]).compute().to_numpy()
        assert (tmp_path / "pred").exists()
        np.testing.assert_allclose(pred, local.predict(data[cols]))
        client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed ones
