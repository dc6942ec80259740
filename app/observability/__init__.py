"""Metrics and the log format, shared by the web side and Gunicorn's master. No Flask."""
