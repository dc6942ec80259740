"""Marshmallow schemas: what requests must look like, and what responses look like.

Request schemas validate (limits come from the app's config); response schemas exist
for the OpenAPI document — views build plain dicts on the hot path.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates, validates_schema

from app.serving.texts import review_text_problem

EXAMPLE_REVIEW = "The crew was friendly and the flight left on time. Great job!"


class ReviewsSchema(Schema):
    """Shared limits for anything that carries review texts."""

    def __init__(self, *, max_batch_size: int = 64, max_text_chars: int = 5000, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_batch_size = max_batch_size
        self.max_text_chars = max_text_chars

    def check_text(self, text: str) -> None:
        """One review: some non-space character, at most ``max_text_chars`` characters."""
        problem = review_text_problem(text, self.max_text_chars)
        if problem:
            raise ValidationError(problem)

    def check_texts(self, texts: list[str]) -> None:
        """A batch: 1 to ``max_batch_size`` reviews, each valid; errors keyed by index."""
        if not 1 <= len(texts) <= self.max_batch_size:
            raise ValidationError(
                f"Send between 1 and {self.max_batch_size} reviews (got {len(texts)})."
            )
        errors: dict[int, list[str]] = {}
        for index, text in enumerate(texts):
            try:
                self.check_text(text)
            except ValidationError as error:
                errors[index] = error.messages  # type: ignore[assignment]
        if errors:
            raise ValidationError(errors)  # type: ignore[arg-type]


class ClassifyRequestSchema(ReviewsSchema):
    """``POST /classify``: exactly one of ``review`` or ``reviews``."""

    review = fields.String(
        metadata={
            "description": "One text to classify.",
            "example": EXAMPLE_REVIEW,
            "x-texts": "one",
        }
    )
    reviews = fields.List(
        fields.String(),
        metadata={
            "description": "Several texts (1 to MAX_BATCH_SIZE), answered in input order.",
            "x-texts": "batch",
            "example": [EXAMPLE_REVIEW, "Two hours on the tarmac and no food. Never again."],
        },
    )

    @validates("review")
    def _validate_review(self, value: str, data_key: str) -> None:
        self.check_text(value)

    @validates("reviews")
    def _validate_reviews(self, value: list[str], data_key: str) -> None:
        self.check_texts(value)

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("review" in data) == ("reviews" in data):
            raise ValidationError("Send exactly one of 'review' or 'reviews'.", "_schema")


class ModelRefSchema(Schema):
    name = fields.String(metadata={"example": "sentiment"})
    version = fields.String(metadata={"example": "1"})


class PredictionSchema(Schema):
    label = fields.String(metadata={"description": "The most probable class."})
    score = fields.Float(metadata={"description": "The probability of `label`."})
    scores = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata={"description": "The probability of every class; they sum to 1."},
    )


class ClassifyResponseSchema(PredictionSchema):
    model = fields.Nested(ModelRefSchema)


class ClassifyBatchResponseSchema(Schema):
    predictions = fields.List(fields.Nested(PredictionSchema))
    model = fields.Nested(ModelRefSchema)


class ExplainRequestSchema(ReviewsSchema):
    """``POST /explain``: one review."""

    review = fields.String(
        required=True,
        metadata={
            "description": "The text to explain.",
            "example": EXAMPLE_REVIEW,
            "x-texts": "one",
        },
    )

    @validates("review")
    def _validate_review(self, value: str, data_key: str) -> None:
        self.check_text(value)


class TokenContributionSchema(Schema):
    token = fields.String(
        metadata={"description": "A token as the model sees it (lower case; `xxurl` for a link…)."}
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
        metadata={"description": "Tokens past the model's input length (they change nothing)."}
    )
    method = fields.String(metadata={"enum": ["occlusion"]})
    model = fields.Nested(ModelRefSchema)


class ErrorDetailSchema(Schema):
    code = fields.String(metadata={"example": "validation_error"})
    message = fields.String(metadata={"example": "The request body does not match the schema."})
    details = fields.Dict(metadata={"description": "Per-field messages, where there are any."})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema)


# --- Schemas of the other routes (documentation only, like the response schemas above) ---


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadySchema(Schema):
    status = fields.String(metadata={"example": "ready"})
    model = fields.Nested(ModelRefSchema, metadata={"description": "The stable version."})
    versions = fields.List(
        fields.String(), metadata={"description": "Every loaded version.", "example": ["1", "2"]}
    )


class LimitsSchema(Schema):
    max_batch_size = fields.Integer(metadata={"example": 64})
    max_text_chars = fields.Integer(metadata={"example": 5000})
    max_content_length = fields.Integer(metadata={"description": "Bytes.", "example": 1048576})


class VersionInfoSchema(Schema):
    name = fields.String(metadata={"example": "sentiment"})
    version = fields.String(metadata={"example": "1"})
    classes = fields.List(
        fields.String(), metadata={"example": ["negative", "neutral", "positive"]}
    )
    created_at = fields.String(allow_none=True, metadata={"description": "When it was trained."})
    metrics = fields.Dict(metadata={"description": "Evaluation metrics from training."})


class LoadedVersionSchema(VersionInfoSchema):
    labels = fields.List(fields.String(), metadata={"example": ["stable"]})


class RoutingSchema(Schema):
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

# The one signature this server has, as TF Serving names a SavedModel's default one. An
# empty ``signature_name`` means the default, as in TF Serving.
SERVING_SIGNATURE = "serving_default"
# The signature's input tensor: one review text per row (DT_STRING, shape [-1]).
TF_INPUT_NAME = "review"


class ColumnInputs(fields.Field):
    """TF Serving's column format for a one-input signature: the input's values as a list,
    or an object naming the input: ``["a", "b"]`` or ``{"review": ["a", "b"]}``."""

    _texts = fields.List(fields.String())

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, dict):
            if set(value) != {TF_INPUT_NAME}:
                raise ValidationError(
                    f"Name the one input of the signature: {{{TF_INPUT_NAME!r}: [...]}}."
                )
            value = value[TF_INPUT_NAME]
        return self._texts.deserialize(value)


class PredictRequestSchema(ReviewsSchema):
    """TF Serving ``:predict``: review texts in row (``instances``) or column (``inputs``)
    format; the same limits as ``POST /classify``."""

    signature_name = fields.String(
        metadata={
            "description": f"Optional; empty or absent means {SERVING_SIGNATURE!r}.",
            "enum": [SERVING_SIGNATURE, ""],
        }
    )
    instances = fields.List(
        fields.String(),
        metadata={
            "description": "Row format: one review text per instance.",
            "x-texts": "batch",
        },
    )
    inputs = ColumnInputs(
        metadata={
            "description": (
                "Column format: the input tensor (a list of review texts), bare or named."
            ),
            "oneOf": [
                {"type": "array", "items": {"type": "string"}, "x-texts": "batch"},
                {
                    "type": "object",
                    "properties": {
                        TF_INPUT_NAME: {
                            "type": "array",
                            "items": {"type": "string"},
                            "x-texts": "batch",
                        }
                    },
                    "required": [TF_INPUT_NAME],
                    "additionalProperties": False,
                },
            ],
        }
    )

    @validates("signature_name")
    def _validate_signature(self, value: str, data_key: str) -> None:
        if value not in ("", SERVING_SIGNATURE):
            raise ValidationError(f"Serving signature name: {value!r} not found in signature def")

    @validates("instances")
    def _validate_instances(self, value: list[str], data_key: str) -> None:
        self.check_texts(value)

    @validates("inputs")
    def _validate_inputs(self, value: list[str], data_key: str) -> None:
        self.check_texts(value)

    @validates_schema
    def _exactly_one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "instances" in data and "inputs" in data:
            raise ValidationError("Not both 'instances' and 'inputs' can be specified.", "_schema")
        if "instances" not in data and "inputs" not in data:
            raise ValidationError("Missing 'inputs' or 'instances' key.", "_schema")


class TFStatusSchema(Schema):
    error_code = fields.String(metadata={"example": "OK"})
    error_message = fields.String(metadata={"example": ""})


class TFModelVersionStatusSchema(Schema):
    version = fields.String(metadata={"example": "1"})
    state = fields.String(
        metadata={
            "description": "AVAILABLE: a worker serves only loaded versions.",
            "enum": ["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"],
        }
    )
    status = fields.Nested(TFStatusSchema)


class TFModelStatusSchema(Schema):
    """TF Serving's ``GetModelStatusResponse`` as JSON."""

    model_version_status = fields.List(fields.Nested(TFModelVersionStatusSchema))


