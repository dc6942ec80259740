"""The OpenAPI document (``GET /openapi.json``); ``app.web.docs`` shows it (``GET /docs``).

The schemas, with every limit and rule the server enforces, come from the marshmallow
schemas (apispec's MarshmallowPlugin reads their validators); this module adds what only
it knows: the operations, keyed by Flask rule, their responses and examples. The document
is built once per app, on first use, when every blueprint is registered, and describes
the routes the app has: a route without an operation here is missing from the document,
which tests/test_openapi.py catches.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from marshmallow import EXCLUDE, fields

from app.feedback import quality
from app.serving.explain import METHOD, Explanation, explain
from app.serving.predictor import Predictor
from app.web import schemas
from app.web.api import REQUEST_SCHEMAS
from app.web.auth import MONITORING_ENDPOINTS, APIKeyMissing, APIKeyOutOfScope, Keys
from app.web.errors import APIError, body_for_path
from app.web.feedback import FEEDBACK_SCHEMA
from app.web.https import HTTPSRequired
from app.web.request_log import MODEL_VERSION_HEADER
from app.web.schemas import (
    EXAMPLE_REVIEW,
    OTHER_REVIEW,
    TF_INPUT_NAME,
    V2_EXTENSIONS,
    V2_INPUT_DATATYPE,
    V2_LABEL,
    V2_PROBABILITIES,
    V2_SERVER_NAME,
    OneOfShapes,
)

bp = Blueprint("openapi", __name__)

SPEC_KEY = "openapi_spec"
API_VERSION = "1.0.0"
JSON = "application/json"
INFO = {
    "description": (
        "Sentiment of short English texts (reviews, comments, tweets): negative, neutral or "
        "positive. `POST /classify` is the service's own API; `/v1/models/...` follows "
        "TensorFlow Serving's REST API for its clients (differences: README), and `/v2/...` "
        "the Open Inference Protocol (KServe V2) for MLServer's, KServe's and Triton's. "
        "Every request body may be compressed with gzip or deflate (`Content-Encoding`); "
        "MAX_CONTENT_LENGTH holds for what it inflates to."
    ),
    # The repository states no licence yet: say so rather than invent one.
    "license": {"name": "No licence granted (the repository has no LICENSE file)"},
    "contact": {"name": "sentiment-server maintainers"},
}
TAGS = [
    {"name": "classify", "description": "The service's own API."},
    {"name": "tensorflow-serving", "description": "TensorFlow Serving's REST API (`/v1/`)."},
    {
        "name": "open-inference",
        "description": "The Open Inference Protocol (KServe V2; MLServer, Triton) (`/v2/`).",
    },
    {"name": "operations", "description": "Liveness, readiness, the model, metrics."},
    {"name": "feedback", "description": "True labels for answers; how each version does."},
    {"name": "web", "description": "The page to try the model in a browser."},
    {"name": "documentation", "description": "This document."},
]
RESPONSE_SCHEMAS = {
    "ClassifyResponse": schemas.ClassifyResponseSchema,
    "ClassifyBatchResponse": schemas.ClassifyBatchResponseSchema,
    "Error": schemas.ErrorSchema,
    "Health": schemas.HealthSchema,
    "Ready": schemas.ReadySchema,
    "ModelInfo": schemas.ModelInfoSchema,
    "ExplainResponse": schemas.ExplainResponseSchema,
    "TFModelStatus": schemas.TFModelStatusSchema,
    "TFModelMetadata": schemas.TFModelMetadataSchema,
    "TFPredictRowResponse": schemas.TFPredictRowResponseSchema,
    "TFPredictColumnResponse": schemas.TFPredictColumnResponseSchema,
    "TFError": schemas.TFErrorSchema,
    "V2Error": schemas.V2ErrorSchema,
    "V2ServerMetadata": schemas.V2ServerMetadataSchema,
    "V2Live": schemas.V2LiveSchema,
    "V2Ready": schemas.V2ReadySchema,
    "V2ModelReady": schemas.V2ModelReadySchema,
    "V2ModelMetadata": schemas.V2ModelMetadataSchema,
    "V2InferenceResponse": schemas.V2InferenceResponseSchema,
    "FeedbackResponse": schemas.FeedbackResponseSchema,
    "FeedbackPage": schemas.FeedbackPageSchema,
    "Monitoring": schemas.MonitoringSchema,
}
# Flask rule → OpenAPI path: "<int64:version>" → "{version}".
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def one_of(*names: str) -> dict[str, Any]:
    return {"oneOf": [ref(name) for name in names]}


def example(value: Any, summary: str) -> dict[str, Any]:
    return {"summary": summary, "value": value}


def json_response(
    description: str, schema: dict[str, Any], examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if examples:
        content["examples"] = examples
    return {"description": description, "content": {JSON: content}}


STORE_UNAVAILABLE = (
    "The prediction store cannot be reached, or has not answered this worker's last request yet."
)
UNSUPPORTED_BODY = (
    "The body is not sent as `application/json`, or compressed otherwise than with gzip or "
    "deflate (`Content-Encoding`; the answer's `Accept-Encoding` names both)."
)


def naming_the_version(response: dict[str, Any]) -> dict[str, Any]:
    """A scoring answer, with the header that names the version that answered."""
    header = {
        "description": "The model version that answered (as chosen by the URL, `version`, "
        "`label` or `ROUTING`); the only place TF Serving's `:predict` answer names it. "
        "Absent when no model ran (an empty column).",
        "schema": {"type": "string", "example": "2"},
    }
    return {**response, "headers": {MODEL_VERSION_HEADER: header}}


def error(description: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response with the service's standard error body."""
    return json_response(description, ref("Error"), examples)


