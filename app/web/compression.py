"""gzip for what a browser downloads to show ``/docs`` and the page: the static files
(Swagger UI's bundle and styles, 1.87 MB, are 0.48 MB gzipped) and ``/openapi.json``
(68 KB, 9 KB gzipped), when the client accepts gzip.

Only these routes are wrapped, so the API's routes pay nothing: their answers stay
uncompressed (README, Open Inference Protocol: they are small). Each body is compressed once
per worker and kept, keyed by path and ETag, so a changed file is compressed again:
about 0.5 MB a worker, and 45 ms of CPU on the first download of the bundle.

As nginx does, the gzipped answer carries the file's ETag made weak (``W/"..."``):
``If-None-Match`` compares weakly, so either representation's tag revalidates to a 304,
and ``If-Range`` (strong only) cannot ask for byte ranges of the gzipped bytes, which is
also why the gzipped answer drops ``Accept-Ranges``.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

from app.web.errors import preconditions_in_json

# Endpoints whose answers are the same for every request until a file changes.
ENDPOINTS = ("static", "docs.static", "openapi.openapi_json")
COMPRESSIBLE = ("text/", "application/javascript", "application/json")


def init_app(app: Flask) -> None:
    """Wrap the views of ``ENDPOINTS`` (after their blueprints are registered)."""
    for endpoint in ENDPOINTS:
        app.view_functions[endpoint] = gzipped(app.make_response, app.view_functions[endpoint])


def gzipped(make_response: Callable[[Any], Response], view: Callable[..., Any]) -> Callable:
    """``view``, answering in gzip where the client accepts it."""
    bodies: dict[tuple[str, str | None], bytes] = {}

    @functools.wraps(view)
    def wrapper(**kwargs: Any) -> Response:
        response = preconditions_in_json(make_response(view(**kwargs)))
        response.vary.add("Accept-Encoding")
        if (
            response.status_code not in (200, 304)
            or not response.mimetype.startswith(COMPRESSIBLE)
            or request.accept_encodings.quality("gzip") <= 0
        ):
            return response
        etag, _ = response.get_etag()
        if response.status_code == 304:  # the client holds either representation
            if etag:
                response.set_etag(etag, weak=True)
            return response
        key = (request.path, etag)
        body = bodies.get(key)
        response.direct_passthrough = False
        if body is None:
            body = bodies[key] = gzip.compress(response.get_data(), compresslevel=6, mtime=0)
        else:
            close = getattr(response.response, "close", None)  # the unread file
            if close is not None:
                close()
        response.set_data(body)
        response.headers["Content-Encoding"] = "gzip"
        response.headers.pop("Accept-Ranges", None)
        if etag:
            response.set_etag(etag, weak=True)
        return response

    return wrapper
