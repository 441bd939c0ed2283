"""Numeric kernels timed against straightforward references: ``python -m benchmarks``."""
