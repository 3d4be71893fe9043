"""What a user installs holds every module of the source tree.

The test suite imports skhier from the source tree (the repository root is on the
path), so a module or subpackage that the build leaves out of the wheel would fail
only for users.  Here a process started outside the repository imports the
*installed* package (in CI, ``pip install .``) and its files are compared."""

import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "skhier"


def test_the_installed_package_has_every_module_of_the_source_tree(tmp_path):
    code = (
        "import skhier, skhier._numba.jit, skhier._numba.cache; "
        "from skhier import HierarchicalRegressor; print(skhier.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    installed = Path(out.stdout.strip()).parent

    def modules(root):
        return {p.relative_to(root).as_posix() for p in root.rglob("*.py")}

    missing = modules(SOURCE) - modules(installed)
    assert not missing, f"left out of the installed package {installed}: {sorted(missing)}"
    data = {p.name for p in (SOURCE / "data").iterdir() if not p.name.startswith(".")}
    assert data <= {p.name for p in (installed / "data").iterdir()}
