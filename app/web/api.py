"""The classification API: ``POST /classify``, ``GET /health``.

A request reads top to bottom: parse JSON → validate (schemas) → predict (predictor,
which preprocesses and runs the model) → a plain dict that Flask serialises.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from typing import Any

from flask import Blueprint, Flask, current_app, request
from marshmallow import ValidationError

from app.serving.predictor import Classification, ModelBundleError, Predictor
from app.web.errors import ValidationFailed
from app.web.request_log import current_record
from app.web.schemas import KeyedRequest, RequestSchemas, request_schemas

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

REQUEST_SCHEMAS = "request_schemas"


def init_app(app: Flask) -> None:
    """Load this worker's model and create the request schema.

    A worker serves only once its model is loaded: a model that fails to load stops the
    worker, so no request ever meets a model that is not ready.
    """
    try:
        predictor = Predictor.load(
            app.config["MODEL_DIR"],
            backend=app.config["KERAS_BACKEND"],
            inference_threads=app.config["INFERENCE_THREADS"],
        )
    except ModelBundleError as error:
        # One clear line; the worker then fails to boot and Gunicorn stops with
        # exit code 3 instead of respawning workers that cannot serve.
        log.critical("model failed to load: %s", error)
        raise
    app.extensions["predictor"] = predictor
    app.extensions[REQUEST_SCHEMAS] = request_schemas(
        max_batch_size=app.config["MAX_BATCH_SIZE"],
        max_text_chars=app.config["MAX_TEXT_CHARS"],
    )
    bundle = predictor.bundle
    app.extensions["metrics"].model_info.labels(bundle.name, bundle.version, predictor.backend).set(
        1
    )
    app.register_blueprint(bp)


def served_predictor() -> Predictor:
    """This worker's (loaded) model."""
    return current_app.extensions["predictor"]


def app_request_schemas() -> RequestSchemas:
    """This app's request schemas, with its limits."""
    return current_app.extensions[REQUEST_SCHEMAS]


def validated(body: KeyedRequest, payload: Any) -> tuple[str, dict[str, Any]]:
    """``payload`` (the parsed JSON body) checked against ``body``: the key that told its
    shape and the loaded data, or a 400."""
    try:
        return body.load(payload)
    except ValidationError as error:
        raise ValidationFailed(details=error.normalized_messages()) from None


def run_model(texts: list[str]) -> Classification:
    """Classify ``texts`` and hand the result to the request log and the metrics."""
    result = served_predictor().classify(texts)
    current_record().classification = result
    current_app.extensions["metrics"].observe_inference(
        result.seconds, result.labels, result.scores
    )
    return result


def prediction_bodies(result: Classification) -> list[dict[str, Any]]:
    """``/classify``'s JSON for each text: label, score and every class's probability."""
    classes = result.classes
    return [
        {"label": label, "score": score, "scores": dict(zip(classes, row, strict=True))}
        for label, score, row in zip(
            result.labels, result.scores, result.probabilities, strict=True
        )
    ]


@bp.post("/classify")
def classify() -> dict[str, Any]:
    key, data = validated(app_request_schemas().classify, request.get_json())
    if key == "review":
        result = run_model([data["review"]])
        return {**prediction_bodies(result)[0], "model": result.reference}
    result = run_model(data["reviews"])
    return {"predictions": prediction_bodies(result), "model": result.reference}


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process serves HTTP. Never touches the model."""
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> dict[str, Any]:
    """Readiness: a worker answers only once its model is loaded and warmed up."""
    return {"status": "ready", "model": served_predictor().bundle.reference}


@bp.get("/model")
def model_info() -> dict[str, Any]:
    """What is being served: identity, classes, limits, training metrics, libraries."""
    predictor = served_predictor()
    bundle = predictor.bundle
    config = current_app.config
    return {
        "name": bundle.name,
        "version": bundle.version,
        "backend": predictor.backend,
        "classes": bundle.classes,
        "limits": {
            "max_batch_size": config["MAX_BATCH_SIZE"],
            "max_text_chars": config["MAX_TEXT_CHARS"],
            "max_content_length": config["MAX_CONTENT_LENGTH"],
        },
        "created_at": bundle.metadata.get("created_at"),
        "metrics": bundle.metadata.get("metrics", {}),
        "libraries": serving_libraries(predictor.backend),
    }


def serving_libraries(backend: str) -> dict[str, str]:
    """Versions of the libraries on the inference path, and Python's."""
    names = ["keras", backend if backend != "tensorflow" else "tensorflow-cpu", "numpy", "flask"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # e.g. the full tensorflow package
            versions[name] = importlib.metadata.version(name.removesuffix("-cpu"))
    return versions
