"""The OpenAPI document (``GET /openapi.json``); ``app.web.docs`` shows it (``GET /docs``).

The document is generated from the marshmallow schemas (apispec's MarshmallowPlugin) and
the operations described below, keyed by Flask rule. It is built once per app, on first
use, when every blueprint is registered, and it describes the routes the app has: a route
without a description here is missing from the document, which tests/test_openapi.py
catches. Limits come from the app's config, so the document states the ones it enforces.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app

from app.web import schemas
from app.web.schemas import EXAMPLE_REVIEW, TF_INPUT_NAME

bp = Blueprint("openapi", __name__)

SPEC_KEY = "openapi_spec"
API_VERSION = "1.0.0"
JSON = "application/json"
# Components: name in the document → schema. Request schemas first; every other one
# describes a response, whose properties are all always present.
REQUEST_SCHEMAS = {
    "ClassifyRequest": schemas.ClassifyRequestSchema,
    "ExplainRequest": schemas.ExplainRequestSchema,
    "TFPredictRequest": schemas.PredictRequestSchema,
}
RESPONSE_SCHEMAS = {
    "ClassifyResponse": schemas.ClassifyResponseSchema,
    "ClassifyBatchResponse": schemas.ClassifyBatchResponseSchema,
    "ExplainResponse": schemas.ExplainResponseSchema,
    "Error": schemas.ErrorSchema,
    "Health": schemas.HealthSchema,
    "Ready": schemas.ReadySchema,
    "ModelInfo": schemas.ModelInfoSchema,
    "TFModelStatus": schemas.TFModelStatusSchema,
    "TFModelMetadata": schemas.TFModelMetadataSchema,
    "TFPredictRowResponse": schemas.TFPredictRowResponseSchema,
    "TFPredictColumnResponse": schemas.TFPredictColumnResponseSchema,
    "TFError": schemas.TFErrorSchema,
}
BLANK_ERROR = {
    "error": {
        "code": "validation_error",
        "message": "The request body does not match the expected schema.",
        "details": {"review": ["Review text must not be empty or only whitespace."]},
    }
}
OTHER_REVIEW = "Two hours on the tarmac and no food. Never again."
# Flask rule → OpenAPI path: "<int:version>" → "{version}".
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def example(value: Any, summary: str) -> dict[str, Any]:
    return {"summary": summary, "value": value}


def json_response(
    description: str, schema: dict[str, Any], examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = examples
    return {"description": description, "content": {JSON: content}}


def error(description: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response with the service's standard error body."""
    return json_response(description, ref("Error"), examples)


