"""Benchmarks: `make bench` (ab against real Gunicorn servers) and the in-process pipeline."""
