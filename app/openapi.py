"""The OpenAPI document (``/openapi.json``) and its page (``/docs``). Being built: issue 5."""

from flask import Blueprint

bp = Blueprint("openapi", __name__)
