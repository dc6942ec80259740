"""Request ids and the one JSON log line per request (the format:
``app.observability.logformat``).

Every request gets a ``RequestRecord`` when it starts: its id (the router's
``X-Request-ID`` when it is well formed, a new one otherwise), echoed in the response,
and its start time. A new id is a UUID version 7 (RFC 9562) in 32 hex digits: its first
48 bits are the time in milliseconds, so the ids a server makes sort by time, and the
prediction store's index on them grows at one end instead of taking each insert to a
random page (a quarter of the SQLite writer's CPU a record; README, Feedback).

A route that ran a model hands the result to the record
(``current_record().classification = ...``); the request's single log line and the
request metrics read the record when the request ends, and the response names the
version that answered (``X-Model-Version``). Review texts are never logged. The path is
the client's, percent-decoded, up to a 4 KB request line (each ``%01`` six bytes once
escaped): the formatter cuts a line that would pass 4,096 bytes, and only such a line
(``app.observability.logformat``), so the ordinary line costs nothing more here.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import uuid_utils
from flask import Flask, Response, g, request

from app.observability.logformat import configure_logging
from app.serving.predictor import Classification
from app.web.schemas import REQUEST_ID_PATTERN

REQUEST_ID_HEADER = "X-Request-ID"
# The version whose answer this is, on every answer a model gave: TF Serving's predict
# body has no field for it, and under canary or bandit routing it differs by request.
MODEL_VERSION_HEADER = "X-Model-Version"
_VALID_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)

request_log = logging.getLogger("app.request")


@dataclass
class RequestRecord:
    """What the request log line and the request metrics say about one request."""

    request_id: str
    started: float
    classification: Classification | None = None
    # The version that answered a request that is not a prediction (an explanation).
    answered_by: str | None = None


def current_record() -> RequestRecord:
    """This request's record (every request gets one before its view runs)."""
    return g.record


def request_id_from(header_value: str | None) -> str:
    """Keep the caller's id when it is one Heroku's router would keep, else make one."""
    if header_value and _VALID_REQUEST_ID.fullmatch(header_value):
        return header_value
    return uuid_utils.uuid7().hex


def init_app(app: Flask) -> None:
    """Give every request an id, and log one line per request when it ends."""
    configure_logging(app.config["LOG_LEVEL"])

    @app.before_request
    def start_request() -> None:
        g.record = RequestRecord(
            request_id_from(request.headers.get(REQUEST_ID_HEADER)), time.perf_counter()
        )

    @app.after_request
    def finish_request(response: Response) -> Response:
        # Every request passes start_request first, routing errors (404, 405) included.
        record = current_record()
        response.headers[REQUEST_ID_HEADER] = record.request_id
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - record.started) * 1000, 3),
        }
        classification = record.classification
        version = classification.version if classification is not None else record.answered_by
        if version is not None:
            response.headers[MODEL_VERSION_HEADER] = version
            fields["model_version"] = version
        if classification is not None:
            fields["batch_size"] = len(classification.labels)
            fields["labels"] = classification.labels
        request_log.info("request", extra=fields)
        return response
