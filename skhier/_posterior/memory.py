"""Refuse up front what cannot fit in memory: a fit whose kept draws, or a
prediction whose output, would exceed the memory available -- with the size it
would need and the option that reduces it -- instead of dying in an allocation
after minutes of sampling."""

from __future__ import annotations

import os

#: at most this share of the available memory for one array of results
SHARE = 0.8


def available_bytes():
    """Memory available to this process now (Linux: ``MemAvailable``; elsewhere the
    physical memory), or None where it cannot be told."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def size(nbytes: float) -> str:
    """``nbytes`` in readable units (1.5 GiB)."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"  # pragma: no cover


def require(nbytes: float, what: str, fix: str) -> None:
    """Raise MemoryError when ``nbytes`` exceed :data:`SHARE` of the memory
    available, naming ``what`` needs them and the ``fix``."""
    free = available_bytes()
    if free is not None and nbytes > SHARE * free:
        raise MemoryError(
            f"{what} would need {size(nbytes)} of memory; {size(free)} is available. {fix}"
        )


def check_fit(est, spec, n_groups):
    """A fit's kept joint draws of the group effects (``store_draws``) must fit."""
    from skhier._posterior.group_draws import kept_per_chain

    factors = spec.factors or ()
    effects = sum(f.n_levels * f.n_random for f in factors) if factors else n_groups * spec.n_random
    kept = kept_per_chain(est.store_draws, est.chains, est.draws, max(effects, 1), 1)
    require(
        8.0 * est.chains * kept * effects,
        f"Keeping {est.chains * kept:,} joint draws of {effects:,} group effects "
        f"(store_draws={est.store_draws!r})",
        "Keep fewer: store_draws='auto' (the default) or a number of draws; predictions "
        "and summaries still use every draw.",
    )


def check_samples(n_rows, n_samples, n_features, what="sample_y"):
    """The ``(n_rows, n_samples)`` output of ``sample_y`` must fit, with the
    per-row coefficients of each draw it is computed from."""
    require(
        8.0 * n_rows * n_samples * (n_features + 2),
        f"{what} for {n_rows:,} rows x {n_samples:,} samples",
        "Ask for fewer samples, or predict the rows in chunks (e.g. "
        "np.array_split(X, k)), or pass X as a Dask collection for a lazy result.",
    )
