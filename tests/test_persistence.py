"""Saving and loading fitted models; predicting needs only numpy."""

import json
import pickle
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import clone

from skhier import (
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
    persistence,
)
from tests.conftest import predict_in_fresh_process

TRUSTED = [
    "skhier._regressor.HierarchicalRegressor",
    "skhier._posterior.one_factor.Posterior",
]
# skhier 0.1.0 saved the class under its old module, which stays importable
TRUSTED_0_1_0 = ["skhier._estimator.HierarchicalRegressor", "skhier._posterior.Posterior"]


@pytest.mark.parametrize("fmt", ["pickle", "joblib", "skops"])
def test_round_trip_predicts_identically(fitted, sim_data, tmp_path, fmt):
    X, _, groups, _ = sim_data
    path = tmp_path / f"model.{fmt}"
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(fitted))
        loaded = pickle.loads(path.read_bytes())
    elif fmt == "joblib":
        joblib.dump(fitted, path)
        loaded = joblib.load(path)
    else:
        sio.dump(fitted, path)
        assert sorted(sio.get_untrusted_types(file=path)) == sorted(TRUSTED)
        loaded = sio.load(path, trusted=TRUSTED)
    for method in ("predict", "predict_interval"):
        np.testing.assert_array_equal(
            getattr(loaded, method)(X, groups=groups), getattr(fitted, method)(X, groups=groups)
        )
    np.testing.assert_array_equal(
        loaded.sample_y(X[:5], groups=POPULATION, n_samples=3, random_state=0),
        fitted.sample_y(X[:5], groups=POPULATION, n_samples=3, random_state=0),
    )


def test_fitted_state_is_plain_arrays_and_no_training_data(fitted, sim_data):
    X, y, _, _ = sim_data
    state = pickle.dumps(fitted)
    assert b"pymc" not in state and b"pytensor" not in state
    for value in vars(fitted).values():
        if isinstance(value, np.ndarray):
            assert value.shape[0] != len(y) or value.ndim == 0  # never the training rows
    for value in vars(fitted.posterior_).values():
        if isinstance(value, np.ndarray):
            assert value.dtype.kind in "fb"


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
def test_fresh_process_predicts_without_pymc_or_pytensor(fitted, sim_data, tmp_path, fmt):
    X, _, groups, _ = sim_data
    path = tmp_path / f"model.{fmt}"
    if fmt == "joblib":
        joblib.dump(fitted, path)
        load = "from joblib import load"
    else:  # skhier.persistence imports skops (and scikit-learn), not the engines
        persistence.dump(fitted, path)
        load = "from skhier.persistence import load"
    np.save(tmp_path / "X.npy", X[:10])
    expected = fitted.predict(X[:10], groups=groups[:10])
    code = textwrap.dedent(
        f"""
        import sys, numpy as np
        {load}
        from skhier import POPULATION
        est = load({str(path)!r})
        X = np.load({str(tmp_path / "X.npy")!r})
        pred = est.predict(X, groups={groups[:10].tolist()!r})
        est.predict_interval(X, groups={groups[:10].tolist()!r})
        est.sample_y(X, groups=POPULATION, n_samples=2, random_state=0)
        """
    )
    pred, heavy = predict_in_fresh_process(code)
    np.testing.assert_allclose(pred, expected)
    assert heavy == "[]"


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent / "data").glob("model-*.skops")), ids=lambda p: p.stem
)
def test_models_saved_by_released_versions_load_and_predict_identically(path):
    expected = json.loads(path.with_suffix(".json").read_text())
    est = sio.load(path, trusted=TRUSTED_0_1_0 if path.stem == "model-0.1.0" else TRUSTED)
    X, groups = np.array(expected["X"]), expected["groups"]
    np.testing.assert_allclose(est.predict(X, groups=groups), expected["predict"], rtol=1e-12)
    mean, std = est.predict(X, groups=groups, return_std=True)
    np.testing.assert_allclose(std, expected["predict_std"], rtol=1e-12)
    np.testing.assert_allclose(
        est.predict_interval(X, groups=groups), expected["predict_interval"], rtol=1e-12
    )
    # parameters added since keep their meaning for an old model (it kept every draw)
    assert est.get_params()["store_draws"] == "all"
    assert "HierarchicalRegressor" in repr(clone(est))
    assert est.summary(group_diagnostics=True)["r_hat"].notna().any()


# --------------------------------------------------------- skhier.persistence
KINDS = {
    "regressor": HierarchicalRegressor,
    "classifier": HierarchicalClassifier,
    "poisson": HierarchicalPoissonRegressor,
}


def outcome(kind, y):
    if kind == "classifier":
        return (y > np.median(y)).astype(int)
    if kind == "poisson":
        return np.round(np.exp((y - y.mean()) / y.std())).astype(int)
    return y


@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")  # tiny fits
@pytest.mark.parametrize(
    "kind, n_factors",
    [("regressor", 1), ("regressor", 2), ("classifier", 1), ("classifier", 2), ("poisson", 1)],
)
def test_dump_and_load_round_trip_every_kind_of_model(sim_data, tmp_path, kind, n_factors):
    X, y, groups, _ = sim_data
    g = pd.DataFrame({"g": groups, "h": np.arange(len(groups)) % 3})  # h crossed with g
    g, nested = (g["g"], None) if n_factors == 1 else (g, False)
    est = KINDS[kind](draws=20, tune=20, chains=1, random_state=0, nested=nested)
    est = est.fit(X, outcome(kind, y), groups=g)
    path = tmp_path / "model.skops"
    persistence.dump(est, path)
    untrusted = set(sio.get_untrusted_types(file=path))
    assert untrusted <= set(persistence.TRUSTED_TYPES)
    assert ("skhier._posterior.factors.FactorsPosterior" in untrusted) == (n_factors == 2)
    loaded = persistence.load(path)
    assert type(loaded) is type(est)
    with open(path, "rb") as file:  # a binary file object works too
        assert type(persistence.load(file)) is type(est)
    method = "predict_proba" if kind == "classifier" else "predict"
    np.testing.assert_array_equal(
        getattr(loaded, method)(X, groups=g), getattr(est, method)(X, groups=g)
    )
    # skops itself accepts the same list
    assert type(sio.load(path, trusted=persistence.TRUSTED_TYPES)) is type(est)


def test_load_refuses_a_foreign_type_and_a_file_that_is_not_skops(tmp_path):
    import os

    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "unsafe.skops"
    persistence.dump(FunctionTransformer(func=os.system), path)  # a function it would call
    with pytest.raises(ValueError, match=r"refusing to load .*unsafe\.skops.*system"):
        persistence.load(path)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a skops file"):
        persistence.load(tmp_path / "data.csv")


def test_trusted_types_cover_the_files_of_released_versions():
    assert set(TRUSTED) | set(TRUSTED_0_1_0) <= set(persistence.TRUSTED_TYPES)
    for path in (Path(__file__).parent / "data").glob("model-*.skops"):
        assert isinstance(persistence.load(path), HierarchicalRegressor)
