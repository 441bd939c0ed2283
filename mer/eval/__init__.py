"""Evaluation: protocols (which subjects test in which fold), metrics, the fold loop, reports."""
