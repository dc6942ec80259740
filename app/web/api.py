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

from app.serving.predictor import Classification, Predictor
from app.web.errors import ValidationFailed
from app.web.models import ROUTING_KEY_HEADER, served_models
from app.web.schemas import KeyedRequest, RequestSchemas, repeated_parameters, request_schemas

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

REQUEST_SCHEMAS = "request_schemas"


def init_app(app: Flask) -> None:
    """The request schemas, with this app's limits, and the routes (the models load in
    ``app.web.models``)."""
    app.extensions[REQUEST_SCHEMAS] = request_schemas(
        max_batch_size=app.config["MAX_BATCH_SIZE"],
        max_text_chars=app.config["MAX_TEXT_CHARS"],
    )
    app.register_blueprint(bp)


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


PIN_PARAMETERS = frozenset({"version", "label"})


def pinned() -> tuple[str | None, str | None]:
    """The ``?version=`` and ``?label=`` that pin the answering version. Any other query
    parameter, or either of these twice, is a 400: a misspelt ``?versoin=1`` was
    answered by the routed version, and the caller took that for version 1's answer."""
    args = request.args
    if args:
        wrong = {name: ["Unknown field."] for name in args if name not in PIN_PARAMETERS}
        wrong |= repeated_parameters(args, PIN_PARAMETERS)
        if wrong:
            raise ValidationFailed("The query parameters are not valid.", wrong)
    return args.get("version"), args.get("label")


def run_model(
    texts: list[str], version: str | None = None, label: str | None = None
) -> Classification:
    """Classify ``texts`` with the pinned version or label, else the routed one."""
    models = served_models()
    route = models.choose(version, label, request.headers.get(ROUTING_KEY_HEADER))
    return models.run(route, texts)


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
    version, label = pinned()
    key, data = validated(app_request_schemas().classify, request.get_json())
    if key == "review":
        result = run_model([data["review"]], version, label)
        return {**prediction_bodies(result)[0], "model": result.reference}
    result = run_model(data["reviews"], version, label)
    return {"predictions": prediction_bodies(result), "model": result.reference}


@bp.get("/health")
def health() -> dict[str, str]:
    """Liveness: the process serves HTTP. Never touches the model."""
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> dict[str, Any]:
    """Readiness: a worker answers only once every configured version has loaded and
    passed its load-time checks."""
    registry = served_models().registry
    return {
        "status": "ready",
        "model": registry.stable.bundle.reference,
        "versions": list(registry.versions),
    }


@bp.get("/model")
def model_info() -> dict[str, Any]:
    """What is being served: the default (stable) version at the top level, as before,
    then every loaded version with its labels, the routing policy, limits, libraries."""
    models = served_models()
    registry, router = models.registry, models.router
    stable = registry.stable
    config = current_app.config
    return {
        **version_info(stable),
        "backend": stable.backend,
        "limits": {
            "max_batch_size": config["MAX_BATCH_SIZE"],
            "max_text_chars": config["MAX_TEXT_CHARS"],
            "max_content_length": config["MAX_CONTENT_LENGTH"],
        },
        "libraries": serving_libraries(stable.backend),
        "versions": [
            {**version_info(predictor), "labels": registry.labels_of(version)}
            for version, predictor in registry.versions.items()
        ],
        "labels": registry.labels,
        "routing": {
            "policy": router.policy,
            "canary_percent": router.canary_percent,
            "shadow_percent": router.shadow_percent,
        },
    }


def version_info(predictor: Predictor) -> dict[str, Any]:
    bundle = predictor.bundle
    return {
        "name": bundle.name,
        "version": bundle.version,
        "classes": bundle.classes,
        "created_at": bundle.metadata.get("created_at"),
        "metrics": bundle.metadata.get("metrics", {}),
        "inference_precision": predictor.precision,
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
