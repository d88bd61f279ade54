"""Benchmarks: what is measured (never asserted in a test). `python -m benchmarks [name ...]`."""
