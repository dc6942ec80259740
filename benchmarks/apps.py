"""The baselines `make bench` compares the service against, served by the same Gunicorn
config: ``gunicorn --config gunicorn.conf.py "benchmarks.apps:noop_app()"``."""

from __future__ import annotations

from flask import Flask, request

from app import create_app


def noop_app() -> Flask:
    """The HTTP stack's ceiling: parse the JSON, return a constant; no logging, no hooks."""
    app = Flask(__name__)

    @app.post("/classify")
    def classify() -> dict:
        request.get_json()
        return {"label": "positive", "score": 1.0}

    return app


def tutorial_app() -> Flask:
    """The pattern most tutorials show: the same app, but ``model.predict`` per request
    (about 33 ms a call on TensorFlow, whatever the batch size)."""
    app = create_app()
    predictor = app.extensions["models"].registry.stable
    model = predictor.bundle.model
    predictor._infer = lambda ids: model.predict(ids, verbose=0)
    return app
