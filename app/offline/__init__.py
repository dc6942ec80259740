"""Scoring files without a server: ``python -m app.batch`` (and Spark, later)."""
