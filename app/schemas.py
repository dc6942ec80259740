"""Marshmallow schemas: what requests must look like, and what responses look like.

Request schemas validate (limits come from the app's config); response schemas exist
for the OpenAPI document — views build plain dicts on the hot path.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validates, validates_schema

EXAMPLE_REVIEW = "The crew was friendly and the flight left on time. Great job!"


class ReviewsSchema(Schema):
    """Shared limits for anything that carries review texts."""

    def __init__(self, *, max_batch_size: int = 64, max_text_chars: int = 5000, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_batch_size = max_batch_size
        self.max_text_chars = max_text_chars

    def check_text(self, text: str) -> None:
        """One review: some non-space character, at most ``max_text_chars`` characters."""
        if not text.strip():
            raise ValidationError("Review text must not be empty or only whitespace.")
        if len(text) > self.max_text_chars:
            raise ValidationError(
                f"Review text must be at most {self.max_text_chars} characters (got {len(text)})."
            )

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
        metadata={"description": "One text to classify.", "example": EXAMPLE_REVIEW}
    )
    reviews = fields.List(
        fields.String(),
        metadata={
            "description": "Several texts (1 to MAX_BATCH_SIZE), answered in input order.",
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


class ErrorDetailSchema(Schema):
    code = fields.String(metadata={"example": "validation_error"})
    message = fields.String(metadata={"example": "The request body does not match the schema."})
    details = fields.Dict(metadata={"description": "Per-field messages, where there are any."})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema)
