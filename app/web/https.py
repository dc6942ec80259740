"""``FORCE_HTTPS=1``: plain HTTP is not served, for a server whose every request comes
through a proxy that ends TLS (Heroku's router, which answers ``http://`` too and says
which in ``X-Forwarded-Proto``; Gunicorn trusts it from ``FORWARDED_ALLOW_IPS``).

A GET or HEAD over plain HTTP (a person typing the address, a link) is sent to the same
URL on ``https://`` (301); any other request is a 403 ``https_required``, not a redirect:
its body and its API key have already crossed the network in clear, and the caller must
learn to use the ``https://`` address rather than have its client resend them. Every
HTTPS answer carries ``Strict-Transport-Security`` (a year), so a browser that has been
here once goes straight to HTTPS. Off (the default), nothing is registered and requests
pay nothing.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from app.web.errors import APIError

HSTS = "max-age=31536000"


class HTTPSRequired(APIError):
    status = 403
    code = "https_required"
    message = "This server takes requests over HTTPS only: send it to the https:// address."


def init_app(app: Flask) -> None:
    """Refuse or redirect plain HTTP and send HSTS, when ``FORCE_HTTPS`` is set."""
    if not app.config["FORCE_HTTPS"]:
        return

    @app.before_request
    def require_https() -> Response | None:
        if request.is_secure:
            return None
        if request.method in ("GET", "HEAD"):  # JSON, as every answer (not Werkzeug's HTML)
            location = "https://" + request.url.split("://", 1)[1]
            moved = jsonify(location=location)
            moved.status_code, moved.headers["Location"] = 301, location
            return moved
        raise HTTPSRequired()

    @app.after_request
    def strict_transport_security(response: Response) -> Response:
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = HSTS
        return response
