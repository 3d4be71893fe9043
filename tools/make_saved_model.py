"""Write tests/data/model-VERSION.skops and its expected predictions.

Run once per release: the test suite checks that every saved version keeps loading
and predicting identically.
"""

import json
from pathlib import Path

import numpy as np
import skops.io as sio

import skhier
from skhier import HierarchicalRegressor
from skhier.datasets import make_hierarchical_regression

HERE = Path(__file__).parent.parent / "tests" / "data"

X, y, g, _ = make_hierarchical_regression(6, 8, 2, random_state=0)
est = HierarchicalRegressor(draws=100, tune=100, chains=2, random_state=0).fit(X, y, groups=g)
sio.dump(est, HERE / f"model-{skhier.__version__}.skops")
X_new = np.array([[0.5, -1.0], [1.0, 2.0], [0.0, 0.0]])
groups_new = [0, 5, "new"]  # two seen groups and a new one
expected = {
    "X": X_new.tolist(),
    "groups": groups_new,
    "predict": est.predict(X_new, groups=groups_new).tolist(),
    "predict_std": est.predict(X_new, groups=groups_new, return_std=True)[1].tolist(),
    "predict_interval": est.predict_interval(X_new, groups=groups_new).tolist(),
}
(HERE / f"model-{skhier.__version__}.json").write_text(json.dumps(expected, indent=1))
