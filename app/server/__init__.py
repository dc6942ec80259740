"""How Gunicorn serves the app: the Procfile's command (``python -m app.server``, in
``__main__``), the worker class (whole requests before a thread) and the listening
sockets the master holds. Imported by gunicorn.conf.py in the master, so nothing here
may import Flask, NumPy or the model."""

from __future__ import annotations

import functools
import sys
import tempfile
from typing import Any

from app.config import EXIT_BAD_SETTING, SettingError, check_environment


@functools.cache
def checked_settings() -> dict[str, Any]:
    """Every setting, checked and parsed once in this process: by ``python -m app.server``
    before Gunicorn is imported, then read by gunicorn.conf.py (which checks them itself
    under a bare ``gunicorn -c``). A bad one: its one line, and exit code 2."""
    try:
        return check_environment()
    except SettingError as error:
        from app.observability.logformat import log_bad_setting

        log_bad_setting(str(error))
        sys.exit(EXIT_BAD_SETTING)


@functools.cache
def default_metrics_folder() -> str:
    """The workers' metrics folder when PROMETHEUS_MULTIPROC_DIR is unset: made once per
    master process, so that a configuration reload (``kill -HUP``, which runs
    gunicorn.conf.py again) keeps the counters, and removed by the master at exit."""
    return tempfile.mkdtemp(prefix="sentiment-metrics-")
