"""Inference engines: a registry, and one folder per engine with its kernels."""
