"""Models saved by earlier versions keep loading and predicting identically.

``tests/data/saved/`` holds one small fitted model of every kind (one-factor Gaussian
and Student-t regressors, classifier, count model, several factors, a Dask fit), each
saved with pickle, joblib and skops by skhier before its modules moved into
subpackages, and what each predicted then.  Old module paths stay importable as thin
aliases; loading and predicting must not import numba, PyMC or nutpie.
"""

import json
import pickle
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from skhier import POPULATION, persistence
from tests.conftest import predict_in_fresh_process

SAVED = Path(__file__).parent / "data" / "saved"
KINDS = sorted(p.stem for p in SAVED.glob("*.json"))
LOADERS = {
    "pkl": lambda p: pickle.loads(p.read_bytes()),
    "joblib": joblib.load,
    "skops": persistence.load,
}


def test_every_kind_is_there():
    assert KINDS == ["classifier", "dask", "factors", "poisson", "regressor", "student_t"]


def _query(expected):
    groups = expected["groups"]
    if isinstance(groups, dict):
        groups = pd.DataFrame(groups)
    else:
        groups = np.array(groups, dtype=object)
    X = np.array(expected["X"])
    if expected["columns"] is not None:
        X = pd.DataFrame(X, columns=expected["columns"])
    return X, groups


@pytest.mark.filterwarnings("ignore::skhier.exceptions.UnseenGroupWarning")  # "new"
@pytest.mark.parametrize("fmt", sorted(LOADERS))
@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_loads_and_predicts_identically(kind, fmt):
    expected = json.loads((SAVED / f"{kind}.json").read_text())
    est = LOADERS[fmt](SAVED / f"{kind}.{fmt}")
    X, groups = _query(expected)
    for name in ("predict", "predict_interval", "predict_proba", "predict_proba_interval",
                 "predict_linear"):
        if name in expected:
            got = np.asarray(getattr(est, name)(X, groups=groups))
            np.testing.assert_allclose(got, expected[name], rtol=1e-12, atol=1e-14)
    got = est.sample_y(X, groups=POPULATION, n_samples=3, random_state=0)
    np.testing.assert_allclose(got, expected["sample_y"], rtol=1e-12, atol=1e-14)


def test_old_skops_types_stay_trusted():
    for kind in KINDS:
        old = json.loads((SAVED / f"{kind}.json").read_text())["trusted"]
        assert set(old) <= set(persistence.TRUSTED_TYPES), kind


@pytest.mark.parametrize("kind", ["factors", "student_t"])
def test_loading_an_old_file_needs_only_numpy(kind):
    expected = json.loads((SAVED / f"{kind}.json").read_text())
    code = textwrap.dedent(
        f"""
        import json, pickle, sys, warnings
        warnings.simplefilter("ignore")
        import numpy as np, pandas as pd
        expected = json.loads(open({str(SAVED / f"{kind}.json")!r}).read())
        est = pickle.loads(open({str(SAVED / f"{kind}.pkl")!r}, "rb").read())
        groups = expected["groups"]
        if isinstance(groups, dict):
            groups = pd.DataFrame(groups)
        else:
            groups = np.array(groups, dtype=object)
        pred = est.predict(np.array(expected["X"]), groups=groups)
        """
    )
    pred, heavy = predict_in_fresh_process(code)
    np.testing.assert_allclose(pred, expected["predict"], rtol=1e-12)
    assert heavy == "[]"