def tf_error(description: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response with TF Serving's error body, as on every ``/v1/`` URL."""
    return json_response(description, ref("TFError"), examples)


def text_response(description: str, media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def json_body(schema: dict[str, Any], examples: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": schema, "examples": examples}}}


# A GET without parameters meets no client error of its own; the range still says which
# body one would have, so that clients parse every error alike.
CLIENT_ERROR = error("A client error (none is expected for this request).")


def get(
    operation_id: str,
    tag: str,
    summary: str,
    ok: dict[str, Any],
    client_error: dict[str, Any] = CLIENT_ERROR,
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "tags": [tag],
            "summary": summary,
            "responses": {"200": ok, "4XX": client_error},
        }
    }


def with_response(
    operation: dict[str, Any], status: str, response: dict[str, Any]
) -> dict[str, Any]:
    """``operation`` (one method) with one more documented response."""
    for method in operation.values():
        method["responses"][status] = response
    return operation


# The significant digits the example answers keep: enough to compare, few to read.
EXAMPLE_DIGITS = 3
EXPLAIN_EXAMPLE = "Lovely crew but the seat was broken."
# A request id as the server makes one (a UUID version 7 in 32 hex digits).
EXAMPLE_REQUEST_ID = "019af2c4e8d27c1ab5f3d6e9a0b1c2d3"


def significant(value: float) -> float:
    """``value`` to ``EXAMPLE_DIGITS`` significant digits."""
    return float(f"{value:.{EXAMPLE_DIGITS}g}")


@dataclass(frozen=True)
class ExampleAnswers:
    """What the stable version answers to the document's example requests, to
    ``EXAMPLE_DIGITS`` significant digits: the examples show this server's own answers,
    which "Try it out" then gets (``tests/test_openapi.py`` compares them)."""

    name: str
    version: str
    classes: list[str]
    rows: list[list[float]]  # EXAMPLE_REVIEW's probabilities, then OTHER_REVIEW's
    explanation: Explanation

    @classmethod
    def of(cls, predictor: Predictor) -> ExampleAnswers:
        bundle = predictor.bundle
        rows = predictor.predict_proba([EXAMPLE_REVIEW, OTHER_REVIEW]).tolist()
        explanation = explain(predictor, EXPLAIN_EXAMPLE)
        return cls(bundle.name, bundle.version, bundle.classes, rows, explanation)

    @property
    def model(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}

    def rounded_rows(self) -> list[list[float]]:
        return [[significant(p) for p in row] for row in self.rows]

    def labels(self) -> list[str]:
        return [self.classes[row.index(max(row))] for row in self.rows]

    def prediction(self, index: int) -> dict[str, Any]:
        """``/classify``'s answer for one text, without ``model``."""
        row = self.rounded_rows()[index]
        return {
            "label": self.labels()[index],
            "score": max(row),
            "scores": dict(zip(self.classes, row, strict=True)),
        }


EXAMPLE_ANSWERS = "openapi_example_answers"


def init_app(app: Flask) -> None:
    """The document's route, and its example answers computed now, as the worker starts:
    built on the first request, they could wait on the stable version's lock behind a
    long explanation, and with a transformer stable, on the worker's event loop."""
    app.extensions[EXAMPLE_ANSWERS] = ExampleAnswers.of(app.extensions["models"].registry.stable)
    app.register_blueprint(bp)


def pin_parameters(stable: str) -> list[dict[str, Any]]:
    """``?version=`` and ``?label=``: pin the answering version (else ``ROUTING`` picks).
    The examples name the stable version twice, so that "Try it out" (which sends both)
    gets an answer from any server."""
    pin = (
        "Pin the version that answers (else the routing policy picks); given together, "
        "the label must name that version. Unknown: 404."
    )
    return [
        {"name": name, "in": "query", "description": pin, "schema": {"type": kind}, "example": e}
        for name, kind, e in (("version", "integer", int(stable)), ("label", "string", "stable"))
    ]


def classify_operations(answers: ExampleAnswers, max_items: int) -> dict[str, dict[str, Any]]:
    """``/classify`` and the service's own GET routes (``answers``: the stable version's)."""
    stable = answers.version
    single = {**answers.prediction(0), "model": answers.model}
    batch = {"predictions": [answers.prediction(0), answers.prediction(1)], "model": answers.model}
    blank = {
        "error": {
            "code": "validation_error",
            "message": "The request body does not match the expected schema.",
            "details": {"review": ["Review text must not be empty or only whitespace."]},
        }
    }
    html = {"type": "string"}
    return {
        "/classify": {
            "post": {
                "operationId": "classify",
                "tags": ["classify"],
                "summary": "Classify one review or a batch of reviews.",
                "description": "Send exactly one of `review` or `reviews`.",
                "parameters": pin_parameters(stable),
                "requestBody": json_body(
                    one_of("ClassifyOneRequest", "ClassifyBatchRequest"),
                    {
                        "single": example({"review": EXAMPLE_REVIEW}, "One review."),
                        "batch": example(
                            {"reviews": [EXAMPLE_REVIEW, OTHER_REVIEW]},
                            "A batch, answered in input order.",
                        ),
                    },
                ),
                "responses": {
                    "200": naming_the_version(
                        json_response(
                            "The most probable class and every class's probability.",
                            one_of("ClassifyResponse", "ClassifyBatchResponse"),
                            {
                                "single": example(single, "For `review`."),
                                "batch": example(batch, "For `reviews`."),
                            },
                        )
                    ),
                    "400": error(
                        "Invalid JSON, a body that does not match the schema, or a query "
                        "parameter other than `version` and `label` (or one of them twice).",
                        {"blank": example(blank, 'For `{"review": "   "}`.')},
                    ),
                    "404": error("No such version or label is served (`?version=`, `?label=`)."),
                    "413": error("The body is larger than MAX_CONTENT_LENGTH bytes."),
                    "415": error(UNSUPPORTED_BODY),
                },
            }
        },
        "/health": get(
            "health",
            "operations",
            "Liveness: the process answers HTTP (never touches the model).",
            json_response("Alive.", ref("Health")),
        ),
        "/ready": get(
            "ready",
            "operations",
            "Readiness: this worker's model is loaded and warmed up.",
            json_response("Ready.", ref("Ready")),
        ),
        "/model": get(
            "modelInfo",
            "operations",
            "What is served: identity, classes, limits, metrics, libraries.",
            json_response("The served model.", ref("ModelInfo")),
        ),
        "/metrics": with_response(
            get(
                "metrics",
                "operations",
                "Prometheus metrics, in the text exposition format (0.0.4).",
                text_response("The metrics.", "text/plain", {"type": "string"}),
            ),
            "503",
            error("The metrics cannot be read now (`metrics_unavailable`); serving goes on."),
        ),
        "/": get(
            "page",
            "web",
            "The web page: try the classifier in a browser.",
            text_response("An HTML page.", "text/html", html),
        ),
        "/openapi.json": get(
            "openapiDocument",
            "documentation",
            "This document.",
            json_response("OpenAPI 3.0.", {"type": "object"}),
        ),
        "/explain": explain_operation(answers),
        **feedback_operations(max_items),
        "/docs": get(
            "docsPage",
            "documentation",
            "This document in Swagger UI: read it, and try every operation.",
            text_response("An HTML page.", "text/html", html),
        ),
    }


def explain_operation(answers: ExampleAnswers) -> dict[str, Any]:
    """``POST /explain``: each token's contribution to each class (occlusion)."""
    stable, result = answers.version, answers.explanation

    def rounded(values: dict[str, float]) -> dict[str, float]:
        return {name: significant(value) for name, value in values.items()}

    probabilities = rounded(dict(zip(result.classes, result.probabilities, strict=True)))
    answer = {
        "label": result.label,
        "score": significant(result.score),
        "scores": probabilities,
        "tokens": [
            {"token": item.token, "contributions": rounded(item.contributions)}
            for item in result.tokens
        ],
        "unseen_tokens": result.unseen_tokens,
        "unseen_at": result.unseen_at,
        "method": METHOD,
        "model": answers.model,
    }
    return {
        "post": {
            "operationId": "explain",
            "tags": ["classify"],
            "summary": "Why: each token's contribution to each class's probability.",
            "description": (
                "The tokens as the model sees them (standardised), each with, per class, the "
                "probability with the token minus without it (the token and the n-grams it is "
                "part of left out: occlusion). Positive: it pushed toward that class."
            ),
            "parameters": pin_parameters(stable),
            "requestBody": json_body(
                ref("ExplainRequest"),
                {"explain": example({"review": EXPLAIN_EXAMPLE}, "One review.")},
            ),
            "responses": {
                "200": naming_the_version(
                    json_response(
                        "The answer and each token's contributions, in reading order.",
                        ref("ExplainResponse"),
                        {"explain": example(answer, "This server's answer.")},
                    )
                ),
                "400": error(
                    "Invalid JSON, a body that does not match the schema, or a query "
                    "parameter other than `version` and `label` (or one of them twice)."
                ),
                "404": error("No such version or label is served."),
                "413": error("The body is larger than MAX_CONTENT_LENGTH bytes."),
                "415": error(UNSUPPORTED_BODY),
            },
        }
    }


def feedback_operations(max_items: int) -> dict[str, dict[str, Any]]:
    """``POST /feedback`` (a list of at most ``max_items``, the app's ``MAX_BATCH_SIZE``),
    ``GET /feedback`` and ``GET /monitoring``."""
    request_id = "3f1c8e4ad39a4a55b4c5e1f1d2a7c901"
    given = {
        "request_id": request_id,
        "index": 0,
        "version": "2",
        "predicted": "positive",
        "label": "positive",
        "correct": True,
        "repeated": False,
    }
    item_error = {"request_id": request_id, "index": 0}
    labelled = {
        **{key: given[key] for key in ("request_id", "index", "version", "predicted")},
        "score": 0.9712,
        **{key: given[key] for key in ("label", "correct")},
        "predicted_at": "2026-12-05T09:14:03.271Z",
        "feedback_at": "2026-12-05T09:20:41.008Z",
    }
    page = {
        "feedback": [labelled],
        "more": True,
        "next": "/feedback?version=2&limit=1&after=1796462441.008123_1842",
    }
    hour = {"predictions": 120, "shares": {"negative": 0.45, "neutral": 0.35, "positive": 0.2}}
    day = {"predictions": 2400, "shares": {"negative": 0.42, "neutral": 0.38, "positive": 0.2}}
    # The feedback's counts (predicted, true): this version's, and the stable one's (2).
    confusion = {
        **{(c, c): n for c, n in (("negative", 112), ("neutral", 80), ("positive", 68))},
        **{("neutral", "negative"): 14, ("negative", "neutral"): 12, ("neutral", "positive"): 24},
    }
    stable = {("negative", "negative"): 780, ("neutral", "negative"): 240}
    interval = quality.wilson_interval(*quality.correct_and_total(confusion))
    assert interval is not None
    report = {
        "database": "postgresql",
        "retention_days": 30,
        "routing": "bandit",
        "versions": [
            {
                "version": "3",
                "predictions": 52000,
                "feedback": 310,
                "accuracy": round(quality.accuracy(confusion) or 0, 4),
                "accuracy_interval": [round(x, 4) for x in interval],
                "macro_f1": round(quality.macro_f1(confusion) or 0, 4),
                "confusion": quality.confusion_matrix(
                    confusion, ["negative", "neutral", "positive"]
                ),
                "label_mix": {
                    "last_hour": hour,
                    "last_day": day,
                    "training": {"negative": 0.3331, "neutral": 0.3498, "positive": 0.3171},
                },
                "drift": {
                    "window": "last_day",
                    "reference": "tweet_test",
                    "label_mix_psi": 0.0021,
                    "confidence_psi": 0.0153,
                },
                "against_stable": quality.against_stable(confusion, "2", stable),
                "bandit_share": 0.95,
            }
        ],
    }
    return {
        "/feedback": {
            "post": {
                "operationId": "feedback",
                "tags": ["feedback"],
                "summary": "Give the true label of an earlier answer (or of several).",
                "description": (
                    "Name the answer by the `X-Request-ID` header it carried, and the item by "
                    "its position in the batch (`index`, default 0). A list is stored all or "
                    "none. The same label twice is accepted (`repeated`); another is a 409."
                ),
                "requestBody": json_body(
                    {
                        "oneOf": [
                            ref("FeedbackItem"),
                            {
                                "type": "array",
                                "items": ref("FeedbackItem"),
                                "minItems": 1,
                                # Undeclared, a list of 66 was valid here and refused (400).
                                "maxItems": max_items,
                            },
                        ]
                    },
                    {
                        # An unknown request id: a known one exists only after a /classify.
                        "unknown": example(
                            [{"request_id": request_id, "index": 0, "label": "positive"}],
                            "A list (here of one item) for an answer never given.",
                        ),
                    },
                ),
                "responses": {
                    "200": json_response(
                        "Stored (or the same label again).",
                        ref("FeedbackResponse"),
                        {"stored": example({"feedback": [given]}, "One answer.")},
                    ),
                    "400": error("Invalid JSON, or a body that does not match the schema."),
                    "404": error(
                        "No recorded prediction has this request id and index, after waiting "
                        "about a second for answers not yet written.",
                        {
                            "unknown": example(
                                {
                                    "error": {
                                        "code": "prediction_not_found",
                                        "message": PREDICTION_NOT_FOUND,
                                        "details": item_error,
                                    }
                                },
                                "The first unknown item.",
                            )
                        },
                    ),
                    "409": error("This prediction already has a different true label."),
                    "413": error("The body is larger than MAX_CONTENT_LENGTH bytes."),
                    "415": error(UNSUPPORTED_BODY),
                    "503": {
                        **error(
                            STORE_UNAVAILABLE + " Or `prediction_pending`, with `Retry-After: "
                            "1`: the answer is not recorded yet and its record may still be on "
                            "its way (this worker's writer is behind, or it already waits for "
                            "another's), so it cannot tell whether it will be."
                        ),
                        "headers": {
                            "Retry-After": {
                                "description": "With `prediction_pending`: seconds to wait.",
                                "schema": {"type": "integer"},
                            }
                        },
                    },
                },
            },
            "get": {
                "operationId": "labelledAnswers",
                "tags": ["feedback"],
                "summary": "The answers that have a true label, a page at a time.",
                "description": (
                    "In the order the labels came, within the retention. Join them with "
                    "the texts you hold by `request_id` and `index` (the server keeps no "
                    "text) to study the errors or to retrain. Follow `next` while `more` "
                    "is true; keep the last `next` to fetch, later, the labels that came "
                    "since."
                ),
                "parameters": [{"in": "query", "schema": schemas.FeedbackQuerySchema}],
                "responses": {
                    "200": json_response(
                        "One page.",
                        ref("FeedbackPage"),
                        {"page": example(page, "A page of one, with more to follow.")},
                    ),
                    "400": error("A query parameter that is not valid, or unknown."),
                    "503": error(STORE_UNAVAILABLE),
                },
            },
        },
        "/monitoring": {
            "get": {
                "operationId": "monitoring",
                "tags": ["feedback"],
                "summary": (
                    "Per version: predictions, feedback, live accuracy (against the stable "
                    "version's), label mix, drift."
                ),
                "responses": {
                    "200": json_response(
                        "Every loaded version.",
                        ref("Monitoring"),
                        {
                            "one": example(
                                report, "Version 3 beside version 2 (stable), ROUTING=bandit."
                            )
                        },
                    ),
                    "4XX": CLIENT_ERROR,
                    "503": error(STORE_UNAVAILABLE),
                },
            }
        },
    }


PREDICTION_NOT_FOUND = "No recorded prediction has this request id and index."


def tfserving_operations(answers: ExampleAnswers) -> dict[str, dict[str, Any]]:
    """``/v1/models/...``: TF Serving's REST API, each plain, with ``/versions/<v>`` and
    with ``/labels/<label>``."""
    version = answers.version
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
    malformed = tf_error(
        "A URL that TF Serving's routes do not match (e.g. a version that is not an int64).",
        {
            "malformed": example(
                {"error": "Failed to convert version: 99999999999999999999 to numeric."},
                "A version beyond int64.",
            )
        },
    )
    texts = [EXAMPLE_REVIEW, OTHER_REVIEW]
    rows = answers.rounded_rows()
    b64 = [{"b64": base64.b64encode(text.encode()).decode()} for text in texts]
    predict = {
        "tags": ["tensorflow-serving"],
        "summary": "Predict: class probabilities per review (TF Serving's Predict API).",
        "description": (
            "Row format (`instances`) answers `predictions`; column format (`inputs`) answers "
            "`outputs`. Each row holds the probabilities in the model's class order "
            "(`GET /model`: `classes`). Same limits as `POST /classify`. As in TF Serving, "
            "the body is read as JSON whatever its Content-Type, unknown keys are ignored, "
            'and a text may be sent as `{"b64": "<base64 of UTF-8>"}`.'
        ),
        "requestBody": json_body(
            one_of("TFPredictRowRequest", "TFPredictColumnRequest"),
            {
                "row": example({"instances": texts}, "Row format."),
                "row_objects": example(
                    {"instances": [{TF_INPUT_NAME: text} for text in texts]},
                    "Row format, each instance naming the input.",
                ),
                "column": example(
                    {"signature_name": "serving_default", "inputs": {TF_INPUT_NAME: texts}},
                    "Column format, the input named.",
                ),
                "column_bare": example({"inputs": b64}, "Column format, texts in base64."),
            },
        ),
        "responses": {
            "200": naming_the_version(
                json_response(
                    "Probabilities, one row per review, in input order.",
                    one_of("TFPredictRowResponse", "TFPredictColumnResponse"),
                    {
                        "row": example({"predictions": rows}, "For `instances`."),
                        "row_objects": example({"predictions": rows}, "For named instances."),
                        "column": example({"outputs": rows}, "For `inputs`."),
                        "column_bare": example({"outputs": rows}, "For bare `inputs`."),
                    },
                )
            ),
            "400": tf_error(
                "Invalid JSON, a body that does not match the schema, or a malformed URL.",
                {
                    "both": example(
                        {
                            "error": "The request body does not match the expected schema. "
                            "Not formatted correctly: expecting only one of 'inputs' or "
                            "'instances' keys to exist"
                        },
                        "For a body with both `instances` and `inputs`.",
                    )
                },
            ),
            "404": not_found,
            "413": tf_error("The body is larger than MAX_CONTENT_LENGTH bytes."),
            "415": tf_error("A Content-Encoding other than gzip or deflate."),
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
            "400": malformed,
            "404": tf_error(
                "No such model (or version) is served.",
                {
                    "unknown_model": example(
                        {"error": "Could not find any versions of model half"},
                        "Another model name.",
                    )
                },
            ),
        },
    }
    metadata = {
        "tags": ["tensorflow-serving"],
        "summary": "Model metadata: the signature (TF Serving's GetModelMetadata).",
        "responses": {
            "200": json_response("The `serving_default` signature.", ref("TFModelMetadata")),
            "400": malformed,
            "404": not_found,
        },
    }
    operations = {}
    unknown_label = tf_error("No such version label (TF Serving: INVALID_ARGUMENT).")
    # Without a version in the path, a URL can still be malformed, but not by its version.
    malformed_url = {
        "": tf_error("A URL that TF Serving's routes do not match."),
        "Label": tf_error(
            "No such version label (TF Serving: INVALID_ARGUMENT), or a URL that TF "
            "Serving's routes do not match."
        ),
    }
    variants = (
        ("", ""),
        ("/versions/<int64:version>", "Version"),
        ("/labels/<model:label>", "Label"),
    )
    for versions, suffix in variants:
        base = f"/v1/models/<model:name>{versions}"
        routes = {
            base: ("get", f"tfModelStatus{suffix}", model_status),
            f"{base}/metadata": ("get", f"tfModelMetadata{suffix}", metadata),
            f"{base}:predict": ("post", f"tfPredict{suffix}", predict),
        }
        for rule, (method, operation_id, operation) in routes.items():
            responses = {**operation["responses"]}
            if suffix != "Version" and responses.get("400") is malformed:
                responses["400"] = malformed_url[suffix]  # the example is a version's
            if suffix == "Label":
                responses.setdefault("400", unknown_label)
            operation = {**operation, "responses": responses}
            operations[rule] = {method: {"operationId": operation_id, **operation}}
    return operations


def v2_error(description: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response with the Open Inference Protocol's error body, as on every ``/v2/`` URL."""
    return json_response(description, ref("V2Error"), examples)


def open_inference_operations(answers: ExampleAnswers) -> dict[str, dict[str, Any]]:
    """``/v2/...``: the Open Inference Protocol's REST API (KServe V2), each model route
    plain and with ``/versions/<v>``."""
    tag = "open-inference"
    version, classes = answers.version, answers.classes
    texts = [EXAMPLE_REVIEW, OTHER_REVIEW]
    not_found = v2_error(
        "No such model (or version) is served.",
        {
            "unknown_model": example(
                {"error": "Model 'half' is not served; this server serves 'sentiment'."},
                "Another name.",
            )
        },
    )
    client_error = v2_error("A client error (none is expected for this request).")

    def get_operation(operation_id: str, summary: str, schema: str, value: Any) -> dict[str, Any]:
        ok = json_response(summary, ref(schema), {"ok": example(value, summary)})
        return get(operation_id, tag, summary, ok, client_error)

    probabilities = {
        "name": V2_PROBABILITIES,
        "datatype": "FP32",
        "shape": [2, len(classes)],
        "data": [p for row in answers.rounded_rows() for p in row],
    }
    labels = {"name": V2_LABEL, "datatype": "BYTES", "shape": [2], "data": answers.labels()}
    answer = {"model_name": answers.name, "model_version": version}
    review = {"name": TF_INPUT_NAME, "datatype": V2_INPUT_DATATYPE}
    infer = {
        "tags": [tag],
        "summary": "Inference: class probabilities and labels (the Open Inference Protocol).",
        "description": (
            f"One `BYTES` input, `{TF_INPUT_NAME}`, of shape `[n]` or `[n, 1]`: n texts, with "
            f"`POST /classify`'s limits. Outputs `{V2_PROBABILITIES}` (`FP32`, `[n, classes]`, "
            f"in the model's class order, `GET /model`) and `{V2_LABEL}` (`BYTES`, `[n]`); "
            "`outputs` picks some. The body is read as JSON whatever its Content-Type. "
            "Triton's binary tensor extension: with an `Inference-Header-Content-Length` "
            "header the body's first bytes are the JSON, and an input with the parameter "
            "`binary_data_size` has its data after them (each text as a 4-byte little-endian "
            "length and its UTF-8); an output with the parameter `binary_data` (every output, "
            "with the request parameter `binary_data_output`) comes the same way after the "
            "response's JSON (`application/octet-stream`, the JSON's length in "
            "`Inference-Header-Content-Length`; FP32 as little-endian floats). A body "
            "compressed with gzip or deflate (`Content-Encoding`) is inflated; "
            "MAX_CONTENT_LENGTH holds for what it inflates to."
        ),
        "requestBody": json_body(
            ref("V2InferenceRequest"),
            {
                "texts": example(
                    {"inputs": [{**review, "shape": [2], "data": texts}]},
                    "Two texts; every output.",
                ),
                "labels_only": example(
                    {
                        "id": "review-batch-7",
                        "inputs": [{**review, "shape": [2, 1], "data": [[text] for text in texts]}],
                        "outputs": [{"name": V2_LABEL}],
                    },
                    "A column of two texts; the labels only.",
                ),
            },
        ),
        "responses": {
            "200": naming_the_version(
                {
                    "description": "The outputs, in input order: JSON, or (when an output is "
                    "asked for in binary) the JSON and then the binary tensors.",
                    "content": {
                        JSON: {
                            "schema": ref("V2InferenceResponse"),
                            "examples": {
                                "texts": example(
                                    {
                                        **answer,
                                        "id": EXAMPLE_REQUEST_ID,
                                        "outputs": [probabilities, labels],
                                    },
                                    "Every output; without an `id` the answer's is the request id.",
                                ),
                                "labels_only": example(
                                    {**answer, "id": "review-batch-7", "outputs": [labels]},
                                    "Labels.",
                                ),
                            },
                        },
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                }
            ),
            "400": v2_error(
                "Invalid JSON, a body that does not match the schema, or a bad binary part.",
                {
                    "unknown_input": example(
                        {
                            "error": "The request body does not match the expected schema. "
                            "inputs.0.name: Unknown input 'text': the model's input is 'review'."
                        },
                        "For an input named `text`.",
                    )
                },
            ),
            "404": not_found,
            "413": v2_error("The body is larger than MAX_CONTENT_LENGTH bytes."),
            "415": v2_error("A Content-Encoding other than gzip or deflate."),
        },
    }
    metadata_value = {
        "name": "sentiment",
        "versions": [version],
        "platform": "openvino",
        **schemas.v2_tensors(len(classes)),
    }
    operations = {
        "/v2": get_operation(
            "v2ServerMetadata",
            "Server metadata: name, version, protocol extensions.",
            "V2ServerMetadata",
            {"name": V2_SERVER_NAME, "version": API_VERSION, "extensions": V2_EXTENSIONS},
        ),
        "/v2/health/live": get_operation(
            "v2Live", "Liveness: the server answers.", "V2Live", {"live": True}
        ),
        "/v2/health/ready": get_operation(
            "v2Ready", "Readiness: every version has loaded.", "V2Ready", {"ready": True}
        ),
    }
    for versions, suffix in (("", ""), ("/versions/<version>", "Version")):
        base = f"/v2/models/<name>{versions}"
        metadata = get_operation(
            f"v2ModelMetadata{suffix}",
            "Model metadata: its tensors; every loaded version, or the one named.",
            "V2ModelMetadata",
            metadata_value,
        )
        ready = get_operation(
            f"v2ModelReady{suffix}",
            "Model readiness.",
            "V2ModelReady",
            {"name": "sentiment", "ready": True},
        )
        for operation in (metadata, ready):
            operation["get"]["responses"] = {
                "200": operation["get"]["responses"]["200"],
                "404": not_found,
            }
        operations[base] = metadata
        operations[f"{base}/ready"] = ready
        operations[f"{base}/infer"] = {
            "post": {"operationId": f"v2Infer{suffix}", **copy.deepcopy(infer)}
        }
    return operations


def path_parameters(
    rule: str, name: str, version: str, versions: list[str], labels: list[str]
) -> list[dict[str, Any]]:
    """The path parameters of a ``/v1/models`` or ``/v2/models`` rule; only the served
    values are valid (every loaded version; ``version``, the stable one, as the example)."""
    parameters = []
    if "<model:name>" in rule or "<name>" in rule:
        parameters.append(
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "The served model's name (`GET /model`); others are 404.",
                "schema": {"type": "string", "pattern": "^[^/:]+$", "enum": [name]},
                "example": name,
            }
        )
    if "<int64:version>" in rule:
        parameters.append(
            {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "A loaded version (`GET /model` → `versions`); others are 404.",
                "schema": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                    "enum": sorted(int(v) for v in versions),
                },
                "example": int(version),
            }
        )
    if "<version>" in rule:
        parameters.append(
            {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "A loaded version (`GET /model` → `versions`); others are 404.",
                "schema": {"type": "string", "enum": versions},
                "example": version,
            }
        )
    if "<model:label>" in rule:
        parameters.append(
            {
                "name": "label",
                "in": "path",
                "required": True,
                "description": "A version label (`GET /model` → `labels`); others are 400.",
                "schema": {"type": "string", "enum": labels},
                "example": "stable",
            }
        )
    return parameters


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``/v1/models/<model:name>/versions/<int64:version>``
    → ``/v1/models/{name}/versions/{version}``."""
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def one_of_shapes(self: Any, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """apispec attribute function: a ``OneOfShapes`` field is ``oneOf`` its alternatives."""
    if isinstance(field, OneOfShapes):
        return {"oneOf": [self.field2property(shape) for shape in field.alternatives]}
    return {}


def exclusions(requests: schemas.RequestSchemas, schema: Any) -> dict[str, Any]:
    """A body shape that ignores unknown keys (TF Serving's) still may not carry another
    shape's key (``instances`` and ``inputs`` together are refused): say so with ``not``."""
    if schema.unknown != EXCLUDE:
        return {}  # unknown keys are refused anyway (additionalProperties: false)
    for body in (requests.classify, requests.predict):
        if any(alternative is schema for alternative in body.alternatives.values()):
            others = [key for key, other in body.alternatives.items() if other is not schema]
            has_one = [{"required": [key]} for key in others]
            has_any = has_one[0] if len(has_one) == 1 else {"anyOf": has_one}
            return {"not": {"properties": {key: {} for key in others}, **has_any}}
    return {}


SECURITY_SCHEME = "apiKey"


def error_response(
    app: Flask, rule: str, problem: APIError, description: str, name: str
) -> dict[str, Any]:
    """A response documenting ``problem``, in ``rule``'s error shape."""
    shape = tf_error if rule.startswith("/v1/") else v2_error if rule.startswith("/v2") else error
    body = body_for_path(app, rule, problem.code, problem.message, {})
    return shape(description, {name: example(body, problem.message)})


def with_api_key(
    app: Flask, operation: dict[str, Any], rule: str, endpoint: str, keys: Keys
) -> None:
    """``operation`` on a server with keys, when its route needs one: the bearer scheme,
    its 401 and (where a monitoring key is refused) its 403, in its URL's error shape."""
    challenge = {
        "WWW-Authenticate": {
            "description": 'The bearer challenge (RFC 6750), e.g. `Bearer realm="sentiment"`, '
            'with `error="invalid_token"` for a key not in the list or '
            '`error="insufficient_scope"` for a monitoring key.',
            "schema": {"type": "string"},
        }
    }
    for method in operation.values():
        method["security"] = [{SECURITY_SCHEME: []}]
        method["responses"]["401"] = error_response(
            app, rule, APIKeyMissing(), "No API key, or not one of the server's.", "missing"
        )
        method["responses"]["401"]["headers"] = challenge
        if keys.monitoring and endpoint not in MONITORING_ENDPOINTS:
            method["responses"]["403"] = error_response(
                app,
                rule,
                APIKeyOutOfScope(),
                "A monitoring key, which opens no other route.",
                "scope",
            )
            method["responses"]["403"]["headers"] = challenge


def with_https_only(app: Flask, operation: dict[str, Any], rule: str) -> None:
    """``operation`` on a server with ``FORCE_HTTPS``: over plain HTTP a GET gets a 301 to
    the same URL on ``https://``, any other method a 403 (beside a monitoring key's)."""
    for name, method in operation.items():
        responses = method["responses"]
        if name == "get":
            responses["301"] = {
                "description": "Sent over plain HTTP: the same URL on `https://` (`Location`).",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"location": {"type": "string"}},
                            "required": ["location"],
                        }
                    }
                },
            }
            continue
        refused = error_response(
            app, rule, HTTPSRequired(), "Sent over plain HTTP (`FORCE_HTTPS`).", "https"
        )
        if "403" not in responses:
            responses["403"] = refused
            continue
        content = responses["403"]["content"][JSON]
        content["examples"].update(refused["content"][JSON]["examples"])
        responses["403"]["description"] += " Or sent over plain HTTP (`FORCE_HTTPS`)."


