"""Counting every request, and ``GET /metrics`` (the metrics themselves:
``app.observability.metrics``)."""

from __future__ import annotations

import gzip
import time

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.observability.metrics import HTTP_METHODS, MetricsUnavailable, ServiceMetrics
from app.web.errors import APIError
from app.web.long_requests import may_run_long
from app.web.request_log import current_record

bp = Blueprint("metrics", __name__)


class MetricsNotReadable(APIError):
    status = 503
    code = "metrics_unavailable"
    message = "The metrics cannot be read now; the server keeps serving. Retry later."


def init_app(app: Flask) -> None:
    """Create the app's metrics, count every request, and serve ``GET /metrics``."""
    metrics = ServiceMetrics.create()
    app.extensions["metrics"] = metrics

    @app.after_request
    def count_request(response: Response) -> Response:
        # The route template, not the path: unknown URLs must not create new series.
        route = request.url_rule.rule if request.url_rule else route_not_matched()
        method = request.method if request.method in HTTP_METHODS else "other"
        latency = metrics.child(metrics.request_latency, route, method, str(response.status_code))
        latency.observe(time.perf_counter() - current_record().started)
        return response

    app.register_blueprint(bp)
    # Merging every worker's sample files takes milliseconds: on a thread, so that a
    # scraper in a tight loop does not hold the loop (8 of them: /classify's p50 went from
    # 3 ms to 380 ms, an outside probe).
    may_run_long(app, ("/metrics",))


def route_not_matched() -> str:
    """The route a request with a method it does not take was sent to (a 405 on
    ``GET /classify`` is a client error of /classify's), else "unmatched"."""
    error = request.routing_exception
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        try:
            adapter = current_app.create_url_adapter(request)
            rule, _ = adapter.match(method=error.valid_methods[0], return_rule=True)
        except HTTPException:
            return "unmatched"
        return rule.rule
    return "unmatched"


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text format; gzipped where the client accepts it, as Prometheus does
    (and prometheus_client's own exporter answers): about a tenth of the bytes."""
    metrics: ServiceMetrics = current_app.extensions["metrics"]
    try:
        response = Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
    except MetricsUnavailable:  # logged where it was found, once
        raise MetricsNotReadable() from None
    response.vary.add("Accept-Encoding")
    if request.accept_encodings.quality("gzip") > 0:
        response.set_data(gzip.compress(response.get_data(), compresslevel=6, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
    return response
