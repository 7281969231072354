"""Benchmarks: `python -m bench [NAME ...]`; each writes its section of docs/benchmarks.md."""
