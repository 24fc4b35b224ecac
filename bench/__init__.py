"""Benchmarks: ``python -m bench.run`` (the worker against the naive design, bench/baseline.py).

See bench/README.md for how to run each scenario and docs/performance.md for the figures.
"""
