"""The Open Inference Protocol's REST API (KServe's "V2" protocol, which Seldon MLServer,
KServe and NVIDIA Triton speak), so that their clients work unchanged: ``tritonclient``'s
HTTP client, MLServer's and KServe's, plain JSON.

- ``GET  /v2``, ``/v2/health/live``, ``/v2/health/ready``: the server
- ``GET  /v2/models/<name>[/versions/<v>]``: the model's metadata (its tensors)
- ``GET  /v2/models/<name>[/versions/<v>]/ready``
- ``POST /v2/models/<name>[/versions/<v>]/infer``: a ``BYTES`` input ``review`` of
  shape ``[n]`` (or ``[n, 1]``) holding n texts; outputs ``probabilities`` (``FP32``,
  ``[n, classes]``, the model's class order) and ``label`` (``BYTES``, ``[n]``)

Inference goes through the same path as ``POST /classify`` (``ServedModels.run``): the
same limits, routing when no version is named, request log, metrics and prediction
records. Triton's binary tensor extension (which ``tritonclient`` uses unless told not
to) is read and written: an ``Inference-Header-Content-Length`` header gives the JSON
part's length, an input's ``binary_data_size`` parameter says its bytes follow the JSON,
and an output asked for with ``binary_data`` (or every output, with the request parameter
``binary_data_output``) is sent the same way: ``FP32`` as little-endian floats, ``BYTES``
as each element's 4-byte little-endian length and then its UTF-8. A body compressed with
gzip or deflate (``Content-Encoding``, as tritonclient sends it when asked) is inflated,
within ``MAX_CONTENT_LENGTH``. Errors have the protocol's shape, ``{"error": "<message>"}``.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState
from marshmallow import ValidationError

from app.serving.predictor import Classification, Predictor
from app.serving.registry import UnknownVersion
from app.web.api import app_request_schemas
from app.web.errors import ERROR_BODIES, APIError, ModelNotFound, ValidationFailed
from app.web.models import ROUTING_KEY_HEADER, served_models, stable_predictor
from app.web.openapi import API_VERSION
from app.web.request_log import current_record
from app.web.schemas import (
    V2_EXTENSIONS,
    V2_OUTPUTS,
    V2_PROBABILITIES,
    V2_SERVER_NAME,
    v2_tensors,
)
from app.web.tfserving import tfserving_error_body

bp = Blueprint("open_inference", __name__, url_prefix="/v2")

ERROR_PREFIX = "/v2/"
HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY = "application/octet-stream"
_DIGITS = re.compile(r"[0-9]{1,12}")


class InvalidBody(APIError):
    """A body that the protocol cannot read: a bad binary part, tensor or parameter."""

    status = 400
    code = "invalid_argument"


def _setup(state: BlueprintSetupState) -> None:
    """Per app: the protocol's error shape under /v2/ (TF Serving's: one message)."""
    state.app.extensions.setdefault(ERROR_BODIES, {})[ERROR_PREFIX] = tfserving_error_body


bp.record_once(_setup)


@bp.get("")
def server_metadata() -> dict[str, Any]:
    return {"name": V2_SERVER_NAME, "version": API_VERSION, "extensions": V2_EXTENSIONS}


@bp.get("/health/live")
def live() -> dict[str, bool]:
    return {"live": True}


@bp.get("/health/ready")
def ready() -> dict[str, bool]:
    # A worker serves requests only once every version has loaded and passed its checks.
    return {"ready": True}


def named_version(name: str, version: str | None) -> Predictor | None:
    """The version the URL names, or None when it names none; 404 for another model or
    a version that is not loaded."""
    registry = served_models().registry
    if name != registry.name:
        raise ModelNotFound(f"Model {name!r} is not served; this server serves {registry.name!r}.")
    if version is None:
        return None
    try:
        return registry.version(version)
    except UnknownVersion:
        loaded = ", ".join(registry.versions)
        raise ModelNotFound(f"Version {version!r} of {name!r} is not loaded ({loaded}).") from None


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
    """The tensors of the named version (default: stable); ``versions`` lists every loaded
    version, or the one named."""
    named = named_version(name, version)
    predictor = named or stable_predictor()
    return {
        "name": predictor.bundle.name,
        "versions": [named.bundle.version] if named else list(served_models().registry.versions),
        "platform": predictor.backend,
        **v2_tensors(len(predictor.bundle.classes)),
    }


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> dict[str, Any]:
    named_version(name, version)
    return {"name": name, "ready": True}


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response | dict[str, Any]:
    """Class probabilities and labels for the texts of the input ``review``, from the
    named version, else the one ``ROUTING`` picks (as ``POST /classify``)."""
    named = named_version(name, version)
    payload, binary = read_body()
    schemas = app_request_schemas()
    try:
        data = schemas.infer.load(payload)
    except ValidationError as error:
        raise ValidationFailed(details=error.normalized_messages()) from None
    texts = input_texts(data["inputs"][0], binary)
    try:
        schemas.infer_texts.deserialize(texts)
    except ValidationError as error:
        raise ValidationFailed(details={"inputs": {0: {"data": error.messages}}}) from None
    outputs = requested_outputs(data)
    models = served_models()
    route = models.route_to(named, request.headers.get(ROUTING_KEY_HEADER))
    result = models.run(route, texts)
    return infer_response(result, data.get("id", current_record().request_id), outputs)


def read_body() -> tuple[Any, bytes]:
    """The JSON part of the body, and the binary part after it (the binary tensor
    extension), read whatever the Content-Type, as Triton reads it."""
    raw = request.get_data()  # inflated from gzip or deflate (``APIRequest``)
    length = request.headers.get(HEADER_LENGTH)
    if length is None:
        return parse_json(raw), b""
    if not _DIGITS.fullmatch(length.strip()) or int(length) > len(raw):
        raise InvalidBody(
            f"{HEADER_LENGTH} {length!r} is not the length of the body's JSON part "
            f"(the body has {len(raw)} bytes)."
        )
    return parse_json(raw[: int(length)]), raw[int(length) :]


def parse_json(raw: bytes) -> Any:
    try:
        return current_app.json.loads(raw)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError among them
        return request.on_json_loading_failed(error)  # raises InvalidJSON


def input_texts(tensor: dict[str, Any], binary: bytes) -> list[str]:
    """The texts of the input tensor: its ``data``, or its bytes in the binary part."""
    shape = tensor["shape"]
    if len(shape) == 2 and shape[1] != 1:
        raise InvalidBody(f"Input shape {shape}: send one text per row, [n] or [n, 1].")
    size = tensor.get("parameters", {}).get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise InvalidBody("Input 'review' has both 'data' and 'binary_data_size'.")
        if type(size) is not int or size != len(binary):
            raise InvalidBody(
                f"Input 'review' has binary_data_size {size!r}, but {len(binary)} bytes "
                "follow the JSON part."
            )
        texts = unpack_bytes(binary)
    elif binary:
        raise InvalidBody(f"{len(binary)} bytes follow the JSON part, but no input claims them.")
    elif "data" not in tensor:
        raise InvalidBody("Input 'review' has no 'data' (nor 'binary_data_size').")
    else:
        texts = flat_texts(tensor["data"], len(shape))
    if len(texts) != shape[0]:
        raise InvalidBody(f"Input 'review' has shape {shape}, but its data holds {len(texts)}.")
    return texts


def flat_texts(data: list[Any], rank: int) -> list[str]:
    """``data`` as a flat list of texts: flat already, or nested as a ``[n, 1]`` shape."""
    if rank == 2 and data and all(isinstance(row, list) and len(row) == 1 for row in data):
        data = [row[0] for row in data]
    if not all(isinstance(text, str) for text in data):
        raise InvalidBody("Input 'review' data must hold texts (strings), one per row.")
    return data


def unpack_bytes(buffer: bytes) -> list[str]:
    """A ``BYTES`` tensor's binary form: each element's 4-byte little-endian length and
    then its bytes; each must be UTF-8 text."""
    texts, offset = [], 0
    while offset < len(buffer):
        if offset + 4 > len(buffer):
            raise InvalidBody("Input 'review' binary data ends inside an element's length.")
        (size,) = struct.unpack_from("<I", buffer, offset)
        start, offset = offset + 4, offset + 4 + size
        if offset > len(buffer):
            raise InvalidBody(f"Input 'review' binary element {len(texts)} is cut short.")
        try:
            texts.append(buffer[start:offset].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidBody(f"Input 'review' element {len(texts)} is not UTF-8 text.") from None
    return texts


def pack_bytes(texts: list[str]) -> bytes:
    """``unpack_bytes``'s inverse."""
    parts = []
    for text in texts:
        encoded = text.encode("utf-8")
        parts += [struct.pack("<I", len(encoded)), encoded]
    return b"".join(parts)


