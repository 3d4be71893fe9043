"""Dask: out-of-core fitting and lazy prediction."""
