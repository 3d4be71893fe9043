"""Warnings attributed to the user's line, not to skhier's or scikit-learn's."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import joblib
import sklearn

# Frames inside these packages are skipped: a warning raised while fitting is reported
# at the user's call, whether that is ``est.fit(...)`` or ``cross_val_score(...)``
# (scikit-learn's fit wrapper and joblib's sequential backend sit in between).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # skhier/
_SKIPPED = (_PACKAGE_DIR + os.sep,) + tuple(
    os.path.dirname(os.path.abspath(mod.__file__)) + os.sep for mod in (sklearn, joblib)
)


def _user_stacklevel() -> int:
    """``stacklevel`` of the first frame outside skhier, scikit-learn and joblib."""
    frame = sys._getframe(2)  # the caller of ``warn``
    level = 2
    while frame is not None:
        if not os.path.abspath(frame.f_code.co_filename).startswith(_SKIPPED):
            return level
        frame = frame.f_back
        level += 1
    return 2  # called from library code only (e.g. a worker thread): the caller


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` with the stack level of the user's code."""
    warnings.warn(message, category, stacklevel=_user_stacklevel())


def import_quietly(name: str):
    """Import the third-party module ``name`` (arviz, nutpie, pymc: each imports
    ArviZ) without ArviZ's import-time notice about its coming refactor, a
    FutureWarning about ArviZ's API that skhier's users do not call."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning
        )
        return importlib.import_module(name)