def build_spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes, with ``app``'s limits."""
    registry = app.extensions["models"].registry
    bundle = registry.stable.bundle
    keys = Keys.of(app)
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title="Sentiment model server",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[marshmallow],
        info=INFO,
        servers=[{"url": "/", "description": "This server."}],  # per request: openapi_json
        # Keys set: each operation that needs one says so (with_api_key).
        security=[],
        tags=TAGS,
    )
    if keys.api or keys.monitoring:
        spec.components.security_scheme(
            SECURITY_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "One of the server's keys (`API_KEYS`, or "
                "`MONITORING_API_KEYS` for /metrics and /monitoring): "
                "`Authorization: Bearer <key>`. The health probes need none.",
            },
        )
    marshmallow.converter.add_attribute_function(one_of_shapes)
    requests = app.extensions[REQUEST_SCHEMAS]
    for component, schema in requests.components.items():
        spec.components.schema(component, exclusions(requests, schema), schema=schema)
    spec.components.schema("FeedbackItem", schema=app.extensions[FEEDBACK_SCHEMA])
    for component, schema_class in RESPONSE_SCHEMAS.items():
        spec.components.schema(component, schema=schema_class())
    answers: ExampleAnswers = app.extensions[EXAMPLE_ANSWERS]
    operations = {
        **classify_operations(answers, app.config["MAX_BATCH_SIZE"]),
        **tfserving_operations(answers),
        **open_inference_operations(answers),
    }
    endpoints = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    rules = {rule for rule, endpoint in endpoints.items() if endpoint != "static"}
    for rule in sorted(rules & set(operations), key=lambda r: (not r.startswith("/v1"), r)):
        if keys.required(endpoints[rule]):
            with_api_key(app, operations[rule], rule, endpoints[rule], keys)
        if app.config["FORCE_HTTPS"]:
            with_https_only(app, operations[rule], rule)
        spec.path(
            path=openapi_path(rule),
            operations=operations[rule],
            parameters=path_parameters(
                rule, bundle.name, bundle.version, list(registry.versions), sorted(registry.labels)
            ),
        )
    return with_request_id(spec.to_dict())


