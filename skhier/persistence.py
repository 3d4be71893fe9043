"""Save fitted models to files and load them back safely, with skops.

``pickle`` and ``joblib`` files can run any code when loaded: use them only for files
you trust.  A skops file lists the types it holds, so it can be checked before it is
loaded: :func:`load` loads a file only if every type in it is one that skops trusts by
default (builtins, numpy, scikit-learn) or one of :data:`TRUSTED_TYPES`,
skhier's own classes that a fitted model holds.

Examples
--------
>>> import os, tempfile
>>> from skhier import HierarchicalRegressor
>>> from skhier.persistence import dump, load
>>> path = os.path.join(tempfile.mkdtemp(), "model.skops")
>>> dump(HierarchicalRegressor(draws=500), path)  # a fitted model is saved the same way
>>> load(path)
HierarchicalRegressor(draws=500)

A file holding anything else, such as a function it would call, is refused:

>>> from sklearn.preprocessing import FunctionTransformer
>>> dump(FunctionTransformer(func=eval), path)
>>> load(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: refusing to load '...model.skops': it holds types that are not skhier's ...

With skops itself, the same check is
``skops.io.load(path, trusted=skhier.persistence.TRUSTED_TYPES)``, which raises on a
file naming any other type.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

__all__ = ["TRUSTED_TYPES", "dump", "load"]

#: Types of skhier's own that a saved model may hold, beyond those skops trusts by
#: default.  A one-factor regressor holds its estimator class and
#: ``skhier._posterior.one_factor.Posterior``; a classifier or count model holds its own
#: class; a model with several grouping factors holds the four factor types instead of
#: ``Posterior``.  Models saved by earlier versions name some of these classes by their
#: old modules, which stay importable as aliases and stay trusted here.
TRUSTED_TYPES: list[str] = [
    "skhier._regressor.HierarchicalRegressor",
    "skhier._classifier.HierarchicalClassifier",
    "skhier._poisson.HierarchicalPoissonRegressor",
    "skhier._posterior.one_factor.Posterior",
    # several grouping factors
    "skhier._data.factors.FactorLayout",
    "skhier._posterior.factors.FactorEffects",
    "skhier._posterior.factors.FactorPosterior",
    "skhier._posterior.factors.FactorsPosterior",
    # a model fit with a formula: its encoding, as plain values
    "skhier._core.formula.Encoding",
    "skhier._core.formula_parse.Formula",
    "skhier._core.formula_parse.RandomTerm",
    # where these classes lived in earlier versions
    "skhier._core.formula.Formula",
    "skhier._core.formula.RandomTerm",
    "skhier._estimator.HierarchicalRegressor",  # skhier 0.1.0
    "skhier._posterior.Posterior",
    "skhier._factors.FactorLayout",
    "skhier._multi.FactorEffects",
    "skhier._posterior_factors.FactorPosterior",
    "skhier._posterior_factors.FactorsPosterior",
]


def dump(estimator: Any, file: str | os.PathLike | BinaryIO) -> None:
    """Save a fitted estimator to a skops file (``skops.io.dump``).

    Parameters
    ----------
    estimator : estimator
        A fitted skhier estimator (or a pipeline holding one).
    file : str, path-like or binary file object
        Where to write it; ``.skops`` is the usual suffix.
    """
    import skops.io as sio

    sio.dump(estimator, file)


def load(file: str | os.PathLike | BinaryIO) -> Any:
    """Load a model saved by :func:`dump`, refusing files that hold other types.

    Parameters
    ----------
    file : str, path-like or binary file object
        A skops file.

    Returns
    -------
    estimator
        The saved object.

    Raises
    ------
    ValueError
        If the file is not a skops file, or if it holds a type that is neither one
        skops trusts by default nor in :data:`TRUSTED_TYPES` (such a type could run
        code while loading).  Load a file you trust despite that with
        ``skops.io.load(file, trusted=[...])``.
    """
    import zipfile

    import skops.io as sio

    name = getattr(file, "name", file)
    if hasattr(file, "read"):
        data = file.read()
    else:
        with open(file, "rb") as f:
            data = f.read()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise ValueError(
            f"'{name}' is not a skops file; save models with skhier.persistence.dump "
            "(or 'skhier fit')."
        ) from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ValueError(
            f"refusing to load '{name}': it holds types that are not skhier's "
            f"({', '.join(refused)}), which could run code while loading; load only "
            "models saved by skhier from a source you trust."
        )
    return sio.loads(data, trusted=untrusted)