def tf_error(description: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response with TF Serving's error body, as on every ``/v1/`` URL."""
    return json_response(description, ref("TFError"), examples)


def text_response(description: str, media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _probabilities(*rows: list[float]) -> list[list[float]]:
    return [list(row) for row in rows]


def classify_operations() -> dict[str, dict[str, Any]]:
    """``/classify`` and the service's own GET routes."""
    single = {
        "label": "positive",
        "score": 0.998,
        "scores": {"negative": 0.001, "neutral": 0.001, "positive": 0.998},
        "model": {"name": "sentiment", "version": "1"},
    }
    batch = {
        "predictions": [
            {k: v for k, v in single.items() if k != "model"},
            {
                "label": "negative",
                "score": 0.997,
                "scores": {"negative": 0.997, "neutral": 0.002, "positive": 0.001},
            },
        ],
        "model": {"name": "sentiment", "version": "1"},
    }
    return {
        "/classify": {
            "post": {
                "tags": ["classify"],
                "summary": "Classify one review or a batch of reviews.",
                "description": "Send exactly one of `review` or `reviews`.",
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": ref("ClassifyRequest"),
                            "examples": {
                                "single": example({"review": EXAMPLE_REVIEW}, "One review."),
                                "batch": example(
                                    {"reviews": [EXAMPLE_REVIEW, OTHER_REVIEW]},
                                    "A batch, answered in input order.",
                                ),
                                "blank": example({"review": "   "}, "A blank review: 400."),
                            },
                        }
                    },
                },
                "responses": {
                    "200": json_response(
                        "The most probable class and every class's probability.",
                        {"oneOf": [ref("ClassifyResponse"), ref("ClassifyBatchResponse")]},
                        {
                            "single": example(single, "For `review`."),
                            "batch": example(batch, "For `reviews`."),
                        },
                    ),
                    "400": error(
                        "Invalid JSON, or a body that does not match the schema.",
                        {"blank": example(BLANK_ERROR, "A blank review.")},
                    ),
                    "413": error("The body is larger than MAX_CONTENT_LENGTH bytes."),
                    "415": error("The body is not sent as `application/json`."),
                },
            }
        },
        "/explain": explain_operation(),
        "/health": {
            "get": {
                "tags": ["operations"],
                "summary": "Liveness: the process answers HTTP (never touches the model).",
                "responses": {"200": json_response("Alive.", ref("Health"))},
            }
        },
        "/ready": {
            "get": {
                "tags": ["operations"],
                "summary": "Readiness: this worker's model is loaded and warmed up.",
                "responses": {"200": json_response("Ready.", ref("Ready"))},
            }
        },
        "/model": {
            "get": {
                "tags": ["operations"],
                "summary": "What is served: identity, classes, limits, metrics, libraries.",
                "responses": {
                    "200": json_response("The served model.", ref("ModelInfo")),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["operations"],
                "summary": "Prometheus metrics, in the text exposition format (0.0.4).",
                "responses": {
                    "200": text_response("The metrics.", "text/plain", {"type": "string"})
                },
            }
        },
        "/": {
            "get": {
                "tags": ["web"],
                "summary": "The web page: try the classifier in a browser.",
                "responses": {
                    "200": text_response("An HTML page.", "text/html", {"type": "string"})
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["documentation"],
                "summary": "This document.",
                "responses": {"200": json_response("OpenAPI 3.0.", {"type": "object"})},
            }
        },
        "/docs": {
            "get": {
                "tags": ["documentation"],
                "summary": "This document in Swagger UI: read it, and try every operation.",
                "responses": {
                    "200": text_response("An HTML page.", "text/html", {"type": "string"})
                },
            }
        },
    }


def explain_operation() -> dict[str, Any]:
    """``POST /explain``: each token's contribution to each class (occlusion)."""
    classes = ("negative", "neutral", "positive")
    tokens = [
        ("great", (-0.05, -0.21, 0.26)),
        ("job", (0.01, -0.02, 0.01)),
        ("!", (0, -0.03, 0.03)),
    ]
    answer = {
        "label": "positive",
        "score": 0.96,
        "scores": {"negative": 0.01, "neutral": 0.03, "positive": 0.96},
        "tokens": [
            {"token": t, "contributions": dict(zip(classes, c, strict=True))} for t, c in tokens
        ],
        "unseen_tokens": 0,
        "method": "occlusion",
        "model": {"name": "sentiment", "version": "1"},
    }
    pin = "Pin a version or a label, as on `POST /classify` (not both); else routing picks."
    return {
        "post": {
            "tags": ["classify"],
            "summary": "Why: each token's contribution to each class's probability.",
            "description": (
                "The tokens as the model sees them (standardised), each with, per class, the "
                "probability with the token minus without it (the token and the n-grams it is "
                "part of left out: occlusion). Positive: it pushed toward that class."
            ),
            "parameters": [
                {"name": n, "in": "query", "description": pin, "schema": {"type": t}, "example": e}
                for n, t, e in (("version", "integer", 1), ("label", "string", "stable"))
            ],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": ref("ExplainRequest"),
                        "examples": {
                            "explain": example({"review": "Great job!"}, "One review."),
                            "blank_review": example({"review": " "}, "A blank review: 400."),
                        },
                    }
                },
            },
            "responses": {
                "200": json_response(
                    "The answer and each token's contributions, in reading order.",
                    ref("ExplainResponse"),
                    {"explain": example(answer, "Abridged.")},
                ),
                "400": error(
                    "Invalid JSON, or a body that does not match the schema.",
                    {"blank_review": example(BLANK_ERROR, "A blank review.")},
                ),
                "404": error("No such version or label is served."),
                "413": error("The body is larger than MAX_CONTENT_LENGTH bytes."),
                "415": error("The body is not sent as `application/json`."),
            },
        }
    }