def binary_flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidBody(f"Parameter {key!r} must be true or false, not {value!r}.")
    return value


def requested_outputs(data: dict[str, Any]) -> list[tuple[str, bool]]:
    """The outputs to send, each with whether it goes in the binary part: those asked
    for, else every one (binary if the request's ``binary_data_output`` says so)."""
    default = binary_flag(data.get("parameters", {}), "binary_data_output", False)
    asked = data.get("outputs")
    if not asked:
        return [(name, default) for name in V2_OUTPUTS]
    names = [output["name"] for output in asked]
    if len(set(names)) != len(names):
        raise InvalidBody("An output is asked for twice.")
    return [
        (output["name"], binary_flag(output.get("parameters", {}), "binary_data", default))
        for output in asked
    ]


def infer_response(
    result: Classification, request_id: str, outputs: list[tuple[str, bool]]
) -> Response | dict[str, Any]:
    """The protocol's response, JSON only, or JSON and then the binary part."""
    count = len(result.labels)
    body: dict[str, Any] = {
        "model_name": result.name,
        "model_version": result.version,
        "id": request_id,
        "outputs": [],
    }
    chunks = []
    for name, binary in outputs:
        if name == V2_PROBABILITIES:
            tensor = {"name": name, "datatype": "FP32", "shape": [count, len(result.classes)]}
            values: list[Any] = [value for row in result.probabilities for value in row]
            chunk = np.asarray(values, dtype="<f4").tobytes() if binary else b""
        else:
            tensor = {"name": name, "datatype": "BYTES", "shape": [count]}
            values = list(result.labels)
            chunk = pack_bytes(values) if binary else b""
        if binary:
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = values
        body["outputs"].append(tensor)
    if not chunks:
        return body
    header = current_app.json.dumps(body).encode("utf-8")
    return Response(
        header + b"".join(chunks), content_type=BINARY, headers={HEADER_LENGTH: str(len(header))}
    )
