"""TensorFlow-Serving-compatible REST API, so that TF Serving clients work unchanged.

TF Serving's URL scheme, ``/versions/<v>`` or ``/labels/<label>`` optional:

- ``GET  /v1/models/<name>[/versions/<v>]``: model status (``GetModelStatusResponse``):
  every loaded version, or the one named
- ``GET  /v1/models/<name>[/versions/<v>]/metadata``: the signature (``GetModelMetadataResponse``)
- ``POST /v1/models/<name>[/versions/<v>]:predict``: class probabilities, row or column format

Unlike TF Serving, which answers with the latest version when none is named, metadata
then describes the ``stable`` version and predict follows ``ROUTING``, as ``/classify``.
Predictions go through the same path as ``POST /classify`` (``ServedModels.run``), with the
same limits. The body is read as TF Serving reads it: JSON whatever the Content-Type,
unknown keys ignored, texts given as strings or as ``{"b64": ...}`` (``schemas``). Errors
under ``/v1/`` have TF Serving's shape, ``{"error": "<message>"}``, with the HTTP status
TF Serving gives the matching gRPC code (400 invalid argument, 404 not found, 413), and
TF Serving's answer to a URL or method it has no route for: 400 (``routing_error_message``).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, IntegerConverter, Map

from app.serving.predictor import Predictor
from app.serving.registry import UnknownVersion
from app.web.api import app_request_schemas, validated
from app.web.errors import ERROR_BODIES, APIError, ModelNotFound
from app.web.models import ROUTING_KEY_HEADER, served_models, stable_predictor
from app.web.schemas import SERVING_SIGNATURE, TF_INPUT_NAME

bp = Blueprint("tfserving", __name__, url_prefix="/v1/models")

ERROR_PREFIX = "/v1/"
PREDICT_METHOD = "tensorflow/serving/predict"
OUTPUT_NAME = "probabilities"
# TF Serving parses versions as int64 (absl::SimpleAtoi).
INT64_MAX = 2**63 - 1
# TF Serving's URL patterns (http_rest_api_util.cc), for the messages of routing errors.
_STATUS_URL = re.compile(
    r"/v1/models(?:/(?P<name>[^/:]+))?"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/[^/:]+)?(?:/metadata)?"
)
_PREDICT_URL = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[0-9]+)|/labels/[^/:]+)?"
    r":(?:classify|regress|predict)"
)


class InvalidArgument(APIError):
    """TF Serving's INVALID_ARGUMENT outside the body: a URL or method it does not serve,
    or a version label no version has."""

    status = 400
    code = "invalid_argument"


def tfserving_error_body(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    """TF Serving's error body: one message, with the per-field details folded in."""
    if details:
        message = f"{message} {_flatten(details)}"
    return {"error": message}


def _flatten(details: Any, path: str = "") -> str:
    """``{"instances": {0: ["Empty."]}}`` → ``"instances.0: Empty."``"""
    if isinstance(details, dict):
        parts = []
        for key, value in details.items():
            # "_schema" is marshmallow's key for errors of the object itself.
            name = path if key == "_schema" else f"{path}.{key}" if path else str(key)
            parts.append(_flatten(value, name))
        return " ".join(parts)
    if isinstance(details, list):
        if all(not isinstance(item, dict | list) for item in details):
            text = ", ".join(str(item) for item in details)
            return f"{path}: {text}" if path else text
        return " ".join(_flatten(item, path) for item in details)
    return f"{path}: {details}" if path else str(details)


class ModelNameConverter(BaseConverter):
    """A model name in a URL, as TF Serving matches it: no "/" and no ":"."""

    regex = "[^/:]+"


class Int64Converter(IntegerConverter):
    """A version in a URL: digits, as TF Serving matches them (ASCII: Werkzeug's ``\\d``
    took "３" for 3), up to int64's maximum (a larger number is a routing error, see
    ``routing_error_message``)."""

    regex = "[0-9]+"

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, max=INT64_MAX)


def _setup(state: BlueprintSetupState) -> None:
    """Per app: the URL converters and the error shape."""
    app = state.app
    app.url_map.converters["model"] = ModelNameConverter
    app.url_map.converters["int64"] = Int64Converter
    app.extensions.setdefault(ERROR_BODIES, {})[ERROR_PREFIX] = tfserving_error_body


bp.record_once(_setup)


def routing_error_message(method: str, path: str) -> str:
    """TF Serving's message for a ``/v1/`` request that no route serves; it answers them
    all with 400 (no 404 or 405): a version that overflows int64, a model name missing
    from a status URL, anything else is a malformed request. A HEAD gets its GET's
    message: RFC 9110 9.3.2, the same headers, Content-Length included."""
    method = "GET" if method == "HEAD" else method
    pattern = {"GET": _STATUS_URL, "POST": _PREDICT_URL}.get(method)
    match = pattern.fullmatch(path) if pattern else None
    if match and match["version"] and int(match["version"]) > INT64_MAX:
        return f"Failed to convert version: {match['version']} to numeric."
    if match and not match["name"]:
        return "Missing model name in request."
    return f"Malformed request: {method} {path}"


