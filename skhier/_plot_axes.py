"""matplotlib helpers of :mod:`skhier.plot`: the optional import with its message,
new Axes, a log axis of group sizes, and a series' name for labels."""

from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib  # noqa: F401
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            'skhier.plot needs matplotlib, an optional dependency: pip install "skhier[plot]"'
        ) from exc
    return plt


def axes_or_new(ax, figsize=(7.0, 4.5)):
    """``ax``, or the Axes of a new figure when it is None."""
    if ax is None:
        ax = pyplot().subplots(figsize=figsize)[1]
    return ax


def log_size_axis(ax, sizes):
    """Log x axis of group sizes, plain numbers: at the sizes when few, else 1-2-5."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ticks = np.unique(sizes)
    if len(ticks) > 6:
        nice = np.outer(10.0 ** np.arange(7), [1, 2, 5]).ravel()
        ticks = nice[(nice >= ticks[0] / 1.3) & (nice <= ticks[-1] * 1.3)]
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("rows in group (log scale)")


def series_name(y, default="y"):
    """The name of a pandas Series (a label), else ``default``."""
    name = getattr(y, "name", None)
    return default if name is None else str(name)
