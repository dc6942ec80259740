"""The companion web page (``GET /``). Being built: see issue 8."""

from flask import Blueprint

bp = Blueprint("web", __name__)