@bp.before_app_request
def _routing_errors_as_tf_serving() -> None:
    """Under ``/v1/``, a URL or method that no route serves is TF Serving's 400."""
    if request.path.startswith(ERROR_PREFIX) and isinstance(
        request.routing_exception, NotFound | MethodNotAllowed
    ):
        raise InvalidArgument(routing_error_message(request.method, request.path))


def predict_texts(key: str, data: dict[str, Any]) -> list[str]:
    """The review texts of a loaded ``:predict`` body, in row or column format."""
    if key == "inputs":
        inputs = data["inputs"]
        return inputs[TF_INPUT_NAME] if isinstance(inputs, dict) else inputs
    return [row[TF_INPUT_NAME] if isinstance(row, dict) else row for row in data["instances"]]


def check_model(name: str, version: int | None, label: str | None = None) -> Predictor | None:
    """The version the URL names (by number or by label), or None when it names neither;
    ``404``/``400`` in TF Serving's words when ``name``, ``version`` or ``label`` is not
    served."""
    registry = served_models().registry
    if name != registry.name:
        raise ModelNotFound(_not_found_message(name, version))
    try:
        if version is not None:
            return registry.version(str(version))
        if label is not None:
            return registry.labelled(label)
    except UnknownVersion:
        if label is not None:
            raise InvalidArgument(f"Unrecognized servable version label: {label}") from None
        raise ModelNotFound(_not_found_message(name, version)) from None
    return None


def _not_found_message(name: str, version: int | None) -> str:
    request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return f"Servable not found for request: {request}"


def _tensor_info(name: str, dtype: str, shape: list[int]) -> dict[str, Any]:
    # Protobuf's JSON mapping writes int64 as strings: "size": "-1".
    return {
        "dtype": dtype,
        "tensor_shape": {
            "dim": [{"size": str(size), "name": ""} for size in shape],
            "unknown_rank": False,
        },
        "name": name,
    }


@bp.get("/<model:name>")
@bp.get("/<model:name>/versions/<int64:version>")
@bp.get("/<model:name>/labels/<model:label>")
def model_status(name: str, version: int | None = None, label: str | None = None) -> dict[str, Any]:
    """Model status: every loaded version, or the one named. A worker serves only loaded
    versions, so each state is ``AVAILABLE``."""
    try:
        named = check_model(name, version, label)
    except ModelNotFound:  # GetModelStatus's own words (get_model_status_impl.cc)
        if version is not None:
            raise ModelNotFound(f"Could not find version {version} of model {name}") from None
        raise ModelNotFound(f"Could not find any versions of model {name}") from None
    versions = [named.bundle.version] if named else list(served_models().registry.versions)
    return {
        "model_version_status": [
            {
                "version": served,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for served in versions
        ]
    }


@bp.get("/<model:name>/metadata")
@bp.get("/<model:name>/versions/<int64:version>/metadata")
@bp.get("/<model:name>/labels/<model:label>/metadata")
def model_metadata(
    name: str, version: int | None = None, label: str | None = None
) -> dict[str, Any]:
    """The signature of the named version (default: stable): review texts in, class
    probabilities out."""
    bundle = (check_model(name, version, label) or stable_predictor()).bundle
    signature = {
        "inputs": {
            TF_INPUT_NAME: _tensor_info(f"serving_default_{TF_INPUT_NAME}:0", "DT_STRING", [-1])
        },
        "outputs": {
            OUTPUT_NAME: _tensor_info(
                "StatefulPartitionedCall:0", "DT_FLOAT", [-1, len(bundle.classes)]
            )
        },
        "method_name": PREDICT_METHOD,
        "defaults": {},
    }
    return {
        "model_spec": {"name": bundle.name, "signature_name": "", "version": bundle.version},
        "metadata": {"signature_def": {"signature_def": {SERVING_SIGNATURE: signature}}},
    }


@bp.post("/<model:name>:predict")
@bp.post("/<model:name>/versions/<int64:version>:predict")
@bp.post("/<model:name>/labels/<model:label>:predict")
def predict(name: str, version: int | None = None, label: str | None = None) -> dict[str, Any]:
    """Class probabilities per text, in the model's class order (see ``GET /model``), from
    the named version, else the one ``ROUTING`` picks (as ``POST /classify``)."""
    named = check_model(name, version, label)
    # JSON whatever the Content-Type: TF Serving's clients (its docs' curl -d, its own
    # test client over urllib) send none or a form type.
    key, data = validated(app_request_schemas().predict, request.get_json(force=True))
    texts = predict_texts(key, data)
    if not texts:  # an empty column, which TF Serving accepts: no rows
        return {"predictions": []} if key == "instances" else {"outputs": []}
    models = served_models()
    route = models.route_to(named, request.headers.get(ROUTING_KEY_HEADER))
    # Rows in the model's class order: the output tensor's rows.
    rows = models.run(route, texts).probabilities
    return {"predictions": rows} if key == "instances" else {"outputs": rows}
