"""Benchmarks (``python -m benchmarks.<name>``); never run by the tests."""
