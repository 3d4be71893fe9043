"""Helpers for sphinx-gallery, referenced from conf.py by their dotted names.

sphinx-gallery accepts callables as "module.name" strings, which keeps the
configuration picklable (Sphinx caches it between builds).
"""

import os


def reset_argv(gallery_conf, script_vars):
    """Command-line arguments for every example: tiny sampler settings."""
    return ["--fast"]


class ExampleOrder:
    """Order of the gallery: the quickstart and its picture first, then by file name."""

    FIRST = ("quickstart_sleepstudy.py", "plot_shrinkage_sleepstudy.py")

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = os.path.basename(filename)
        rank = self.FIRST.index(name) if name in self.FIRST else len(self.FIRST)
        return rank, name

    def __repr__(self):
        return f"{type(self).__name__}()"