class TFModelSpecSchema(Schema):
    name = fields.String(metadata={"example": "sentiment"})
    signature_name = fields.String(metadata={"example": ""})
    version = fields.String(metadata={"example": "1"})


class TFDimSchema(Schema):
    size = fields.String(metadata={"description": "An int64, as a string; -1: any size."})
    name = fields.String()


class TFTensorShapeSchema(Schema):
    dim = fields.List(fields.Nested(TFDimSchema))
    unknown_rank = fields.Boolean()


class TFTensorInfoSchema(Schema):
    dtype = fields.String(metadata={"example": "DT_STRING"})
    tensor_shape = fields.Nested(TFTensorShapeSchema)
    name = fields.String(metadata={"example": "serving_default_review:0"})


class TFSignatureDefSchema(Schema):
    inputs = fields.Dict(keys=fields.String(), values=fields.Nested(TFTensorInfoSchema))
    outputs = fields.Dict(keys=fields.String(), values=fields.Nested(TFTensorInfoSchema))
    method_name = fields.String(metadata={"example": "tensorflow/serving/predict"})
    defaults = fields.Dict()


class TFSignatureDefMapSchema(Schema):
    signature_def = fields.Dict(keys=fields.String(), values=fields.Nested(TFSignatureDefSchema))


class TFMetadataSchema(Schema):
    signature_def = fields.Nested(TFSignatureDefMapSchema)


class TFModelMetadataSchema(Schema):
    """TF Serving's ``GetModelMetadataResponse`` as JSON."""

    model_spec = fields.Nested(TFModelSpecSchema)
    metadata = fields.Nested(TFMetadataSchema)


class TFPredictRowResponseSchema(Schema):
    predictions = fields.List(
        fields.List(fields.Float()),
        metadata={"description": "One row of class probabilities per instance."},
    )


class TFPredictColumnResponseSchema(Schema):
    outputs = fields.List(
        fields.List(fields.Float()),
        metadata={"description": "The output tensor: one row of class probabilities per input."},
    )


class TFErrorSchema(Schema):
    """TF Serving's error body: ``{"error": "<message>"}``."""

    error = fields.String(metadata={"example": "Servable not found for request: Latest(foo)"})
