"""How Gunicorn serves the app: the Procfile's command (``python -m app.server``, in
``__main__``), the worker class (whole requests before a thread) and the listening
sockets the master holds. Imported by gunicorn.conf.py in the master, so nothing here
may import Flask, NumPy or the model."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from typing import Any

from app.config import EXIT_BAD_SETTING, SettingError, check_environment


@functools.cache
def checked_settings() -> dict[str, Any]:
    """Every setting, checked and parsed once in this process: by ``python -m app.server``
    before Gunicorn is imported, then read by gunicorn.conf.py (which checks them itself
    under a bare ``gunicorn -c``). A bad one: its one line, and exit code 2.

    The command line's app is checked with GUNICORN_CMD_ARGS (an ASGI worker class cannot
    serve the Flask app). The metrics folder goes back into the environment as parsed
    (trimmed): prometheus_client in each worker, and gunicorn.conf.py's hooks, read it
    from there, and a padded value made a second folder whose name ended in a space (an
    outside probe)."""
    try:
        values = check_environment(argv=sys.argv[1:])
    except SettingError as error:
        from app.observability.logformat import log_bad_setting

        log_bad_setting(str(error))
        sys.exit(EXIT_BAD_SETTING)
    folder = values["PROMETHEUS_MULTIPROC_DIR"]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "") != folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return values


@functools.cache
def default_metrics_folder() -> str:
    """The workers' metrics folder when PROMETHEUS_MULTIPROC_DIR is unset: made once per
    master process, so that a configuration reload (``kill -HUP``, which runs
    gunicorn.conf.py again) keeps the counters, and removed by the master at exit."""
    return tempfile.mkdtemp(prefix="sentiment-metrics-")
