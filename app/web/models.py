"""The model versions as this app serves them: loaded once per worker in ``init_app``,
chosen per request (a pinned version or label, else the ``ROUTING`` policy), run, and
the result handed to the request log and the metrics.

The model side (``app.serving``) does the work; this module only connects it to Flask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from app.observability.metrics import ServiceMetrics, critical_once
from app.serving.predictor import Classification, ModelBundleError, Predictor
from app.serving.registry import ModelRegistry, UnknownVersion, VersionSelection
from app.serving.routing import Route, Router, ShadowScorer
from app.web.errors import ModelNotFound
from app.web.long_requests import QUICK_BODY_BYTES, may_run_long, pins, routed_path
from app.web.request_log import current_record

if TYPE_CHECKING:
    from app.feedback.recorder import PredictionRecorder

log = logging.getLogger(__name__)

ROUTING_KEY_HEADER = "X-Routing-Key"


@dataclass
class ServedModels:
    """This worker's registry of ready versions, its router and its shadow scorer."""

    registry: ModelRegistry
    router: Router
    shadow: ShadowScorer | None
    metrics: ServiceMetrics
    # Records every answer (``app.web.feedback`` sets it unless RECORD_PREDICTIONS=0).
    recorder: PredictionRecorder | None = None

    def choose(self, version: str | None, label: str | None, routing_key: str | None) -> Route:
        """The pinned version or label (404 if unknown; given together, the label must
        name that version), else the routing policy's choice."""
        try:
            pinned = self.registry.version(version) if version is not None else None
            labelled = self.registry.labelled(label) if label is not None else None
        except UnknownVersion as error:
            raise ModelNotFound(f"No {error} is served.") from None
        if pinned and labelled and pinned is not labelled:
            raise ModelNotFound(f"Label {label!r} names version {labelled.bundle.version}.")
        return self.route_to(pinned or labelled, routing_key)

    def route_to(self, chosen: Predictor | None, routing_key: str | None) -> Route:
        """``chosen`` when the request named a version, else the routing policy's choice."""
        return Route(chosen) if chosen else self.router.route(routing_key)

    def run(self, route: Route, texts: list[str]) -> Classification:
        """Classify ``texts``; hand the result to the request log, the metrics, the
        prediction recorder and the shadow (neither of which delays or fails this call)."""
        version = route.answer.bundle.version
        try:
            result = route.answer.classify(texts)
        except Exception:
            self.metrics.child(self.metrics.model_requests, version, "error").inc()
            raise
        record = current_record()
        record.classification = result
        self.metrics.observe_inference(version, result.seconds, result.labels, result.scores)
        if self.recorder is not None:
            self.recorder.submit(record.request_id, version, result.labels, result.scores)
        if route.shadow is not None and self.shadow is not None:
            self.shadow.submit(route.shadow, texts, result)
        return result


def init_app(app: Flask) -> None:
    """Load every configured version (the worker then serves only ready versions).

    A version that fails to load, or a label or policy that does not fit what loaded,
    is one CRITICAL line and a ``ModelBundleError`` marked ``already_logged``: the
    worker (``app.server.worker``) then exits with code 3, without a traceback, and
    Gunicorn stops instead of respawning workers that cannot serve.
    """
    config = app.config
    metrics: ServiceMetrics = app.extensions["metrics"]
    try:
        registry = ModelRegistry.load(
            VersionSelection.from_config(config),
            config["KERAS_BACKEND"],
            config["INFERENCE_THREADS"],
            (config["DYNAMIC_BATCH_MAX_SIZE"], config["DYNAMIC_BATCH_TIMEOUT_MS"] / 1000),
            config["INFERENCE_PRECISION"],
        )
        router = Router(
            registry,
            config["ROUTING"],
            config["CANARY_PERCENT"],
            config["SHADOW_PERCENT"],
            config["BANDIT_MIN_PERCENT"],
        )
    except ModelBundleError as error:
        critical_once(log, "model failed to load: %s", error)
        error.already_logged = True  # the worker exits 3 on it, without a traceback
        raise
    shadow = None
    if router.policy == "shadow":
        shadow = ShadowScorer(
            metrics.observe_shadow,
            lambda version: metrics.child(metrics.shadow_dropped, version).inc(),
        )
    app.extensions["models"] = ServedModels(registry, router, shadow, metrics)
    if any(predictor.transformer for predictor in registry.versions.values()):
        _transformers_to_threads(app, registry, router)
    for version, predictor in registry.versions.items():
        bundle = predictor.bundle
        metrics.child(
            metrics.model_info, bundle.name, version, predictor.backend, predictor.precision
        ).set(1)
        for label, share in bundle.metadata.get("training_label_mix", {}).items():
            metrics.child(metrics.training_label_share, version, label).set(share)
    for label, version in registry.labels.items():
        metrics.child(metrics.model_label, label, version).set(1)
    start_counters_at_zero(metrics, registry, router)
    metrics.worker_starts.inc()


def start_counters_at_zero(
    metrics: ServiceMetrics, registry: ModelRegistry, router: Router
) -> None:
    """Create the labelled counters that alerts divide, at 0: ``rate()`` never sees the
    first increment of a series that did not exist before it."""
    for version in registry.versions:
        for outcome in ("ok", "error"):
            metrics.child(metrics.model_requests, version, outcome)
        for correct in ("true", "false"):
            metrics.child(metrics.feedback, version, correct)
    for reason in ("queue_full", "database_error"):
        metrics.child(metrics.records_dropped, reason)
    for status, code in (("408", "request_timeout"), ("503", "server_busy")):
        metrics.child(metrics.worker_answers, status, code)
    if router.candidate is not None and router.policy == "shadow":
        candidate, stable = router.candidate.bundle.version, router.stable.bundle.version
        metrics.child(metrics.shadow_dropped, candidate)
        for agreement in ("agree", "disagree"):
            metrics.child(metrics.shadow_comparisons, stable, candidate, agreement)


def served_models() -> ServedModels:
    return current_app.extensions["models"]


def stable_predictor() -> Predictor:
    """The version that answers by default (the ``stable`` label)."""
    return served_models().registry.stable


# The paths whose answers a model version computes.
SCORING_PATHS = (b"/classify", b"/explain", b":predict", b"/infer")


def _transformers_to_threads(app: Flask, registry: ModelRegistry, router: Router) -> None:
    """Have the worker run on its threads every request a transformer may answer (see
    app/web/long_requests.py), besides explanations and bodies over 1 KiB: those that
    name a transformer, and those that name no version when the routing may choose one."""
    routed_to_transformer = any(predictor.transformer for predictor in router.answering())

    def answered_by_transformer(target: bytes) -> bool:
        named = False
        for kind, value in pins(target):
            named = True
            try:
                chosen = registry.version(value) if kind == "version" else registry.labelled(value)
            except UnknownVersion:  # a 404, at once
                continue
            if chosen.transformer:
                return True
        return not named and routed_to_transformer and routed_path(target).endswith(SCORING_PATHS)

    # Explanations (a model call per word left out) on the worker's long lane.
    may_run_long(app, ("/explain",), QUICK_BODY_BYTES, answered_by_transformer, own_lane=True)


def close(app: Any) -> None:
    """Stop the shadow scorer's thread after its call in progress (a worker that stops).
    ``app`` is whatever the worker served: a benchmark's other app has no models."""
    models = getattr(app, "extensions", {}).get("models")
    if models is not None and models.shadow is not None:
        models.shadow.close()
