"""``POST /explain``: the tokens as the model sees them, each with its contribution to each
class (computed by ``app.serving.explain``, by occlusion).

The version is chosen as for ``/classify``: ``?version=N`` or ``?label=name`` pins one,
otherwise the routing policy picks (the page pins the version that answered). An
explanation is not a prediction: it is not counted in the prediction metrics, nor
shadowed, nor logged as one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request

from app.serving.explain import METHOD, explain
from app.web.api import validated
from app.web.models import ROUTING_KEY_HEADER, served_models
from app.web.schemas import ExplainRequestSchema

bp = Blueprint("explain", __name__)
SCHEMA_KEY = "explain_schema"


def init_app(app: Flask) -> None:
    app.extensions[SCHEMA_KEY] = ExplainRequestSchema(
        max_batch_size=app.config["MAX_BATCH_SIZE"],
        max_text_chars=app.config["MAX_TEXT_CHARS"],
    )
    app.register_blueprint(bp)


@bp.post("/explain")
def explain_review() -> dict[str, Any]:
    review = validated(SCHEMA_KEY)["review"]
    route = served_models().choose(
        request.args.get("version"),
        request.args.get("label"),
        request.headers.get(ROUTING_KEY_HEADER),
    )
    result = explain(route.answer, review)
    return {
        "label": result.label,
        "score": result.score,
        "scores": dict(zip(result.classes, result.probabilities, strict=True)),
        "tokens": [
            {"token": item.token, "contributions": item.contributions} for item in result.tokens
        ],
        "unseen_tokens": result.unseen_tokens,
        "method": METHOD,
        "model": result.reference,
    }
