"""Compile every kernel specialisation ahead of time (Docker images, cluster
workers, CI caches): :func:`precompile`, and ``skhier precompile`` on the
command line.

The registry :func:`shapes` lists one small model per compiled specialisation,
each fit with the argument types of a real fit (a kernel compiled for other
types would be compiled again at the first real fit):

- the collapsed engine (Gaussian noise, one factor): each shape class of its
  density (:data:`skhier._engines.collapsed.grad.SHAPE_CLASSES`), sampled by NUTS and by
  importance sampling (whose weights use the value-only kernel); both draw
  everything integrated out with the class's exact-draw kernels;
- the augmented engine (Student-t noise): each shape class of its chain;
- the Gibbs engine of several factors (crossed and nested, Gaussian), the
  Polya-Gamma Gibbs engine (binary, several factors) and the GLMM NUTS density
  (binary and count outcomes, one factor; one kernel for every family).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Shape:
    """One model whose fit compiles one specialisation: ``estimator`` (a class
    name of :mod:`skhier`), its parameters, the number of features, how many of
    them have random slopes (``None``: the estimator's default), grouping factors
    and their layout."""

    name: str
    estimator: str = "HierarchicalRegressor"
    params: dict = field(default_factory=dict)
    n_features: int = 1
    n_factors: int = 1
    nested: bool = False


def _collapsed_shapes():
    from skhier._engines.collapsed.grad import SHAPE_CLASSES

    shapes = []
    for Q, PP1 in SHAPE_CLASSES:
        # a (q random effects, p features) inside the class: intercepts plus q - 1 slopes
        q, p = (Q, PP1 - 1) if PP1 else {1: (1, 2), 2: (2, 3), 0: (3, 4)}[Q]
        slopes = None if q == 1 else list(range(q - 1))
        tag = f"{p - 1}features-{q}effects"
        for inference in ("nuts", "importance"):
            shapes.append(Shape(f"normal-{inference}-{tag}", params=dict(
                random_slopes=slopes, inference=inference), n_features=p - 1))  # fmt: skip
        shapes.append(Shape(f"student_t-{tag}", params=dict(
            random_slopes=slopes, likelihood="student_t"), n_features=p - 1))  # fmt: skip
    return shapes


def _shapes():
    many = dict(random_slopes=None)
    return (
        *_collapsed_shapes(),
        Shape("normal-crossed", params=dict(many, nested=False), n_factors=2),
        Shape("normal-nested-slope", n_factors=2, nested=True),
        Shape("binary-one-factor", "HierarchicalClassifier"),
        Shape("binary-crossed", "HierarchicalClassifier", dict(many, nested=False), n_factors=2),
        Shape("counts-poisson", "HierarchicalPoissonRegressor"),
        Shape("counts-negative-binomial", "HierarchicalPoissonRegressor",
              dict(family="negative_binomial")),
    )  # fmt: skip


def shapes():
    """Every compiled specialisation's model, by name (see the module docstring)."""
    return {s.name: s for s in _shapes()}


def data(shape, n_groups=8, rows=6, seed=0):
    """A small data set of ``shape``: ``(X, y, groups)``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = n_groups * rows
    X = rng.normal(size=(n, max(shape.n_features, 1)))[:, : shape.n_features]
    codes = np.repeat(np.arange(n_groups), rows)
    if shape.n_factors == 1:
        groups = codes
    elif shape.nested:
        groups = pd.DataFrame({"a": codes // 4, "b": codes})
    else:
        groups = pd.DataFrame({"a": codes, "b": rng.permutation(codes)})
    eta = X.sum(axis=1) * 0.3 + rng.normal(size=n_groups)[codes] * 0.5
    if shape.estimator == "HierarchicalClassifier":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int)
    elif shape.estimator == "HierarchicalPoissonRegressor":
        y = rng.poisson(np.exp(eta + 1.0))
    else:
        y = eta + rng.normal(size=n)
    return X, y, groups


def estimator_classes() -> dict:
    """skhier's estimator classes by name (imported on first use)."""
    from skhier._classifier import HierarchicalClassifier
    from skhier._poisson import HierarchicalPoissonRegressor
    from skhier._regressor import HierarchicalRegressor

    classes = (HierarchicalRegressor, HierarchicalClassifier, HierarchicalPoissonRegressor)
    return {cls.__name__: cls for cls in classes}


def fit(name, *, draws=30, tune=30, random_state=0):
    """Fit the model of ``SHAPES[name]`` on its small data set; the estimator."""
    shape = shapes()[name]
    X, y, groups = data(shape)
    kwargs = dict(shape.params)
    if shape.n_factors > 1 and "nested" not in kwargs:
        kwargs["nested"] = True
    est = estimator_classes()[shape.estimator](
        draws=draws, tune=tune, chains=2, random_state=random_state, **kwargs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny fit: convergence is not the point
        return est.fit(X, y, groups=groups)


def _in_subprocess(name):
    code = f"from skhier._precompile import fit; fit({name!r})"
    env = dict(os.environ, SKHIER_COMPILE_AHEAD="0")
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def precompile(names=None, *, jobs=1, verbose=False):
    """Compile (or load) every kernel specialisation skhier has, into the kernel
    cache, so that no later fit on this machine waits for compilation.

    Parameters
    ----------
    names : list of str, optional
        Which specialisations (names of :func:`skhier._precompile.shapes`); default all.
    jobs : int, default=1
        Processes compiling at once (each specialisation in its own process when
        ``jobs > 1``).  Compilation is single-threaded: one job per core.
    verbose : bool, default=False
        Print one line per specialisation with its time.

    Returns
    -------
    seconds : dict
        Wall time per specialisation.

    Examples
    --------
    >>> from skhier import precompile
    >>> seconds = precompile(["normal-nuts-1features-1effects"])  # doctest: +SKIP
    """
    known = shapes()
    names = list(known) if names is None else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"Unknown specialisation(s) {unknown}; known: {sorted(known)}.")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1; got {jobs}.")
    seconds = {}
    if verbose:
        from skhier._numba.cache import cache_dir

        print(f"compiling {len(names)} specialisations into {cache_dir()}, {jobs} at a time "
              "(a few minutes)", flush=True)  # fmt: skip
    if jobs == 1:
        for name in names:
            start = time.perf_counter()
            fit(name)
            seconds[name] = time.perf_counter() - start
            if verbose:
                print(f"{name:<40} {seconds[name]:6.1f} s", flush=True)
        return seconds
    pending, running = list(names), {}
    try:
        _run_jobs(pending, running, jobs, seconds, verbose)
    finally:  # an error or Ctrl-C: no process is left compiling
        for process, _ in running.values():
            process.kill()
            process.wait()
    return seconds


def _run_jobs(pending, running, jobs, seconds, verbose):
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            running[name] = (_in_subprocess(name), time.perf_counter())
        time.sleep(0.05)
        for name, (process, start) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            seconds[name] = time.perf_counter() - start
            if process.returncode != 0:
                raise RuntimeError(f"compiling {name} failed:\n{process.stderr.read()[-2000:]}")
            if verbose:
                print(f"{name:<40} {seconds[name]:6.1f} s", flush=True)
