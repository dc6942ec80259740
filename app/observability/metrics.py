"""Prometheus metrics, correct under several Gunicorn workers.

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by gunicorn.conf.py before any
worker starts: every worker writes its samples to files there and ``GET /metrics``
merges them, whichever worker answers. Without it (tests, ``python app.py``) the app's
own registry is exposed. No Flask here: ``app.web.metrics`` counts requests and serves
``GET /metrics``; metrics are created per app and kept in ``app.extensions``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPMethod
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Request latency: from well under a millisecond (one review) to the router's 30 s limit.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30)
INFERENCE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Top-class probability: with 3 classes it is at least 1/3. A shift of this distribution
# over time is a cheap drift signal (inputs unlike the training data).
CONFIDENCE_BUCKETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# Gunicorn accepts any upper-case token as a method: others share one series, so that
# invented methods cannot blow up the cardinality (as "unmatched" does for paths).
HTTP_METHODS = frozenset(HTTPMethod.__members__)


@dataclass
class ServiceMetrics:
    """The service's metrics, bound to one registry.

    Counts come from the histograms' ``_count`` series, as in OpenTelemetry's HTTP
    metrics: requests by route, method and status from the request-duration histogram,
    predictions by label from the confidence histogram. Each sample written costs a
    lock and a write to a shared file under Gunicorn, several times a request.
    """

    registry: CollectorRegistry
    request_latency: Histogram
    inference_latency: Histogram
    batch_size: Histogram
    confidence: Histogram
    model_info: Gauge
    _children: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict, repr=False)

    def child(self, metric: Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: ``labels()`` checks its arguments and
        takes a lock on every call, and this runs several times per request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    @classmethod
    def create(cls) -> ServiceMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            request_latency=Histogram(
                "sentiment_http_request_duration_seconds",
                "Time spent in the app per request, by route template, method and status.",
                ["route", "method", "status"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            inference_latency=Histogram(
                "sentiment_inference_duration_seconds",
                "Preprocessing and model inference time per batch.",
                buckets=INFERENCE_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "sentiment_batch_size",
                "Texts per inference call.",
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            confidence=Histogram(
                "sentiment_prediction_confidence",
                "Probability of the predicted label, by label (a drift signal).",
                ["label"],
                buckets=CONFIDENCE_BUCKETS,
                registry=registry,
            ),
            model_info=Gauge(
                "sentiment_model_info",
                "The model this server runs (value 1), one series per live model.",
                ["name", "version", "backend"],
                multiprocess_mode="livemax",
                registry=registry,
            ),
        )

    def observe_inference(
        self, seconds: float, labels: Sequence[str], top: Sequence[float]
    ) -> None:
        """Record one inference call: its time, batch size, labels and confidences."""
        self.inference_latency.observe(seconds)
        self.batch_size.observe(len(labels))
        for label, probability in zip(labels, top, strict=True):
            self.child(self.confidence, label).observe(probability)

    def exposition(self) -> bytes:
        """The text format: merged across workers under Gunicorn, else this app's."""
        if os.environ.get(MULTIPROC_DIR_ENV):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
