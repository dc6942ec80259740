"""TensorFlow-Serving-compatible REST API, so that TF Serving clients work unchanged.

TF Serving's URL scheme, ``/versions/<v>`` or ``/labels/<label>`` optional:

- ``GET  /v1/models/<name>[/versions/<v>]``: model status (``GetModelStatusResponse``):
  every loaded version, or the one named
- ``GET  /v1/models/<name>[/versions/<v>]/metadata``: the signature (``GetModelMetadataResponse``)
- ``POST /v1/models/<name>[/versions/<v>]:predict``: class probabilities, row or column format

Unlike TF Serving, which answers with the latest version when none is named, metadata
then describes the ``stable`` version and predict follows ``ROUTING``, as ``/classify``.
Predictions go through the same path as ``POST /classify`` (``ServedModels.run``), and the
request body through the same limits (``ReviewsSchema``). Errors under ``/v1/`` have TF
Serving's shape, ``{"error": "<message>"}``, with the HTTP status TF Serving gives the
matching gRPC code (400 invalid argument, 404 not found, 503 unavailable, 413, 415).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from app.serving.predictor import Predictor
from app.serving.registry import UnknownVersion
from app.serving.routing import Route
from app.web.api import validated
from app.web.errors import ERROR_BODIES, APIError, ModelNotFound
from app.web.models import ROUTING_KEY_HEADER, served_models, stable_predictor
from app.web.schemas import SERVING_SIGNATURE, TF_INPUT_NAME, PredictRequestSchema

bp = Blueprint("tfserving", __name__, url_prefix="/v1/models")

ERROR_PREFIX = "/v1/"
PREDICT_METHOD = "tensorflow/serving/predict"
OUTPUT_NAME = "probabilities"
SCHEMA_KEY = "tf_predict_schema"


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
            name = str(key) if not path else f"{path}.{key}"
            parts.append(_flatten(value, "" if key == "_schema" and not path else name))
        return " ".join(parts)
    if isinstance(details, list):
        if all(not isinstance(item, dict | list) for item in details):
            text = ", ".join(str(item) for item in details)
            return f"{path}: {text}" if path else text
        return " ".join(_flatten(item, path) for item in details)
    return f"{path}: {details}" if path else str(details)


class ModelNameConverter(BaseConverter):
    """A model name in a URL: no "/" and no ":", so that ``GET .../sentiment:predict``
    matches only the predict rule (and gets 405) rather than the status rule."""

    regex = "[^/:]+"


def _setup(state: BlueprintSetupState) -> None:
    """Per app: the model-name converter, the predict request schema with the app's
    limits, and the error shape."""
    app = state.app
    app.url_map.converters["model"] = ModelNameConverter
    app.extensions[SCHEMA_KEY] = PredictRequestSchema(
        max_batch_size=app.config["MAX_BATCH_SIZE"],
        max_text_chars=app.config["MAX_TEXT_CHARS"],
    )
    app.extensions.setdefault(ERROR_BODIES, {})[ERROR_PREFIX] = tfserving_error_body


bp.record_once(_setup)


class VersionLabelNotFound(APIError):
    """TF Serving answers an unknown version label with INVALID_ARGUMENT, i.e. 400."""

    status = 400
    code = "unknown_version_label"


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
            raise VersionLabelNotFound(f"Unrecognized servable version label: {label}") from None
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
@bp.get("/<model:name>/versions/<int:version>")
@bp.get("/<model:name>/labels/<model:label>")
def model_status(name: str, version: int | None = None, label: str | None = None) -> dict[str, Any]:
    """Model status: every loaded version, or the one named. A worker serves only loaded
    versions, so each state is ``AVAILABLE``."""
    named = check_model(name, version, label)
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
@bp.get("/<model:name>/versions/<int:version>/metadata")
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
@bp.post("/<model:name>/versions/<int:version>:predict")
@bp.post("/<model:name>/labels/<model:label>:predict")
def predict(name: str, version: int | None = None, label: str | None = None) -> dict[str, Any]:
    """Class probabilities per text, in the model's class order (see ``GET /model``), from
    the named version, else the one ``ROUTING`` picks (as ``POST /classify``)."""
    named = check_model(name, version, label)
    data = validated(SCHEMA_KEY)
    row_format = "instances" in data
    texts = data["instances"] if row_format else data["inputs"]
    models = served_models()
    route = Route(named) if named else models.router.route(request.headers.get(ROUTING_KEY_HEADER))
    # Rows in the model's class order: the output tensor's rows.
    rows = models.run(route, texts).probabilities
    return {"predictions": rows} if row_format else {"outputs": rows}
