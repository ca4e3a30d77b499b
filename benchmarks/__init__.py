"""Benchmarks: each reports p50/p90/p99 and fps, writes CSV/JSON, and has a smoke run in the tests."""
