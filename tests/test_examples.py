"""Every example runs (smoke test with tiny sampler settings)."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.filterwarnings("ignore::skhier.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, capsys):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    est = module.main(fast=True)
    assert hasattr(est, "posterior_")
    assert capsys.readouterr().out.strip()


def test_there_are_examples():
    assert {p.stem for p in EXAMPLES} >= {"quickstart_sleepstudy", "radon_pipeline_cv"}
