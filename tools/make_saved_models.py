"""Write the saved-model fixtures of ``tests/data/saved/``.

``python tools/make_saved_models.py`` fits one small model of every kind, saves it with
pickle, joblib and skops, and records what it predicts in ``<kind>.json``. The files
committed there were written by skhier before its modules moved into subpackages
(commit 62447b2); ``tests/test_saved_models.py`` checks that every later version
loads them and predicts identically.  Do not regenerate them: they stand for files
users already have on disk.
"""

import json
import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import skops.io as sio

from skhier import (
    POPULATION,
    HierarchicalClassifier,
    HierarchicalPoissonRegressor,
    HierarchicalRegressor,
)

HERE = Path(__file__).parent.parent / "tests" / "data" / "saved"
FAST = dict(draws=60, tune=60, chains=2, random_state=0)


def data(seed=0, n_groups=6, per_group=10):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    h = np.tile(["a", "b", "c"], len(g) // 3 + 1)[: len(g)]
    X = rng.normal(size=(len(g), 2))
    u = rng.normal(scale=0.5, size=n_groups)[np.searchsorted(np.unique(g), g)]
    eta = 0.3 + u + X @ np.array([0.5, -0.25])
    return X, eta, g, h, rng


def models():
    X, eta, g, h, rng = data()
    y = eta + rng.normal(scale=0.5, size=len(eta))
    yield "regressor", HierarchicalRegressor(**FAST).fit(X, y, groups=g), X, g
    yield "student_t", HierarchicalRegressor(likelihood="student_t", **FAST).fit(
        X, y, groups=g
    ), X, g
    yb = (rng.uniform(size=len(eta)) < 1 / (1 + np.exp(-eta))).astype(int)
    yield "classifier", HierarchicalClassifier(**FAST).fit(X, yb, groups=g), X, g
    yc = rng.poisson(np.exp(eta))
    yield "poisson", HierarchicalPoissonRegressor(**FAST).fit(X, yc, groups=g), X, g
    G = pd.DataFrame({"g": g, "h": h})
    yield "factors", HierarchicalRegressor(random_slopes=None, **FAST).fit(
        X, y, groups=G
    ), X, G
    import dask.dataframe as dd

    df = pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "y": y, "g": g})
    ddf = dd.from_pandas(df, npartitions=3)
    est = HierarchicalRegressor(inference="laplace", **FAST)
    yield "dask", est.fit(ddf[["x0", "x1"]], ddf["y"], groups=ddf["g"]), X, g


def predictions(est, X, groups):
    Xq = X[[0, 1, 2, 3]]
    columns = getattr(est, "feature_names_in_", None)
    if columns is not None:
        Xq = pd.DataFrame(Xq, columns=columns)
    if isinstance(groups, pd.DataFrame):
        gq = groups.iloc[[0, 1, 2, 3]].copy()
        gq.iloc[3] = ["new", "new"]
        gq_json = gq.to_dict(orient="list")
    else:
        gq = np.array([groups[0], groups[15], groups[30], "new"], dtype=object)
        gq_json = gq.tolist()
    out = {
        "X": np.asarray(Xq).tolist(),
        "columns": None if columns is None else list(columns),
        "groups": gq_json,
        "predict": est.predict(Xq, groups=gq).tolist(),
    }
    for name in ("predict_interval", "predict_proba", "predict_proba_interval", "predict_linear"):
        if hasattr(est, name):
            out[name] = np.asarray(getattr(est, name)(Xq, groups=gq)).tolist()
    out["sample_y"] = est.sample_y(
        Xq, groups=POPULATION, n_samples=3, random_state=0
    ).tolist()
    return out


def main():
    for kind, est, X, groups in models():
        (HERE / f"{kind}.pkl").write_bytes(pickle.dumps(est))
        joblib.dump(est, HERE / f"{kind}.joblib")
        sio.dump(est, HERE / f"{kind}.skops")
        expected = predictions(est, X, groups)
        expected["trusted"] = sorted(sio.get_untrusted_types(file=HERE / f"{kind}.skops"))
        (HERE / f"{kind}.json").write_text(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
