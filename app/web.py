"""The companion web page (``GET /``): a form to try the model in a browser.

The page is one Jinja template with its own CSS and script (``app/static/``, no CDN), so it
works offline. The script is just another client of ``POST /classify``: it shows the
API's answer, and the API's own error message when the input is invalid.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from app.predictor import Predictor

bp = Blueprint("web", __name__)


@bp.get("/")
def index() -> str:
    """The try-the-model page; the model's name and version are rendered in once loaded."""
    predictor: Predictor = current_app.extensions["predictor"]
    return render_template(
        "index.html",
        model=predictor.bundle if predictor.ready else None,
        max_text_chars=current_app.config["MAX_TEXT_CHARS"],
    )
