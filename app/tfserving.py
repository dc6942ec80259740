"""TensorFlow-Serving-compatible REST API (``/v1/models/...``). Being built: see issue 5."""

from flask import Blueprint

bp = Blueprint("tfserving", __name__)
