"""``POST /explain``: the tokens as the model sees them, each with its contribution to each
class (computed by ``app.serving.explain``, by occlusion).

The version is chosen as for ``/classify``: ``?version=N`` or ``?label=name`` pins one,
otherwise the routing policy picks (the page pins the version that answered). An
explanation is not a prediction: it is not counted in the prediction metrics, nor
shadowed, nor logged as one.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from marshmallow import ValidationError

from app.serving.explain import METHOD, explain
from app.web.api import app_request_schemas, pinned
from app.web.errors import ValidationFailed
from app.web.models import ROUTING_KEY_HEADER, served_models
from app.web.request_log import current_record

bp = Blueprint("explain", __name__)


@bp.post("/explain")
def explain_review() -> dict[str, Any]:
    version, label = pinned()
    try:
        review = app_request_schemas().explain.load(request.get_json())["review"]
    except ValidationError as error:
        raise ValidationFailed(details=error.normalized_messages()) from None
    route = served_models().choose(version, label, request.headers.get(ROUTING_KEY_HEADER))
    result = explain(route.answer, review)
    current_record().answered_by = result.version
    return {
        "label": result.label,
        "score": result.score,
        "scores": dict(zip(result.classes, result.probabilities, strict=True)),
        "tokens": [
            {"token": item.token, "contributions": item.contributions} for item in result.tokens
        ],
        "unseen_tokens": result.unseen_tokens,
        "unseen_at": result.unseen_at,
        "method": METHOD,
        "model": result.reference,
    }
