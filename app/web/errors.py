"""Domain errors and the one place where every error becomes a JSON response.

Each error class carries its HTTP status and stable ``code``; ``init_app`` maps them,
every Werkzeug ``HTTPException`` and any unexpected exception to the same body shape:
``{"error": {"code": ..., "message": ..., "details": {...}}}``, or, under a URL prefix
that registered its own shape in ``app.extensions[ERROR_BODIES]``, that shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge
from werkzeug.http import parse_date

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client can act on; subclasses set ``status`` and ``code``."""

    status = 500
    code = "internal_error"
    message = "The server could not process the request."
    headers: tuple[tuple[str, str], ...] = ()  # sent with the error (WWW-Authenticate on 401)

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}


class InvalidJSON(APIError):
    status = 400
    code = "invalid_json"
    message = "The request body is not valid JSON."


class ValidationFailed(APIError):
    status = 400
    code = "validation_error"
    message = "The request body does not match the expected schema."


class UnsupportedMediaType(APIError):
    status = 415
    code = "unsupported_media_type"
    message = "Send the request body as JSON with 'Content-Type: application/json'."


class UnsupportedEncoding(APIError):
    status = 415
    code = "unsupported_media_type"
    message = "Send the body as it is, or compressed with gzip or deflate (Content-Encoding)."
    headers = (("Accept-Encoding", "gzip, deflate"),)  # RFC 9110, 15.5.16


class InvalidEncoding(APIError):
    """A body whose Content-Encoding says gzip or deflate but whose bytes are not."""

    status = 400
    code = "invalid_encoding"


class BrokenChunks(APIError):
    """A chunked body whose framing Gunicorn refused as the app read it."""

    status = 400
    code = "bad_request"


class ModelNotFound(APIError):
    status = 404
    code = "model_not_found"
    message = "No such model or version is served."


# Werkzeug names its exceptions ("Not Found" → not_found); these read better to clients.
_HTTP_CODES = {
    RequestEntityTooLarge.code: "payload_too_large",
}
_HTTP_MESSAGES = {
    400: "The request could not be understood.",
    404: "No resource exists at this URL.",
    405: "This URL does not support the request's method.",
    413: "The request body is larger than the server accepts.",
}

# The methods the server answers on one URL or another (OPTIONS *).
SERVER_METHODS = "GET, HEAD, POST, OPTIONS"

PRECONDITION_FAILED = (
    "The resource does not match the request's If-Match, or changed after its If-Unmodified-Since."
)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one JSON shape of every error response."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


# app.extensions key: URL prefix → function building the error body for URLs under it, for
# APIs whose clients expect another shape (TF Serving's ``{"error": str}`` under /v1/).
ERROR_BODIES = "error_bodies"
ErrorBodyBuilder = Callable[[str, str, dict[str, Any]], dict[str, Any]]


def body_for_path(
    app: Flask, path: str, code: str, message: str, details: dict[str, Any]
) -> dict[str, Any]:
    """The error body for a URL of ``app``: a registered shape (for the prefix's URLs and
    the prefix itself without its slash: ``/v2``), else ``error_body``."""
    builders: dict[str, ErrorBodyBuilder] = app.extensions.get(ERROR_BODIES, {})
    for prefix, build in builders.items():
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return build(code, message, details)
    return error_body(code, message, details)


def _body_for_request(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return body_for_path(current_app, request.path, code, message, details)


def http_error_parts(error: HTTPException) -> tuple[int, str, str, dict[str, Any]]:
    """Status, code, message and details for a Werkzeug HTTP exception."""
    status = error.code or 500
    code = _HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_")
    message = _HTTP_MESSAGES.get(status) or f"{error.name}."
    details: dict[str, Any] = {}
    if getattr(error, "valid_methods", None):
        details["allowed_methods"] = sorted(error.valid_methods)
    return status, code, message, details


def _json_error(status: int, body: dict[str, Any], headers: Any = None) -> Response:
    try:
        response = jsonify(body)
    except (TypeError, ValueError):  # details that cannot be JSON: never a second failure
        log.error("error body not serialisable; sent without details", exc_info=True)
        inner = body.get("error") if isinstance(body.get("error"), dict) else None
        if inner is None:
            raise
        response = jsonify(error_body(inner["code"], inner["message"]))
    response.status_code = status
    for name, value in headers or ():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def preconditions_in_json(response: Response) -> Response:
    """``response`` of a view whose answers Werkzeug makes conditional (the static files,
    ``/openapi.json``: app/web/compression.py wraps exactly those): Werkzeug turns a
    failed ``If-Match`` into a 412 that keeps the whole resource as its body, and does
    not read ``If-Unmodified-Since`` (RFC 9110 13.1.4: 412 for a resource changed since);
    both were outside probes' findings. Now a 412 in the API's shape; and ``If-Match:
    *``, which Werkzeug refuses too, is served."""
    if response.status_code == 200 and request.method in ("GET", "HEAD"):
        since = request.environ.get("HTTP_IF_UNMODIFIED_SINCE")
        if since is None or "HTTP_IF_MATCH" in request.environ:
            return response
        changed, limit = response.last_modified, parse_date(since)
        if changed is None or limit is None or changed <= limit:
            return response
    elif response.status_code != 412:
        return response
    elif request.environ.get("HTTP_IF_MATCH", "").strip() == "*":
        # "*" matches any representation (Werkzeug's 412); then If-None-Match decides
        etag, _ = response.get_etag()
        fresh = etag is not None and request.if_none_match.contains_weak(etag)
        response.status_code = 304 if fresh else 200
        return response
    response.close()  # a file's, unread
    body = _body_for_request("precondition_failed", PRECONDITION_FAILED, {})
    return _json_error(412, body)


def init_app(app: Flask) -> None:
    """Register the handlers that turn every exception into a JSON error."""

    @app.errorhandler(APIError)
    def handle_api_error(error: APIError) -> Response:
        return _json_error(
            error.status,
            _body_for_request(error.code, error.message, error.details),
            error.headers,
        )

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response:
        if isinstance(error, InternalServerError):
            # Flask's own 500 (an error handler failed, or an exception escaped): the
            # same code, body and log line with the request id as any unexpected error.
            return handle_unexpected_error(error.original_exception or error)
        if error.code == 404 and request.environ.get("PATH_INFO") == "*":
            # OPTIONS * asks about the server itself (RFC 9110 9.3.7; Gunicorn lets "*"
            # through for OPTIONS only): what any of its URLs may be sent.
            return Response(status=204, headers={"Allow": SERVER_METHODS})
        status, code, message, details = http_error_parts(error)
        # Keep headers such as Allow on 405.
        return _json_error(status, _body_for_request(code, message, details), error.get_headers())

    @app.errorhandler(Exception)
    def handle_unexpected_error(error: Exception) -> Response:
        # The trace goes to the log only, with the request id the client got in
        # X-Request-ID: no exception text or path reaches the client.
        record = g.get("record")  # None only if the request failed before it started
        log.exception(
            "unhandled exception",
            exc_info=error,
            extra={"request_id": record.request_id if record else None, "path": request.path},
        )
        return _json_error(500, _body_for_request(APIError.code, APIError.message, {}))
