"""Marshmallow schemas: what requests must look like, and what responses look like.

Request schemas are built per app (``request_schemas``), because their limits come from
the app's config. Every rule is a marshmallow validator (``Length``, ``Regexp``,
``OneOf``), which is what the server runs and what apispec writes into the OpenAPI
document: the document cannot state other limits than those enforced. A body that is one
of several shapes (``review`` or ``reviews``; ``instances`` or ``inputs``) is one schema
per shape, told apart by the key it carries (``KeyedRequest``), and documented as
``oneOf`` of them, which code generators turn into one typed model per shape.

Response schemas exist for the OpenAPI document: views build plain dicts on the hot path.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from app.serving.texts import BLANK_MESSAGE, NOT_BLANK_PATTERN, TOO_LONG_MESSAGE

EXAMPLE_REVIEW = "The crew was friendly and the flight left on time. Great job!"
OTHER_REVIEW = "Two hours on the tarmac and no food. Never again."

# The one signature this server has, as TF Serving names a SavedModel's default one. An
# empty ``signature_name`` means the default, as in TF Serving.
SERVING_SIGNATURE = "serving_default"
# The signature's input tensor: one review text per row (DT_STRING, shape [-1]).
TF_INPUT_NAME = "review"
# TF Serving's binary values: ``{"b64": "<base64>"}`` (api_rest.md, "Encoding binary values").
BASE64_KEY = "b64"
# Standard base64 (RFC 4648 §4) as TF Serving decodes it (absl's decoder): padding
# optional, and ASCII whitespace skipped anywhere, so that MIME-style encoders' line breaks
# every 76 characters (Python's base64.encodebytes, Java's getMimeEncoder) are read.
_COMPACT_BASE64 = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?"
_SPACES = r"[\t\n\v\f\r ]*"
# The same with the spaces, for the OpenAPI document: 0.2 s to check 1 MB, against
# 0.02 s for the compact one once the spaces are gone (``Base64Pattern``).
BASE64_PATTERN = (
    "^"
    + _SPACES
    + _COMPACT_BASE64.replace("[A-Za-z0-9+/]", rf"(?:[A-Za-z0-9+/]{_SPACES})").replace(
        "=", rf"(?:={_SPACES})"
    )
    + "$"
)
_NO_SPACES = str.maketrans("", "", "\t\n\v\f\r ")


class Base64Pattern(validate.Regexp):
    """``BASE64_PATTERN``, checked as the compact pattern once the spaces are removed."""

    _compact = re.compile(_COMPACT_BASE64)

    def __init__(self, error: str):
        super().__init__(BASE64_PATTERN, error=error)

    def __call__(self, value: str) -> str:
        if self._compact.fullmatch(value.translate(_NO_SPACES)) is None:
            raise ValidationError(self._format_error(value))
        return value


class WholeMatch(validate.Regexp):
    """``Regexp`` matched against the whole value: marshmallow's ``re.match`` lets a
    pattern's ``$`` match before a final newline, so a request id read from a log line
    with its ``\n`` passed the check (and was then not found)."""

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class CountedLength(validate.Length):
    """``Length`` whose messages may say the length found: ``{length}``."""

    def _format_error(self, value: Any, message: str) -> str:
        return (self.error or message).format(
            input=value, min=self.min, max=self.max, equal=self.equal, length=len(value)
        )


class TextLength(CountedLength):
    message_max = TOO_LONG_MESSAGE


class BatchLength(CountedLength):
    message_max = "Send at most {max} reviews (got {length})."
    message_all = "Send between {min} and {max} reviews (got {length})."


class BatchList(fields.List):
    """A list of texts whose length (its ``BatchLength``) is checked before its items:
    a 1 KB gzipped body of 349,000 blank texts had each refused, in a 25 MB answer that
    kept its worker for five seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list):
            for validator in self.validators:
                if isinstance(validator, BatchLength):
                    validator(value)
        return super()._deserialize(value, attr, data, **kwargs)


def review_text(max_chars: int, *, allow_blank: bool = False, **kwargs: Any) -> fields.String:
    """One review text: at most ``max_chars`` characters and, unless ``allow_blank``, some
    character that is not whitespace (``app.serving.texts``)."""
    rules: list[validate.Validator] = [TextLength(max=max_chars)]
    if not allow_blank:
        rules.insert(0, validate.Regexp(NOT_BLANK_PATTERN, error=BLANK_MESSAGE))
    return fields.String(validate=rules, **kwargs)


