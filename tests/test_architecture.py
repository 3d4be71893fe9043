"""The package's layers, enforced: imports run one way and never in a circle.

Every import inside ``skhier`` counts, those inside functions too.  ``LAYERS`` lists
the components from the top (what users call) to the bottom (what everything may
use); CONTRIBUTING.md explains them.  A module may import

* any module of its own component (``skhier._engines.gibbs.chain`` may import
  ``skhier._engines.collapsed.kernels``), as long as no cycle forms, and
* any module of a component on a lower layer,

but never a component on its own layer or above.  Nothing inside the package
imports the ``skhier`` facade (``skhier/__init__.py``).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "skhier"

#: top to bottom; each layer lists its components (module-name prefixes)
LAYERS = [
    # the facade, ``python -m skhier``, and old module paths that saved models name
    ["skhier", "skhier.__main__", "skhier._estimator", "skhier._factors", "skhier._multi",
     "skhier._posterior_factors"],
    ["skhier.cli"],
    ["skhier.plot", "skhier._precompile", "skhier.persistence"],  # faces: the public API
    ["skhier._regressor", "skhier._classifier", "skhier._poisson"],  # the estimators
    ["skhier._core"],  # the fit skeleton, reports, the Bayesian workflow, several factors
    ["skhier._dask"],  # out-of-core fitting and lazy prediction
    ["skhier._engines"],  # the registry and one folder per engine
    ["skhier._posterior"],  # numpy-only results
    ["skhier._model", "skhier._data"],  # what the model is; input to arrays
    ["skhier._numba"],  # jit settings, shared kernels, the kernel cache
    ["skhier._util", "skhier.exceptions", "skhier.datasets", "skhier._version"],
]  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known) -> set[str]:
    """The skhier modules ``name`` imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m == "skhier" or m.startswith("skhier.")}


def component(name: str) -> tuple[int, str]:
    """(layer index, component prefix) of a module: the longest prefix listed."""
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (i, prefix)
    assert best is not None, f"{name} is on no layer: add it to LAYERS"
    return best


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_is_on_a_layer(graph):
    for name in graph:
        component(name)


def test_imports_run_down_the_layers(graph):
    wrong = []
    for name, targets in sorted(graph.items()):
        layer, comp = component(name)
        for target in sorted(targets):
            if target == "skhier" and name != "skhier":
                wrong.append(f"{name} imports the skhier facade")
                continue
            t_layer, t_comp = component(target)
            if t_comp != comp and t_layer <= layer:
                wrong.append(f"{name} (layer {layer}) imports {target} (layer {t_layer})")
    assert not wrong, "upward or sideways imports:\n" + "\n".join(wrong)


def test_no_import_cycles(graph):
    # Tarjan's strongly connected components
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from skhier._core import base\n    import skhier._util.warn\n")
    found = imports("skhier._numba.m", path, {"skhier._core.base"})
    assert found == {"skhier._core.base", "skhier._util.warn"}
    assert component("skhier._core.base") == (4, "skhier._core")
