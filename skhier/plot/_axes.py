"""matplotlib helpers of :mod:`skhier.plot`: the optional import with its message,
new Axes, the x axis of the shrinkage plot, a legend that covers no data, square-root
ticks, and a series' name for labels."""

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
    """``ax``, or the Axes of a new figure (constrained layout: no label is cut off)."""
    if ax is None:
        ax = pyplot().subplots(figsize=figsize, layout="constrained")[1]
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


def group_axis(ax, names, label):
    """x axis of groups at 0, 1, ...: their names as ticks when they fit, else none."""
    x = np.arange(len(names))
    if len(names) <= 40:
        long = max(len(n) for n in names) > 3 or len(names) > 12
        ax.set_xticks(x, names, rotation=90 if long else 0, fontsize="small")
    else:
        ax.set_xticks([])
    ax.set_xlim(-0.8, len(names) - 0.2)
    ax.set_xlabel(label)


def legend_on_top(ax, ncol, **kwargs):
    """A legend in a band above the data, made by raising the top of the (linear) y
    axis, so that it covers none of the data; in at most ``ncol`` columns, fewer where
    the Axes is too narrow for them."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    root = ax.figure.figure  # (the figure itself, or the one holding a subfigure)
    if root.get_layout_engine() is not None:
        root.get_layout_engine().execute(root)  # the Axes' size as it will be drawn
    width, height = ax.bbox.width * 72 / root.dpi, ax.bbox.height * 72 / root.dpi  # points
    labels = ax.get_legend_handles_labels()[1]
    prop = FontProperties(size="small")
    size = prop.get_size_in_points()
    wide = [TextToPath().get_text_width_height_descent(t, prop, ismath=False)[0] for t in labels]
    ncol = max(1, min(ncol, len(labels)))
    while ncol > 1:  # columns one after another (as matplotlib fills them): handle, text
        per = -(-len(labels) // ncol)
        need = sum(max(wide[i : i + per]) + 2.8 * size for i in range(0, len(wide), per))
        if need + (2 * ncol - 1) * size <= 0.97 * width:
            break
        ncol -= 1
    rows = -(-len(labels) // ncol) + (kwargs.get("title") is not None)
    band = min(0.5, ((1.45 * rows + 1.3) * size + 6) / max(height, 1.0))
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, lo + (hi - lo) / (1.0 - band))
    return ax.legend(loc="upper center", ncol=ncol, fontsize="small", **kwargs)


def sqrt_ticks(ax, top):
    """Ticks of a square-root y axis from 0 to ``top``: even in the square root, at
    round numbers (1, 1.5, 2, 3, 4, 5, 6, 8 x 10^k), and 1."""
    nice = np.r_[0, np.outer(10.0 ** np.arange(9), [1, 1.5, 2, 3, 4, 5, 6, 8]).ravel()]
    nice = nice[nice <= max(top, 1)]
    targets = np.linspace(0, np.sqrt(max(top, 1)), 6)
    pick = np.abs(np.sqrt(nice)[:, None] - targets).argmin(0)
    ax.set_yticks(np.unique(np.r_[nice[pick], 1.0]))  # 0 or 1 row: worth telling apart
    ax.yaxis.set_major_formatter("{x:g}")


def series_name(y, default="y"):
    """The name of a pandas Series (a label), else ``default``."""
    name = getattr(y, "name", None)
    return default if name is None else str(name)
