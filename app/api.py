"""The classification API: ``POST /classify``, ``GET /health``.

A request reads top to bottom: parse JSON → validate (schemas) → predict (predictor,
which preprocesses and runs the model) → a plain dict that Flask serialises.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import time
from typing import Any

from flask import Blueprint, Flask, current_app, g, request
from marshmallow import ValidationError

from app.errors import ModelUnavailable, ValidationFailed
from app.predictor import ModelBundle, ModelBundleError, Predictor
from app.schemas import ClassifyRequestSchema

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Create this app's predictor and request schema; load the model unless told not to."""
    predictor = Predictor(
        app.config["MODEL_DIR"],
        backend=app.config["KERAS_BACKEND"],
        inference_threads=app.config["INFERENCE_THREADS"],
    )
    app.extensions["predictor"] = predictor
    app.extensions["classify_schema"] = ClassifyRequestSchema(
        max_batch_size=app.config["MAX_BATCH_SIZE"],
        max_text_chars=app.config["MAX_TEXT_CHARS"],
    )
    if app.config["LOAD_MODEL"]:
        try:
            predictor.load()
        except ModelBundleError as error:
            # One clear line; the worker then fails to boot and Gunicorn stops with
            # exit code 3 instead of respawning workers that cannot serve.
            log.critical("model failed to load: %s", error)
            raise
        bundle = predictor.bundle
        assert bundle is not None
        info = app.extensions["metrics"].model_info
        info.labels(bundle.name, bundle.version, predictor.backend).set(1)
    app.register_blueprint(bp)


def ready_predictor() -> tuple[Predictor, ModelBundle]:
    """This worker's predictor and its loaded bundle, or ``503 model_unavailable``."""
    predictor: Predictor = current_app.extensions["predictor"]
    if predictor.bundle is None:
        raise ModelUnavailable()
    return predictor, predictor.bundle


def validated(schema_key: str) -> dict[str, Any]:
    """The JSON body checked against one of the app's request schemas, or a 400."""
    payload = request.get_json()
    try:
        return current_app.extensions[schema_key].load(payload)
    except ValidationError as error:
        raise ValidationFailed(details=error.normalized_messages()) from None


def classify_texts(texts: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Predictions for ``texts`` in input order, and the model's name and version."""
    predictor, bundle = ready_predictor()
    started = time.perf_counter()
    probabilities = predictor.predict_proba(texts)
    elapsed = time.perf_counter() - started
    classes = bundle.classes
    predictions = []
    labels, tops = [], []
    for row in probabilities.tolist():  # plain floats: a few rows, no NumPy call per row
        top = max(row)
        label = classes[row.index(top)]
        predictions.append(
            {"label": label, "score": top, "scores": dict(zip(classes, row, strict=True))}
        )
        labels.append(label)
        tops.append(top)
    g.labels = labels
    current_app.extensions["metrics"].observe_inference(elapsed, labels, tops)
    return predictions, bundle.reference


@bp.post("/classify")
def classify() -> dict[str, Any]:
    data = validated("classify_schema")
    if "review" in data:
        predictions, model = classify_texts([data["review"]])
        return {**predictions[0], "model": model}
    predictions, model = classify_texts(data["reviews"])
    return {"predictions": predictions, "model": model}


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process serves HTTP. Never touches the model."""
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> dict[str, Any]:
    """Readiness: this worker's model is loaded and warmed up, else 503."""
    _, bundle = ready_predictor()
    return {"status": "ready", "model": bundle.reference}


@bp.get("/model")
def model_info() -> dict[str, Any]:
    """What is being served: identity, classes, limits, training metrics, libraries."""
    predictor, bundle = ready_predictor()
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
