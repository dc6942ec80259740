"""Structured logging: one JSON object per line on stdout, for the app and for Gunicorn.

Every request gets an id (the router's ``X-Request-ID`` when it is well formed, a new
one otherwise), echoed in the response and carried by the request's single log line.
Review texts are never logged.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# What Heroku's router keeps from a client: 20–200 characters of this alphabet.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9+/=-]{20,200}")

request_log = logging.getLogger("app.request")


def json_formatter() -> logging.Formatter:
    """The formatter of every log line: time, level, logger, message, then extras."""
    return JsonFormatter(
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
    logging.getLogger("app").setLevel(level)


def request_id_from(header_value: str | None) -> str:
    """Keep the caller's id when it is one Heroku's router would keep, else make one."""
    if header_value and _VALID_REQUEST_ID.fullmatch(header_value):
        return header_value
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    """Give every request an id, and log one line per request when it ends."""
    configure_logging(app.config["LOG_LEVEL"])

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))

    @app.after_request
    def finish_request(response: Response) -> Response:
        # Every request passes start_request first, routing errors (404, 405) included.
        response.headers[REQUEST_ID_HEADER] = g.request_id
        fields: dict[str, Any] = {
            "request_id": g.request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - g.started) * 1000, 3),
        }
        if "labels" in g:
            fields["batch_size"] = len(g.labels)
            fields["labels"] = g.labels
        request_log.info("request", extra=fields)
        return response


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
