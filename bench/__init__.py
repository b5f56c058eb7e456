"""Benchmarks of the consent service against baselines of the same run.

Run them with ``python -m bench`` (see :mod:`bench.__main__`).
"""
