"""The sentiment model server: ``create_app()`` wires configuration, logging, errors and
routes. Gunicorn loads it in each worker (``app:create_app()``), after fork.

The layout (``ARCHITECTURE.md``): ``app.serving`` is the model side (no Flask),
``app.web`` the HTTP side, ``app.observability`` metrics and the log format,
``app.offline`` file scoring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app: defaults from ``Config``, then ``test_config`` overrides."""
    # Imported here, not above: gunicorn.conf.py imports app.observability.logformat in
    # the master, which must not pay for Flask, the schemas or NumPy that only workers use.
    from flask import Flask

    from app.config import Config
    from app.web import (
        api,
        auth,
        compression,
        cors,
        docs,
        errors,
        explain,
        feedback,
        https,
        json_io,
        metrics,
        models,
        open_inference,
        openapi,
        page,
        request_log,
        tfserving,
    )

    app = Flask(__name__)
    # A doubled slash is a URL no route serves (an error in the API's shape, under /v1/ TF
    # Serving's 400), not Werkzeug's 308 redirect with an HTML body that clients follow.
    app.url_map.merge_slashes = False
    app.config.from_object(Config)
    if test_config:
        app.config.from_mapping(test_config)
    request_log.init_app(app)
    json_io.init_app(app)
    errors.init_app(app)
    https.init_app(app)
    auth.init_app(app)
    cors.init_app(app)
    metrics.init_app(app)
    models.init_app(app)
    api.init_app(app)
    feedback.init_app(app)
    app.register_blueprint(explain.bp)
    app.register_blueprint(tfserving.bp)
    app.register_blueprint(open_inference.bp)
    openapi.init_app(app)
    app.register_blueprint(docs.bp)
    app.register_blueprint(page.bp)
    compression.init_app(app)
    return app
