"""``GET /docs``: the OpenAPI document (``GET /openapi.json``, the one source) in Swagger UI.

Swagger UI's own static files ship inside the pinned ``flask-swagger-ui`` package (its
``dist`` folder: Swagger UI's release, Apache-2.0) and are served from it under
``/docs/assets/``, so the page works offline and loads nothing from other hosts. The
page and its start-up script are ours (``templates/docs.html``, ``static/docs.js``): the
package's own page uses an inline script and Swagger UI's top bar, and its defaults ask
swagger.io's validator about the document.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, render_template

from app.web.page import protect_page

SWAGGER_UI_PACKAGE = "flask_swagger_ui"
SWAGGER_UI_DIST = files(SWAGGER_UI_PACKAGE) / "dist"

bp = Blueprint("docs", __name__, static_folder=str(SWAGGER_UI_DIST), static_url_path="/docs/assets")
bp.after_request(protect_page)


def swagger_ui_version() -> str:
    """The Swagger UI release the package ships (its ``dist/VERSION``: ``v5.34.0``)."""
    return (SWAGGER_UI_DIST / "VERSION").read_text(encoding="utf-8").strip().removeprefix("v")


@bp.get("/docs")
def docs() -> str:
    """Swagger UI on ``/openapi.json``: every operation, its schemas, and "Try it out"."""
    return render_template("docs.html", swagger_ui_version=swagger_ui_version())
