"""Optional API keys: with ``API_KEYS`` set, every route but the health probes and the
page's own files answers only requests that carry ``Authorization: Bearer <key>`` with one
of the keys (RFC 6750's header; Werkzeug parses it). ``MONITORING_API_KEYS`` are keys for
the read-only operator routes alone (``/metrics``, ``/monitoring``), for a scraper or a
dashboard; set alone, they close those two routes and leave the rest open. No key: 401
with a ``WWW-Authenticate`` challenge; a monitoring key elsewhere: 403
(``insufficient_scope``); both in the error shape of the URL (TF Serving's under /v1/, the
Open Inference Protocol's under /v2).

With no keys set, nothing is registered: a request pays nothing for this module.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

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
# What MONITORING_API_KEYS open: reading how the server and each version do.
MONITORING_ENDPOINTS = frozenset({"metrics.prometheus_metrics", "feedback.monitoring"})
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


class APIKeyOutOfScope(APIError):
    status = 403
    code = "api_key_out_of_scope"
    message = "This API key may read /metrics and /monitoring only."
    headers = (("WWW-Authenticate", f'{REALM}, error="insufficient_scope"'),)


@dataclass(frozen=True)
class Keys:
    """The app's keys, encoded: ``api`` open every keyed route, ``monitoring`` the
    monitoring routes alone."""

    api: tuple[bytes, ...]
    monitoring: tuple[bytes, ...]

    @classmethod
    def of(cls, app: Flask) -> Keys:
        config = app.config
        return cls(
            tuple(key.encode() for key in config["API_KEYS"]),
            tuple(key.encode() for key in config["MONITORING_API_KEYS"]),
        )

    def required(self, endpoint: str | None) -> bool:
        """Whether a request to ``endpoint`` needs a key (an unknown URL gets its 404)."""
        if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
            return False
        return bool(self.api or (self.monitoring and endpoint in MONITORING_ENDPOINTS))

    def check(self, endpoint: str, given: bytes) -> None:
        """Raise unless ``given`` opens ``endpoint``. Every key is compared, in constant
        time: neither timing nor order tells which one matched."""
        api = any([hmac.compare_digest(given, key) for key in self.api])
        monitoring = any([hmac.compare_digest(given, key) for key in self.monitoring])
        if api or (monitoring and endpoint in MONITORING_ENDPOINTS):
            return
        raise APIKeyOutOfScope() if monitoring else APIKeyInvalid()


def init_app(app: Flask) -> None:
    """Check the key of every request to a keyed route, when any key is set."""
    keys = Keys.of(app)
    if not (keys.api or keys.monitoring):
        return

    @app.before_request
    def require_api_key() -> None:
        endpoint = request.endpoint
        # A browser's CORS preflight carries no key, by design; its answer holds no data.
        if request.method == "OPTIONS" or not keys.required(endpoint):
            return
        authorization = request.authorization
        if authorization is None or authorization.type != "bearer" or not authorization.token:
            raise APIKeyMissing()
        keys.check(endpoint, authorization.token.encode())  # type: ignore[arg-type]