def with_request_id(document: dict[str, Any]) -> dict[str, Any]:
    """Every answer carries ``X-Request-ID`` (what ``POST /feedback`` takes): each
    response says so, through one header component."""
    document.setdefault("components", {}).setdefault("headers", {})["X-Request-ID"] = {
        "description": "This answer's id: the request's own `X-Request-ID` when it is 20-200 "
        "characters of `[A-Za-z0-9+/=-]`, else a new one (a UUID version 7 in 32 hex "
        "digits). `POST /feedback` takes it.",
        "schema": {"type": "string"},
    }
    for path in document["paths"].values():
        for method, operation in path.items():
            if method == "parameters":
                continue
            for response in operation["responses"].values():
                if "$ref" not in response:
                    response.setdefault("headers", {})["X-Request-ID"] = {
                        "$ref": "#/components/headers/X-Request-ID"
                    }
    return document


def app_spec() -> dict[str, Any]:
    """This app's document, built on first use."""
    if SPEC_KEY not in current_app.extensions:
        current_app.extensions[SPEC_KEY] = build_spec(current_app._get_current_object())  # type: ignore[attr-defined]
    return current_app.extensions[SPEC_KEY]


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The document, its server at this app's root: behind a proxy that serves the app
    under a path (``SCRIPT_NAME``), "Try it out" called the host's root, since a server
    URL of "/" is not relative to the document's. No-cache with an ETag: a browser
    revalidates to a 304."""
    server = {"url": request.script_root or "/", "description": "This server."}
    response = jsonify({**app_spec(), "servers": [server]})
    response.headers["Cache-Control"] = "no-cache"
    response.add_etag()
    return response.make_conditional(request)
