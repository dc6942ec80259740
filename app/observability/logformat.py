"""The log format: one JSON object per line, for the app (stdout) and for Gunicorn
(stderr, its ``errorlog = "-"``; its access log, when on, stdout).

No Flask here: gunicorn.conf.py imports this module in the master, which then stays
small (the workers import Flask themselves, after fork).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from gunicorn import glogging
from pythonjsonlogger.orjson import OrjsonFormatter


def json_formatter() -> logging.Formatter:
    """The formatter of every log line: time, level, logger, message, then extras.

    orjson writes the line in about half the time of the standard library's json, and
    the request log line is on every request's path.
    """
    return OrjsonFormatter(
        "%(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
        timestamp="time",
    )


def configure_logging(level: str) -> None:
    """Send the app's logs to stdout as JSON, unless something (pytest, a host app)
    already configured the root logger."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(json_formatter())
        root.addHandler(handler)
        # This process's logging is ours: skip what no line prints, which the logging
        # HOWTO's "Optimization" section lists (the caller's file and line, found by
        # walking the stack on every call, and thread and multiprocessing names).
        logging._srcfile = None
        logging.logThreads = False
        logging.logMultiprocessing = False
    logging.getLogger("app").setLevel(level)


def log_bad_setting(message: str) -> None:
    """The one line that stops start-up on a bad setting (before logging is set up)."""
    configure_logging("INFO")
    logging.getLogger("app.config").critical(message)


class GunicornLogger(glogging.Logger):
    """Gunicorn's logger, writing JSON lines with the same formatter as the app.

    The access log is off unless Gunicorn's ``accesslog`` is set (see gunicorn.conf.py):
    the app's own line per request carries the same fields and more.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(json_formatter())

    def _compute_access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info(
            "access",
            extra={
                "request_id": atoms.get("{x-request-id}o", "-"),
                "remote_addr": atoms["h"],
                "method": atoms["m"],
                "path": atoms["U"],
                "status": resp.status_code,
                "bytes": atoms["B"],
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "user_agent": atoms["a"],
            },
        )
