"""The FastAPI twin: what a user would build instead, serving this project's own model.

``make bench`` runs it with Gunicorn and Uvicorn's worker class (two workers, the same
``gunicorn.conf.py`` otherwise), the deployment FastAPI's documentation describes:
``GUNICORN_CMD_ARGS="--worker-class uvicorn_worker.UvicornWorker" gunicorn --config
gunicorn.conf.py "benchmarks.twin:twin_app()"``. It answers ``POST /classify`` with the
same JSON as the service, through the same ``Predictor`` on the same model folder, with
the same limits, and nothing else: no request log line, no metrics, no request ids, one
model version. Its packages are in requirements-dev.txt only (the bench installs them
in an environment of their own, next to the requirements.txt-only one).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from pydantic import AfterValidator, BaseModel, Field, model_validator

from app.config import Config
from app.serving.predictor import Classification, Predictor
from app.serving.registry import VersionSelection
from app.serving.texts import review_text_problem


def _checked(text: str) -> str:
    problem = review_text_problem(text, Config.MAX_TEXT_CHARS)
    if problem:
        raise ValueError(problem)
    return text


Review = Annotated[str, AfterValidator(_checked)]


class ClassifyRequest(BaseModel):
    """Exactly one of ``review`` or ``reviews`` (1 to MAX_BATCH_SIZE texts)."""

    review: Review | None = None
    reviews: list[Review] | None = Field(None, min_length=1, max_length=Config.MAX_BATCH_SIZE)

    @model_validator(mode="after")
    def _exactly_one(self) -> ClassifyRequest:
        if (self.review is None) == (self.reviews is None):
            raise ValueError("Send exactly one of 'review' or 'reviews'.")
        return self


class ModelRef(BaseModel):
    name: str
    version: str


class Prediction(BaseModel):
    label: str
    score: float
    scores: dict[str, float]


class SingleResponse(Prediction):
    model: ModelRef


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    model: ModelRef


def _predictions(result: Classification) -> list[Prediction]:
    return [
        Prediction(label=label, score=score, scores=dict(zip(result.classes, row, strict=True)))
        for label, score, row in zip(
            result.labels, result.scores, result.probabilities, strict=True
        )
    ]


def twin_app() -> FastAPI:
    """Load the stable version (the folder the service answers with by default) and
    serve it. Called by Gunicorn in each worker after fork, like ``create_app()``, so the
    model is loaded before ``post_worker_init`` freezes the worker's objects, as in the
    service (a lifespan handler would load it after that hook)."""
    folder = VersionSelection.from_config(vars(Config)).default_folder()
    predictor = Predictor.load(folder, Config.KERAS_BACKEND, Config.INFERENCE_THREADS)
    model = ModelRef(**predictor.bundle.reference)
    app = FastAPI(title="sentiment (FastAPI twin)", openapi_url=None)

    # ``async def``: the call takes about a tenth of a millisecond and never waits, so it
    # runs on the event loop; a plain ``def`` would hand every request to a thread pool.
    # Invalid bodies get FastAPI's own 422 answer.
    @app.post("/classify")
    async def classify(body: ClassifyRequest) -> SingleResponse | BatchResponse:
        if body.review is not None:
            result = predictor.classify([body.review])
            return SingleResponse(
                label=result.labels[0],
                score=result.scores[0],
                scores=dict(zip(result.classes, result.probabilities[0], strict=True)),
                model=model,
            )
        result = predictor.classify(body.reviews)
        return BatchResponse(predictions=_predictions(result), model=model)

    return app