def tfserving_operations(name: str, version: str) -> dict[str, dict[str, Any]]:
    """``/v1/models/...``: TF Serving's REST API, each plain, with ``/versions/<v>`` and
    with ``/labels/<label>``."""
    status = {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    not_found = tf_error(
        "No such model (or version) is served.",
        {
            "unknown_model": example(
                {"error": "Servable not found for request: Latest(half)"}, "Another model name."
            )
        },
    )
    texts = [EXAMPLE_REVIEW, OTHER_REVIEW]
    rows = _probabilities([0.001, 0.001, 0.998], [0.997, 0.002, 0.001])
    predict = {
        "tags": ["tensorflow-serving"],
        "summary": "Predict: class probabilities per review (TF Serving's Predict API).",
        "description": (
            "Row format (`instances`) answers `predictions`; column format (`inputs`) answers "
            "`outputs`. Each row holds the probabilities in the model's class order "
            "(`GET /model`: `classes`). Same limits as `POST /classify`."
        ),
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": ref("TFPredictRequest"),
                    "examples": {
                        "row": example({"instances": texts}, "Row format."),
                        "column": example(
                            {"signature_name": "serving_default", "inputs": {TF_INPUT_NAME: texts}},
                            "Column format, the input named.",
                        ),
                        "column_bare": example(
                            {"inputs": texts}, "Column format, the one input unnamed."
                        ),
                        "empty": example({"instances": []}, "No instances: 400."),
                    },
                }
            },
        },
        "responses": {
            "200": json_response(
                "Probabilities, one row per review, in input order.",
                {"oneOf": [ref("TFPredictRowResponse"), ref("TFPredictColumnResponse")]},
                {
                    "row": example({"predictions": rows}, "For `instances`."),
                    "column": example({"outputs": rows}, "For `inputs`."),
                    "column_bare": example({"outputs": rows}, "For bare `inputs`."),
                },
            ),
            "400": tf_error(
                "Invalid JSON, or a body that does not match the schema.",
                {
                    "empty": example(
                        {
                            "error": "The request body does not match the expected schema. "
                            "instances: Send between 1 and 64 reviews (got 0)."
                        },
                        "No instances.",
                    )
                },
            ),
            "404": not_found,
            "413": tf_error("The body is larger than MAX_CONTENT_LENGTH bytes."),
            "415": tf_error("The body is not sent as `application/json`."),
        },
    }
    model_status = {
        "tags": ["tensorflow-serving"],
        "summary": "Model status (TF Serving's GetModelStatus).",
        "description": "A worker serves only loaded versions: the state is `AVAILABLE`.",
        "responses": {
            "200": json_response(
                "The served version's state.",
                ref("TFModelStatus"),
                {"available": example(status, "Loaded and serving.")},
            ),
            "404": not_found,
        },
    }
    metadata = {
        "tags": ["tensorflow-serving"],
        "summary": "Model metadata: the signature (TF Serving's GetModelMetadata).",
        "responses": {
            "200": json_response("The `serving_default` signature.", ref("TFModelMetadata")),
            "404": not_found,
        },
    }
    operations = {}
    for versions in ("", "/versions/<int:version>", "/labels/<model:label>"):
        base = f"/v1/models/<model:name>{versions}"
        operations[base] = {"get": model_status}
        operations[f"{base}/metadata"] = {"get": metadata}
        operations[f"{base}:predict"] = {"post": predict}
    return operations


