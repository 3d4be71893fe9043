"""Every example runs (smoke test with tiny sampler settings)."""

import ast
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


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_docstring_opens_with_a_title(path):
    """The documentation's gallery (sphinx-gallery) titles each example page with the
    docstring's first line, which must be a reStructuredText title."""
    lines = (ast.get_docstring(ast.parse(path.read_text())) or "").splitlines()
    title, underline = (lines + ["", ""])[:2]
    assert title and set(underline) == {"="} and len(underline) >= len(title), (
        f"{path.name}: underline the docstring's first line with '=' (at least as long "
        "as the line) so that it titles the example's page in the documentation"
    )


def test_there_are_examples():
    assert {p.stem for p in EXAMPLES} >= {"quickstart_sleepstudy", "radon_pipeline_cv"}


def test_readme_quickstart_runs_without_warnings():
    """The README's first code block, as a new user pastes it: no warning at all."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    est = namespace["est"]
    assert est.convergence_["max_r_hat"] < 1.01
    assert est.intercept_ == pytest.approx(251.4, abs=5)


def test_readme_formula_block_is_the_quickstart_model():
    """The README's formula block, pasted after the quickstart: the same posterior."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:3]]
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    matrix = namespace["est"]
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    formula = namespace["est"]
    assert formula.formula == "Reaction ~ Days + (Days | Subject)"
    assert formula.intercept_ == matrix.intercept_


def test_readme_binary_block_runs():
    """The README's binary-outcome block, as pasted."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("## Binary outcomes and counts", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    clf = namespace["clf"]
    assert clf.convergence_["max_r_hat"] < 1.01
    assert clf.coef_[1] > 0  # urban women use contraception more
