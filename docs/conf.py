"""Sphinx configuration for skhier's documentation.

Build (from the repository root)::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Why Sphinx: skhier's docstrings are numpydoc, which Sphinx renders natively
(numpydoc extension); autosummary builds the API reference from them;
sphinx-gallery runs ``examples/`` and puts their printed output and figures on the
page; myst-parser includes the Markdown pages (user guide, quick reference) as they
are. This is the scikit-learn / ArviZ / PyMC toolchain, so the pages look and link
like those projects'.
"""

import importlib.util
import re
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Document the package in this checkout (also when it is installed, non-editable,
# into the environment) and make docs/_ext importable for sphinx-gallery.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))

import skhier  # noqa: E402
from skhier.exceptions import ConvergenceWarning  # noqa: E402

project = "skhier"
author = "skhier developers"
copyright = "skhier developers"
version = release = skhier.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "_templates",
    "_ext",
    "Thumbs.db",
    ".DS_Store",
    # written by sphinx-gallery at every build: per-example run times
    "sg_execution_times.rst",
]

# The toctrees pick pages up with globs: Markdown pages added to docs/ appear in
# the index (after the user guide, the examples and the reference), module pages
# added to docs/reference/ in the reference.
# skhier.plot is optional in this build: while the module is absent its reference
# page is left out.
HAVE_PLOT = importlib.util.find_spec("skhier.plot") is not None
if not HAVE_PLOT:
    exclude_patterns.append("reference/plot.rst")

# -- autodoc / autosummary / numpydoc ---------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # numpydoc's Parameters sections give the types
# The members are listed by autodoc (class template), so numpydoc does not add
# its own member tables (they would duplicate every method).
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# scikit-learn's metadata-routing plumbing (set_fit_request, set_score_request, ...,
# get_metadata_routing) is generated on every estimator with scikit-learn's own
# docstrings, whose cross-references point into scikit-learn's documentation. skhier's
# estimators request ``groups`` by default (see the user guide), so these are left out
# of the reference, as they are of the quick reference.
_SKLEARN_ROUTING = re.compile(r"^(set_\w+_request|get_metadata_routing)$")


def _skip_sklearn_routing(app, what, name, obj, skip, options):
    if what == "class" and _SKLEARN_ROUTING.match(name):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_sklearn_routing)


# -- MyST (Markdown pages) ---------------------------------------------------
myst_heading_anchors = 3  # [text](#a-section) links inside the Markdown pages

# -- sphinx-gallery ------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # every example runs, not only plot_*.py: their printed output is the point
    "filename_pattern": r"\.py$",
    # each example is run as `python examples/NAME.py --fast` (tiny sampler settings)
    "reset_argv": "skhier_gallery.reset_argv",
    "within_subsection_order": "skhier_gallery.ExampleOrder",
    "doc_module": ("skhier",),
    "backreferences_dir": "gen_modules/backreferences",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "min_reported_time": 1,
    "capture_repr": (),
}

# The gallery runs with tiny sampler settings, so the samplers' convergence
# warnings are expected there; they are not shown on the example pages.
warnings.filterwarnings("ignore", category=ConvergenceWarning)
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor")
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

# -- HTML ----------------------------------------------------------------------
# pydata-sphinx-theme: the theme of scikit-learn, ArviZ, PyMC and NumPy, and the one
# sphinx-gallery's pages are styled for.
html_theme = "pydata_sphinx_theme"
html_title = f"skhier {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False
