"""Benchmarks: run as `python -m benchmarks.<name>` or `python benchmarks/<name>.py`; see common.py."""
