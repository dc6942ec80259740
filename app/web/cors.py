"""Cross-origin requests (CORS), for browser apps served from another origin: off unless
``CORS_ORIGINS`` names the origins that may call the API (or ``*``), as MLServer's
``cors_settings`` and BentoML's ``http.cors`` allow. Flask-Cors writes the headers.

Browsers send no cookies here (the API reads none), so credentials stay off; they may
send the headers the API reads (an API key, a compressed body, a routing key, a request
id) and read the ones it answers with (``X-Request-ID``, which ``POST /feedback`` takes).
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_cors import CORS

from app.web.models import ROUTING_KEY_HEADER
from app.web.open_inference import HEADER_LENGTH
from app.web.request_log import MODEL_VERSION_HEADER

ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Content-Encoding",
    "X-Request-ID",
    ROUTING_KEY_HEADER,
    HEADER_LENGTH,
]
EXPOSED_HEADERS = [
    "X-Request-ID",
    MODEL_VERSION_HEADER,
    "WWW-Authenticate",
    HEADER_LENGTH,
    "Retry-After",  # when to try a 503 again
]
# app.extensions key: the origins and exposed headers, for the answers the Gunicorn worker
# makes itself before the app has the request (app/server/worker.py).
CORS_EXTENSION = "cors"
# Seconds a browser may reuse a preflight's answer (Chromium caps it at 7,200).
PREFLIGHT_MAX_AGE = 600


def init_app(app: Flask) -> None:
    origins = app.config["CORS_ORIGINS"]
    if not origins:
        return
    CORS(
        app,
        origins=list(origins),
        send_wildcard=origins == ("*",),  # "*" itself rather than the caller's origin
        methods=["GET", "HEAD", "POST", "OPTIONS"],  # every method a route here takes
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE,
        supports_credentials=False,
        # Flask runs after_request hooks on error answers too: a second pass is not needed.
        intercept_exceptions=False,
    )
    # Flask-Cors works out its headers for every answer (+35 µs a request, measured),
    # though only a browser's request, which carries Origin, can use them: its hook (the
    # one just registered) runs for those alone. Every answer says it varies by Origin,
    # with or without one (Flask-Cors says so only with several origins, and only to a
    # request that has one): a shared cache may keep a page, a script or /openapi.json
    # (no-cache, with an ETag) and hand the copy without the grant to a listed origin.
    flask_cors_hook = app.after_request_funcs[None].pop()
    app.extensions[CORS_EXTENSION] = (tuple(origins), ", ".join(EXPOSED_HEADERS))

    @app.after_request
    def cors_headers(response: Response) -> Response:
        if "HTTP_ORIGIN" in request.environ:
            response = flask_cors_hook(response)
        response.vary.add("Origin")
        return response
