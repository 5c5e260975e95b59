"""Benchmarks of the pacspace SDK against raw aiohttp, the official SDK and requests.

``python -m benchmarks [--quick] [--profile] [--out benchmarks/RESULTS.md]`` (or ``nox -s bench``).
See ``benchmarks/RESULTS.md`` for the last full run and how each scenario is set up.
"""