class OneOfShapes(fields.Field):
    """A value that takes one of several shapes: ``choose`` picks the alternative that
    deserializes it (by its JSON type), and the document shows ``oneOf`` the alternatives
    (``app.web.openapi`` reads ``alternatives``)."""

    def __init__(
        self, alternatives: list[fields.Field], choose: Callable[[Any], int], **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.alternatives = alternatives
        self.choose = choose

    def _bind_to_schema(self, field_name: str, parent: Any) -> None:
        super()._bind_to_schema(field_name, parent)
        self.alternatives = [copy.deepcopy(field) for field in self.alternatives]
        for field in self.alternatives:
            field._bind_to_schema(field_name, self)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.alternatives[self.choose(value)].deserialize(value, attr, data, **kwargs)


def is_base64_object(value: Any) -> bool:
    """TF Serving's test for a binary value: an object whose only key is ``b64``, a string."""
    return (
        isinstance(value, dict)
        and list(value) == [BASE64_KEY]
        and isinstance(value[BASE64_KEY], str)
    )


def decode_base64_text(value: str) -> str:
    """The text that ``value`` encodes (base64 of UTF-8), or a ``ValidationError``."""
    value = value.translate(_NO_SPACES)
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("Unable to base64 decode") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("The base64 value is not UTF-8 text.") from None


class Base64TextSchema(Schema):
    """A text sent as TF Serving sends binary values: ``{"b64": "<base64 of UTF-8>"}``.
    Loads as the decoded text, which must fit the text limit."""

    b64 = fields.String(
        required=True,
        validate=Base64Pattern(error="Unable to base64 decode"),
        metadata={
            "format": "byte",
            "description": "Base64 (RFC 4648, padding optional, ASCII whitespace skipped) of the "
            "UTF-8 text.",
            "example": base64.b64encode(EXAMPLE_REVIEW.encode()).decode(),
        },
    )

    def __init__(self, *, max_chars: int = 5000, **kwargs: Any):
        super().__init__(**kwargs)
        self.text_length = TextLength(max=max_chars)

    @post_load
    def _decode(self, data: dict[str, str], **kwargs: Any) -> str:
        try:
            return self.text_length(decode_base64_text(data[BASE64_KEY]))
        except ValidationError as error:
            raise ValidationError(error.messages, BASE64_KEY) from None


def tf_text(max_chars: int, base64_schema: Base64TextSchema, **kwargs: Any) -> OneOfShapes:
    """One text in a TF Serving request: a string (blank allowed, as in TF Serving) or a
    ``{"b64": ...}`` object."""
    return OneOfShapes(
        [review_text(max_chars, allow_blank=True), fields.Nested(base64_schema)],
        choose=lambda value: 1 if isinstance(value, dict) else 0,
        **kwargs,
    )


class ClassifyRequestSchema(Schema):
    """``POST /classify``: unknown fields are refused (additionalProperties: false)."""


class ProtocolRequestSchema(Schema):
    """Request objects of another server's protocol (TF Serving's, the Open Inference
    Protocol's): unknown keys are ignored, as those servers ignore them (and add their own
    parameters)."""

    class Meta:
        unknown = EXCLUDE


@dataclass(frozen=True)
class KeyedRequest:
    """A request body that is one of several schemas, told apart by the key it carries."""

    alternatives: dict[str, Schema]
    missing: str  # the message when the body has none of the keys
    several: str  # the message when it has more than one

    def load(self, payload: Any) -> tuple[str, dict[str, Any]]:
        """The key found and the body loaded by its schema, or a ``ValidationError``."""
        if not isinstance(payload, dict):
            next(iter(self.alternatives.values())).load(payload)  # marshmallow's own error
        keys = [key for key in self.alternatives if key in payload]
        if len(keys) != 1:
            raise ValidationError(self.several if keys else self.missing, "_schema")
        return keys[0], self.alternatives[keys[0]].load(payload)


# The Open Inference Protocol's server and tensors (``app.web.open_inference``).
V2_SERVER_NAME = "sentiment-server"
V2_EXTENSIONS = ["binary_tensor_data"]
V2_INPUT_DATATYPE = "BYTES"
V2_PROBABILITIES = "probabilities"
V2_LABEL = "label"
V2_OUTPUTS = (V2_PROBABILITIES, V2_LABEL)


def v2_tensors(classes: int) -> dict[str, list[dict[str, Any]]]:
    """The model's tensors as the protocol's model metadata names them."""
    return {
        "inputs": [{"name": TF_INPUT_NAME, "datatype": V2_INPUT_DATATYPE, "shape": [-1]}],
        "outputs": [
            {"name": V2_PROBABILITIES, "datatype": "FP32", "shape": [-1, classes]},
            {"name": V2_LABEL, "datatype": "BYTES", "shape": [-1]},
        ],
    }


@dataclass(frozen=True)
class RequestSchemas:
    """One app's request schemas; ``components`` names them for the OpenAPI document."""

    classify: KeyedRequest
    predict: KeyedRequest
    explain: Schema
    infer: Schema  # the Open Inference Protocol's request
    infer_texts: fields.List  # its texts, once read from its input tensor
    components: dict[str, Schema]


def fixed_string(value: str, error: str) -> fields.String:
    """A required string that must be ``value`` (``error``: marshmallow's ``Equal``
    message, with ``{input}`` and ``{other}``)."""
    return fields.String(
        required=True, validate=validate.Equal(value, error=error), metadata={"example": value}
    )


def request_schemas(max_batch_size: int, max_text_chars: int) -> RequestSchemas:
    """The request schemas with these limits (the app's ``MAX_BATCH_SIZE`` and
    ``MAX_TEXT_CHARS``)."""
    batch = BatchLength(min=1, max=max_batch_size)
    texts = [EXAMPLE_REVIEW, OTHER_REVIEW]

    classify_one = ClassifyRequestSchema.from_dict(
        {
            "review": review_text(
                max_text_chars,
                required=True,
                metadata={"description": "One text to classify.", "example": EXAMPLE_REVIEW},
            )
        },
        name="ClassifyOneRequest",
    )()
    classify_batch = ClassifyRequestSchema.from_dict(
        {
            "reviews": BatchList(
                review_text(max_text_chars),
                required=True,
                validate=batch,
                metadata={
                    "description": "Several texts (1 to MAX_BATCH_SIZE), answered in input order.",
                    "example": texts,
                },
            )
        },
        name="ClassifyBatchRequest",
    )()

    explain = ClassifyRequestSchema.from_dict(
        {
            "review": review_text(
                max_text_chars,
                required=True,
                metadata={"description": "The text to explain.", "example": EXAMPLE_REVIEW},
            )
        },
        name="ExplainRequest",
    )()

    base64_text = Base64TextSchema(max_chars=max_text_chars)
    signature_name = fields.String(
        validate=validate.OneOf(
            [SERVING_SIGNATURE, ""],
            error='Serving signature name: "{input}" not found in signature def',
        ),
        metadata={"description": f"Optional; empty or absent means {SERVING_SIGNATURE!r}."},
    )
    # Row format with one named input: {"review": <text>} per instance, no other key.
    instance = Schema.from_dict(
        {TF_INPUT_NAME: tf_text(max_text_chars, base64_text, required=True)},
        name="TFInstance",
    )()
    named_inputs = ProtocolRequestSchema.from_dict(
        {
            TF_INPUT_NAME: BatchList(
                tf_text(max_text_chars, base64_text),
                required=True,
                validate=BatchLength(max=max_batch_size),
                metadata={"description": "The input tensor: one review text per row."},
            )
        },
        name="TFNamedInputs",
    )()
    predict_row = ProtocolRequestSchema.from_dict(
        {
            "signature_name": signature_name,
            "instances": OneOfShapes(
                [
                    BatchList(tf_text(max_text_chars, base64_text), validate=batch),
                    BatchList(fields.Nested(instance), validate=batch),
                ],
                choose=_instances_shape,
                required=True,
                metadata={
                    "description": "Row format: one review text per instance, or one "
                    f"object naming the input ({{{TF_INPUT_NAME!r}: text}}) per instance.",
                    "example": texts,
                },
            ),
        },
        name="TFPredictRowRequest",
    )()
    predict_column = ProtocolRequestSchema.from_dict(
        {
            "signature_name": signature_name,
            "inputs": OneOfShapes(
                [
                    BatchList(
                        tf_text(max_text_chars, base64_text),
                        validate=BatchLength(max=max_batch_size),
                    ),
                    fields.Nested(named_inputs),
                ],
                choose=lambda value: 1 if isinstance(value, dict) else 0,
                required=True,
                metadata={
                    "description": "Column format: the input tensor (a list of review "
                    "texts), bare or named.",
                    "example": {TF_INPUT_NAME: texts},
                },
            ),
        },
        name="TFPredictColumnRequest",
    )()

    def parameters(description: str) -> fields.Dict:
        """The protocol's ``parameters`` object: named values, others ignored."""
        return fields.Dict(keys=fields.String(), metadata={"description": description})

    infer_input = ProtocolRequestSchema.from_dict(
        {
            "name": fixed_string(
                TF_INPUT_NAME, "Unknown input {input!r}: the model's input is {other!r}."
            ),
            "shape": fields.List(
                fields.Integer(strict=True, validate=validate.Range(min=0)),
                required=True,
                validate=validate.Length(min=1, max=2),
                metadata={"description": "`[n]` or `[n, 1]`: n texts.", "example": [2]},
            ),
            "datatype": fixed_string(
                V2_INPUT_DATATYPE, "Datatype {input!r}: the input is {other!r} (texts)."
            ),
            "parameters": parameters(
                "`binary_data_size`: the input's bytes after the JSON "
                "(binary tensor extension) instead of `data`."
            ),
            "data": BatchList(
                fields.Raw(),
                validate=batch,
                metadata={
                    "description": "The texts (UTF-8 strings), flat or nested as `shape`; "
                    "as many as `shape` says.",
                    "example": texts,
                },
            ),
        },
        name="V2RequestInput",
    )()
    infer_output = ProtocolRequestSchema.from_dict(
        {
            "name": fields.String(
                required=True,
                validate=validate.OneOf(V2_OUTPUTS, error="Unknown output {input!r}: {choices}."),
                metadata={"example": V2_PROBABILITIES},
            ),
            "parameters": parameters("`binary_data`: true sends it after the JSON."),
        },
        name="V2RequestOutput",
    )()
    infer = ProtocolRequestSchema.from_dict(
        {
            "id": fields.String(metadata={"description": "Echoed in the response."}),
            "parameters": parameters("Optional; see `binary_data` and `binary_data_output`."),
            "inputs": fields.List(
                fields.Nested(infer_input),
                required=True,
                validate=validate.Length(equal=1, error=f"Send one input, {TF_INPUT_NAME!r}."),
            ),
            "outputs": fields.List(
                fields.Nested(infer_output),
                metadata={"description": "Optional; absent means every output."},
            ),
        },
        name="V2InferenceRequest",
    )()

    return RequestSchemas(
        classify=KeyedRequest(
            {"review": classify_one, "reviews": classify_batch},
            missing="Send exactly one of 'review' or 'reviews'.",
            several="Send exactly one of 'review' or 'reviews'.",
        ),
        predict=KeyedRequest(
            {"instances": predict_row, "inputs": predict_column},
            missing="Missing 'inputs' or 'instances' key",
            several="Not formatted correctly: expecting only one of 'inputs' or 'instances' "
            "keys to exist",
        ),
        explain=explain,
        infer=infer,
        infer_texts=BatchList(review_text(max_text_chars), validate=batch),
        components={
            "ClassifyOneRequest": classify_one,
            "ExplainRequest": explain,
            "ClassifyBatchRequest": classify_batch,
            "TFBase64Text": base64_text,
            "TFInstance": instance,
            "TFNamedInputs": named_inputs,
            "TFPredictRowRequest": predict_row,
            "TFPredictColumnRequest": predict_column,
            "V2RequestInput": infer_input,
            "V2RequestOutput": infer_output,
            "V2InferenceRequest": infer,
        },
    )


def _instances_shape(value: Any) -> int:
    """TF Serving reads ``instances`` as objects (one per row) when the first one is an
    object other than a binary value; else as values."""
    first = value[0] if isinstance(value, list) and value else None
    return 1 if isinstance(first, dict) and not is_base64_object(first) else 0


# --- Responses (documentation only) ---------------------------------------------------


class ResponseSchema(Schema):
    """A response body: every property is always present."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.required = True


class ModelRefSchema(ResponseSchema):
    name = fields.String(metadata={"example": "sentiment"})
    version = fields.String(metadata={"example": "1"})


class PredictionSchema(ResponseSchema):
    label = fields.String(metadata={"description": "The most probable class."})
    score = fields.Float(metadata={"description": "The probability of `label`."})
    scores = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata={"description": "The probability of every class; they sum to 1."},
    )


class ClassifyResponseSchema(PredictionSchema):
    model = fields.Nested(ModelRefSchema)


class ClassifyBatchResponseSchema(ResponseSchema):
    predictions = fields.List(fields.Nested(PredictionSchema))
    model = fields.Nested(ModelRefSchema)


class TokenContributionSchema(ResponseSchema):
    token = fields.String(
        metadata={
            "description": "A token as the model sees it (lower case; `xxurl` for a link, "
            "`xxrating-2` for a rating such as 1/5…)."
        }
    )
    contributions = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata={
            "description": "Per class: probability with the token minus without it "
            "(positive: it pushed toward the class)."
        },
    )


class ExplainResponseSchema(PredictionSchema):
    tokens = fields.List(
        fields.Nested(TokenContributionSchema),
        metadata={"description": "The tokens the model sees, in reading order."},
    )
    unseen_tokens = fields.Integer(
        metadata={
            "description": "Tokens the model does not read (they change nothing): past its "
            "input length, or in the middle windows a transformer skips in a very long text."
        }
    )
    unseen_at = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Where the unread tokens are: before `tokens[unseen_at]` (the "
            "length of `tokens` when they are past the input length, less for a skipped "
            "middle); null when the model read every token."
        },
    )
    method = fields.String(metadata={"enum": ["occlusion"]})
    model = fields.Nested(ModelRefSchema)


class ErrorDetailSchema(ResponseSchema):
    code = fields.String(metadata={"example": "validation_error"})
    message = fields.String(metadata={"example": "The request body does not match the schema."})
    details = fields.Dict(metadata={"description": "Per-field messages, where there are any."})


class ErrorSchema(ResponseSchema):
    error = fields.Nested(ErrorDetailSchema)


class HealthSchema(ResponseSchema):
    status = fields.String(metadata={"example": "ok"})


class ReadySchema(ResponseSchema):
    status = fields.String(metadata={"example": "ready"})
    model = fields.Nested(ModelRefSchema, metadata={"description": "The stable version."})
    versions = fields.List(
        fields.String(), metadata={"description": "Every loaded version.", "example": ["1", "2"]}
    )


class LimitsSchema(ResponseSchema):
    max_batch_size = fields.Integer(metadata={"example": 64})
    max_text_chars = fields.Integer(metadata={"example": 5000})
    max_content_length = fields.Integer(metadata={"description": "Bytes.", "example": 1048576})


class VersionInfoSchema(ResponseSchema):
    name = fields.String(metadata={"example": "sentiment"})
    version = fields.String(metadata={"example": "1"})
    classes = fields.List(
        fields.String(), metadata={"example": ["negative", "neutral", "positive"]}
    )
    created_at = fields.String(allow_none=True, metadata={"description": "When it was trained."})
    metrics = fields.Dict(metadata={"description": "Evaluation metrics from training."})
    inference_precision = fields.String(
        metadata={
            "description": "What this worker computes the version in (`INFERENCE_PRECISION`; "
            "f32 where the CPU lacks bf16).",
            "enum": ["f32", "bf16", "int8"],
            "example": "f32",
        }
    )


class LoadedVersionSchema(VersionInfoSchema):
    labels = fields.List(fields.String(), metadata={"example": ["stable"]})


class RoutingSchema(ResponseSchema):
    policy = fields.String(metadata={"enum": ["stable", "canary", "shadow"]})
    canary_percent = fields.Float(metadata={"example": 10})
    shadow_percent = fields.Float(metadata={"example": 100})


class ModelInfoSchema(VersionInfoSchema):
    """The stable version at the top level, then every loaded version."""

    backend = fields.String(metadata={"example": "openvino"})
    limits = fields.Nested(LimitsSchema)
    libraries = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "Versions of the libraries on the inference path."},
    )
    versions = fields.List(fields.Nested(LoadedVersionSchema))
    labels = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "Label → version.", "example": {"stable": "1"}},
    )
    routing = fields.Nested(RoutingSchema)


# --- The TensorFlow-Serving-compatible API (``/v1/models/...``) ---------------------------


class TFStatusSchema(ResponseSchema):
    error_code = fields.String(metadata={"example": "OK"})
    error_message = fields.String(metadata={"example": ""})


class TFModelVersionStatusSchema(ResponseSchema):
    version = fields.String(metadata={"example": "1"})
    state = fields.String(
        metadata={
            "description": "AVAILABLE: a worker serves only loaded versions.",
            "enum": ["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"],
        }
    )
    status = fields.Nested(TFStatusSchema)


class TFModelStatusSchema(ResponseSchema):
    """TF Serving's ``GetModelStatusResponse`` as JSON."""

    model_version_status = fields.List(fields.Nested(TFModelVersionStatusSchema))


class TFModelSpecSchema(ResponseSchema):
    name = fields.String(metadata={"example": "sentiment"})
    signature_name = fields.String(metadata={"example": ""})
    version = fields.String(metadata={"example": "1"})


class TFDimSchema(ResponseSchema):
    size = fields.String(metadata={"description": "An int64, as a string; -1: any size."})
    name = fields.String()


class TFTensorShapeSchema(ResponseSchema):
    dim = fields.List(fields.Nested(TFDimSchema))
    unknown_rank = fields.Boolean()


class TFTensorInfoSchema(ResponseSchema):
    dtype = fields.String(metadata={"example": "DT_STRING"})
    tensor_shape = fields.Nested(TFTensorShapeSchema)
    name = fields.String(metadata={"example": "serving_default_review:0"})


class TFSignatureDefSchema(ResponseSchema):
    inputs = fields.Dict(keys=fields.String(), values=fields.Nested(TFTensorInfoSchema))
    outputs = fields.Dict(keys=fields.String(), values=fields.Nested(TFTensorInfoSchema))
    method_name = fields.String(metadata={"example": "tensorflow/serving/predict"})
    defaults = fields.Dict()


class TFSignatureDefMapSchema(ResponseSchema):
    signature_def = fields.Dict(keys=fields.String(), values=fields.Nested(TFSignatureDefSchema))


class TFMetadataSchema(ResponseSchema):
    signature_def = fields.Nested(TFSignatureDefMapSchema)


class TFModelMetadataSchema(ResponseSchema):
    """TF Serving's ``GetModelMetadataResponse`` as JSON."""

    model_spec = fields.Nested(TFModelSpecSchema)
    metadata = fields.Nested(TFMetadataSchema)


class TFPredictRowResponseSchema(ResponseSchema):
    predictions = fields.List(
        fields.List(fields.Float()),
        metadata={"description": "One row of class probabilities per instance."},
    )


class TFPredictColumnResponseSchema(ResponseSchema):
    outputs = fields.List(
        fields.List(fields.Float()),
        metadata={"description": "The output tensor: one row of class probabilities per input."},
    )


class TFErrorSchema(ResponseSchema):
    """TF Serving's error body: ``{"error": "<message>"}``."""

    error = fields.String(metadata={"example": "Servable not found for request: Latest(foo)"})


class V2ErrorSchema(ResponseSchema):
    """The Open Inference Protocol's error body: ``{"error": "<message>"}``."""

    error = fields.String(
        metadata={"example": "Model 'half' is not served; this server serves 'sentiment'."}
    )


class V2ServerMetadataSchema(ResponseSchema):
    name = fields.String(metadata={"example": "sentiment-server"})
    version = fields.String(metadata={"example": "1.0.0"})
    extensions = fields.List(fields.String(), metadata={"example": ["binary_tensor_data"]})


class V2LiveSchema(ResponseSchema):
    live = fields.Boolean(metadata={"example": True})


class V2ReadySchema(ResponseSchema):
    ready = fields.Boolean(metadata={"example": True})


class V2ModelReadySchema(V2ReadySchema):
    name = fields.String(metadata={"example": "sentiment"})


class V2TensorMetadataSchema(ResponseSchema):
    name = fields.String(metadata={"example": TF_INPUT_NAME})
    datatype = fields.String(metadata={"example": V2_INPUT_DATATYPE})
    shape = fields.List(fields.Integer(), metadata={"example": [-1]})


class V2ModelMetadataSchema(ResponseSchema):
    name = fields.String(metadata={"example": "sentiment"})
    versions = fields.List(fields.String(), metadata={"example": ["1", "2"]})
    platform = fields.String(metadata={"description": "The serving backend: `openvino`."})
    inputs = fields.List(fields.Nested(V2TensorMetadataSchema))
    outputs = fields.List(fields.Nested(V2TensorMetadataSchema))


class V2ResponseOutputSchema(V2TensorMetadataSchema):
    data = fields.List(
        fields.Raw(),
        metadata={
            "description": "Row-major: `probabilities` holds n × classes numbers, `label` n "
            "class names."
        },
    )


class V2InferenceResponseSchema(ResponseSchema):
    model_name = fields.String(metadata={"example": "sentiment"})
    model_version = fields.String(metadata={"example": "2"})
    id = fields.String(metadata={"description": "The request's `id`, else its X-Request-ID."})
    outputs = fields.List(fields.Nested(V2ResponseOutputSchema))


def repeated_parameters(args: Any, names: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The query parameters (of ``names``, else all) given more than once, as a 400's
    details: a schema would take the first value silently."""
    return {
        name: ["Given more than once."]
        for name in (args if names is None else names)
        if len(args.getlist(name)) > 1
    }


# --- Feedback and monitoring ----------------------------------------------------------

# A request id this server keeps (``app.web.request_log``): what Heroku's router keeps from a
# client, 20–200 characters of this alphabet; the ids it makes are 32 hex digits.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9+/=-]{20,200}$"


def feedback_item_schema(classes: list[str]) -> Schema:
    """One true label for one earlier prediction: ``request_id`` (the ``X-Request-ID`` the
    answer carried), ``index`` (the position in its batch, default 0) and ``label``."""
    return ClassifyRequestSchema.from_dict(
        {
            "request_id": fields.String(
                required=True,
                validate=WholeMatch(
                    REQUEST_ID_PATTERN, error="Send the X-Request-ID of an earlier answer."
                ),
                metadata={
                    "description": "The `X-Request-ID` header of the answer this is about.",
                    "example": "3f1c8e4ad39a4a55b4c5e1f1d2a7c901",
                },
            ),
            "index": fields.Integer(
                load_default=0,
                strict=True,
                validate=validate.Range(min=0, max=2**31 - 1),
                metadata={"description": "Position in the batch (default 0).", "example": 0},
            ),
            "label": fields.String(
                required=True,
                validate=validate.OneOf(classes, error="Must be one of: {choices}."),
                metadata={"description": "The true label.", "example": "positive"},
            ),
        },
        name="FeedbackItem",
    )()


# GET /feedback's ``after``: the ``next`` link's position, "<Unix seconds>_<row id>"
# (bounded, so that neither number can overflow a float, an int64 or int()).
FEEDBACK_CURSOR_PATTERN = r"^\d{1,12}(\.\d{1,20})?_\d{1,18}$"
FEEDBACK_PAGE_MAX = 1000


class FeedbackQuerySchema(Schema):
    """``GET /feedback``'s query parameters; unknown ones are refused (a misspelt filter
    must not export everything)."""

    version = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata={"description": "Only this version's answers.", "example": "2"},
    )
    correct = fields.Boolean(
        truthy={"true"},
        falsy={"false"},
        metadata={"description": "Only the right (`true`) or the wrong (`false`) answers."},
    )
    since = fields.AwareDateTime(
        default_timezone=dt.UTC,
        metadata={
            "description": "Only labels given at or after this time (ISO 8601; UTC unless "
            "it names an offset).",
            "example": "2026-12-01T00:00:00Z",
        },
    )
    after = fields.String(
        validate=WholeMatch(
            FEEDBACK_CURSOR_PATTERN, error="Send the `after` of a `next` link, unchanged."
        ),
        metadata={"description": "Where the page starts: take it from the last page's `next`."},
    )
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=FEEDBACK_PAGE_MAX),
        metadata={"description": f"Answers a page (1 to {FEEDBACK_PAGE_MAX}, default 100)."},
    )


class LabelledAnswerSchema(ResponseSchema):
    request_id = fields.String(metadata={"description": "The answer's `X-Request-ID`."})
    index = fields.Integer(metadata={"description": "Its position in the batch."})
    version = fields.String(metadata={"description": "The version that answered."})
    predicted = fields.String(metadata={"description": "Its label."})
    score = fields.Float(metadata={"description": "Its probability."})
    label = fields.String(metadata={"description": "The true label given."})
    correct = fields.Boolean()
    predicted_at = fields.String(metadata={"description": "When it answered (UTC, ISO 8601)."})
    feedback_at = fields.String(metadata={"description": "When the label came (UTC, ISO 8601)."})


class FeedbackPageSchema(ResponseSchema):
    feedback = fields.List(
        fields.Nested(LabelledAnswerSchema),
        metadata={"description": "In the order the labels came."},
    )
    more = fields.Boolean(metadata={"description": "More answers follow `next` now."})
    next = fields.String(
        metadata={
            "description": "This query from past the page's last answer: the next page, and "
            "(kept) the labels that come later."
        }
    )


class FeedbackResultSchema(ResponseSchema):
    request_id = fields.String()
    index = fields.Integer()
    version = fields.String(metadata={"description": "The version that answered."})
    predicted = fields.String(metadata={"description": "Its label."})
    label = fields.String(metadata={"description": "The true label given."})
    correct = fields.Boolean()
    repeated = fields.Boolean(
        metadata={"description": "The same label was given before: nothing changed."}
    )


class FeedbackResponseSchema(ResponseSchema):
    feedback = fields.List(fields.Nested(FeedbackResultSchema))


class LabelMixSchema(ResponseSchema):
    predictions = fields.Integer()
    shares = fields.Dict(keys=fields.String(), values=fields.Float())


class LabelMixesSchema(ResponseSchema):
    last_hour = fields.Nested(LabelMixSchema)
    last_day = fields.Nested(LabelMixSchema)
    training = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        allow_none=True,
        metadata={"description": "The training data's label mix (metadata.json), if recorded."},
    )


class DriftSchema(ResponseSchema):
    window = fields.String(metadata={"enum": ["last_day"]})
    reference = fields.String(
        allow_none=True, metadata={"description": "The test set the reference comes from."}
    )
    label_mix_psi = fields.Float(
        allow_none=True,
        metadata={"description": "PSI of the label mix against the reference (null: too few)."},
    )
    confidence_psi = fields.Float(
        allow_none=True,
        metadata={"description": "PSI of the confidence histogram against the reference."},
    )


class AgainstStableSchema(ResponseSchema):
    version = fields.String(metadata={"description": "The stable version."})
    accuracy_difference = fields.Float(
        metadata={"description": "This version's live accuracy minus the stable version's."}
    )
    interval = fields.List(
        fields.Float(),
        metadata={"description": "Its 95% interval (Newcombe's).", "minItems": 2, "maxItems": 2},
    )
    verdict = fields.String(
        metadata={
            "enum": ["better", "worse", "undecided"],
            "description": "better or worse when the interval excludes 0.",
        }
    )


class VersionMonitoringSchema(ResponseSchema):
    version = fields.String()
    predictions = fields.Integer(metadata={"description": "Recorded, within the retention."})
    feedback = fields.Integer(metadata={"description": "Of those, with a true label."})
    accuracy = fields.Float(allow_none=True, metadata={"description": "On the feedback."})
    accuracy_interval = fields.List(
        fields.Float(),
        allow_none=True,
        metadata={
            "description": "The accuracy's 95% interval (Wilson's score interval).",
            "minItems": 2,
            "maxItems": 2,
        },
    )
    macro_f1 = fields.Float(allow_none=True, metadata={"description": "On the feedback."})
    confusion = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        allow_none=True,
        metadata={"description": "Feedback counts: true label → predicted label → count."},
    )
    against_stable = fields.Nested(
        AgainstStableSchema,
        allow_none=True,
        metadata={"description": "Null for the stable version, and until both have feedback."},
    )
    label_mix = fields.Nested(LabelMixesSchema)
    drift = fields.Nested(DriftSchema)
    bandit_share = fields.Float(
        allow_none=True,
        metadata={"description": "ROUTING=bandit: the share of requests it gets now."},
    )


class MonitoringSchema(ResponseSchema):
    database = fields.String(metadata={"enum": ["sqlite", "postgresql"]})
    retention_days = fields.Float()
    routing = fields.String()
    versions = fields.List(fields.Nested(VersionMonitoringSchema))
