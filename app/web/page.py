"""The companion web page (``GET /``): a form to try the model in a browser.

The page is one Jinja template with its own CSS and script (``app/static/``, no CDN), so it
works offline. The script is just another client of ``POST /classify``: it shows the
API's answer, and the API's own error message when the input is invalid.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from app.web.models import stable_predictor

bp = Blueprint("web", __name__)


@bp.get("/")
def index() -> str:
    """The try-the-model page, with the served model's name and version rendered in."""
    return render_template(
        "index.html",
        model=stable_predictor().bundle,
        max_text_chars=current_app.config["MAX_TEXT_CHARS"],
    )
