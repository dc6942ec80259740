"""Request ids and the one JSON log line per request (the format: ``app/jsonlog.py``).

Every request gets an id (the router's ``X-Request-ID`` when it is well formed, a new
one otherwise), echoed in the response and carried by the request's single log line.
Review texts are never logged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request

from app.jsonlog import configure_logging

REQUEST_ID_HEADER = "X-Request-ID"
# What Heroku's router keeps from a client: 20–200 characters of this alphabet.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9+/=-]{20,200}")

request_log = logging.getLogger("app.request")


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
