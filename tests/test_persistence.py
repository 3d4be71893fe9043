"""Saving and loading fitted models; predicting needs only numpy."""

import json
import pickle
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.base import clone

from skhier import POPULATION
from tests.conftest import predict_in_fresh_process

TRUSTED = ["skhier._regressor.HierarchicalRegressor", "skhier._posterior.Posterior"]
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


def test_fresh_process_predicts_without_pymc_or_pytensor(fitted, sim_data, tmp_path):
    X, _, groups, _ = sim_data
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    np.save(tmp_path / "X.npy", X[:10])
    expected = fitted.predict(X[:10], groups=groups[:10])
    code = textwrap.dedent(
        f"""
        import sys, joblib, numpy as np
        from skhier import POPULATION
        est = joblib.load({str(path)!r})
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
