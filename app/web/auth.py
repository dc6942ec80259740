"""Optional API keys: with ``API_KEYS`` set, every route but the health probes and the
page's own files answers only requests that carry ``Authorization: Bearer <key>`` with one
of the keys (RFC 6750's header; Werkzeug parses it). Anything else gets 401 with a
``WWW-Authenticate`` challenge, in the error shape of the URL (TF Serving's under /v1/,
the Open Inference Protocol's under /v2).

With no keys set, nothing is registered: a request pays nothing for this module.
"""

from __future__ import annotations

import hmac

from flask import Flask, request

from app.web.errors import APIError

# What a platform's probes and a browser fetch without credentials: liveness and
# readiness (the service's, TF Serving's model status, the Open Inference Protocol's), and
# the page, the API documentation and their static files (they hold no data of their own:
# every answer the page shows comes from a keyed route).
PUBLIC_ENDPOINTS = frozenset(
    {
        "api.health",
        "api.ready",
        "tfserving.model_status",
        "open_inference.live",
        "open_inference.ready",
        "open_inference.model_ready",
        "web.index",
        "static",
        "docs.docs",
        "docs.static",
        "openapi.openapi_json",
    }
)
REALM = 'Bearer realm="sentiment"'


class APIKeyMissing(APIError):
    status = 401
    code = "api_key_required"
    message = "This server needs an API key: send the header 'Authorization: Bearer <key>'."
    headers = (("WWW-Authenticate", REALM),)


class APIKeyInvalid(APIError):
    status = 401
    code = "api_key_invalid"
    message = "The API key is not one this server accepts."
    headers = (("WWW-Authenticate", f'{REALM}, error="invalid_token"'),)


def is_public(endpoint: str | None) -> bool:
    """Whether a route answers without a key (an unknown URL gets its 404 either way)."""
    return endpoint is None or endpoint in PUBLIC_ENDPOINTS


def init_app(app: Flask) -> None:
    """Check the key of every request to a keyed route, when ``API_KEYS`` holds any."""
    keys = tuple(key.encode() for key in app.config["API_KEYS"])
    if not keys:
        return

    @app.before_request
    def require_api_key() -> None:
        if is_public(request.endpoint):
            return
        authorization = request.authorization
        if authorization is None or authorization.type != "bearer" or not authorization.token:
            raise APIKeyMissing()
        given = authorization.token.encode()
        # Every key is compared, in constant time: neither timing nor order tells which.
        if not any([hmac.compare_digest(given, key) for key in keys]):
            raise APIKeyInvalid()