def path_parameters(
    rule: str, name: str | None, version: str | None, labels: list[str] | None = None
) -> list[dict[str, Any]]:
    """The path parameters of a ``/v1/models`` rule; only the served values are valid."""
    parameters = []
    if "<model:name>" in rule:
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if name is not None:
            schema["enum"] = [name]
        parameters.append(
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "The served model's name (`GET /model`); others are 404.",
                "schema": schema,
                **({"example": name} if name is not None else {}),
            }
        )
    if "<int:version>" in rule:
        schema = {"type": "integer", "minimum": 0}
        if version is not None and version.isdigit():
            schema["enum"] = [int(version)]
        parameters.append(
            {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "The served model's version; others are 404.",
                "schema": schema,
                **({"example": int(version)} if version and version.isdigit() else {}),
            }
        )
    if "<model:label>" in rule:
        parameters.append(
            {
                "name": "label",
                "in": "path",
                "required": True,
                "description": "A version label (`GET /model` → `labels`); others are 400.",
                "schema": {"type": "string", "enum": labels or ["stable"]},
                "example": "stable",
            }
        )
    return parameters


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/v1/models/<model:name>/versions/<int:version>``
    → ``/v1/models/{name}/versions/{version}``."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes, with ``app``'s limits."""
    registry = app.extensions["models"].registry
    bundle = registry.stable.bundle
    name, version = bundle.name, bundle.version
    spec = APISpec(
        title="Sentiment model server",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": (
                "Sentiment of short English texts (airline customer reviews): negative, "
                "neutral or positive. `POST /classify` is the service's own API; "
                "`/v1/models/...` follows TensorFlow Serving's REST API for its clients."
            )
        },
    )
    for component, schema in {**REQUEST_SCHEMAS, **RESPONSE_SCHEMAS}.items():
        spec.components.schema(component, schema=schema)
    operations = {
        **classify_operations(),
        **tfserving_operations(name, version),
    }
    rules = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    for rule in sorted(rules & set(operations), key=lambda r: (not r.startswith("/v1"), r)):
        spec.path(
            path=openapi_path(rule),
            operations=operations[rule],
            parameters=path_parameters(rule, name, version, sorted(registry.labels)),
        )
    document = spec.to_dict()
    _state_limits(document, app.config["MAX_BATCH_SIZE"], app.config["MAX_TEXT_CHARS"])
    for component in RESPONSE_SCHEMAS:
        properties = document["components"]["schemas"][component].get("properties", {})
        document["components"]["schemas"][component]["required"] = list(properties)
    # Exactly one of the alternatives, as the request schemas check.
    classify = document["components"]["schemas"]["ClassifyRequest"]
    classify["oneOf"] = [{"required": ["review"]}, {"required": ["reviews"]}]
    predict = document["components"]["schemas"]["TFPredictRequest"]
    predict["oneOf"] = [{"required": ["instances"]}, {"required": ["inputs"]}]
    return document


def _state_limits(node: Any, max_batch_size: int, max_text_chars: int) -> None:
    """Replace the ``x-texts`` marks the schemas carry by this app's limits."""
    text = {"type": "string", "minLength": 1, "maxLength": max_text_chars}
    if isinstance(node, dict):
        kind = node.pop("x-texts", None)
        if kind == "one":
            node.update(text)
        elif kind == "batch":
            node.update({"minItems": 1, "maxItems": max_batch_size, "items": dict(text)})
        for value in node.values():
            _state_limits(value, max_batch_size, max_text_chars)
    elif isinstance(node, list):
        for value in node:
            _state_limits(value, max_batch_size, max_text_chars)


def app_spec() -> dict[str, Any]:
    """This app's document, built on first use."""
    if SPEC_KEY not in current_app.extensions:
        current_app.extensions[SPEC_KEY] = build_spec(current_app._get_current_object())  # type: ignore[attr-defined]
    return current_app.extensions[SPEC_KEY]


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return app_spec()
