"""HTTP plumbing shared by every route: strict JSON parsing and response headers."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from flask import Flask, Request, Response
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge

from app.serving.texts import lone_surrogate
from app.web.errors import InvalidJSON, UnsupportedMediaType


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # '{"review": "a", "review": "b"}' is ambiguous: refuse it rather than guess.
        raise ValueError("duplicate key in a JSON object")
    return obj


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a parsed body (raw
# bytes must be valid UTF-8, which cannot encode one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing duplicate keys and turning too-deep nesting into a
    ``ValueError`` (Python's parser raises ``RecursionError``, which would be a 500).

    Responses are written by orjson: a few times faster than ``json.dumps``, UTF-8
    instead of ``\\u`` escapes. Requests are still parsed by ``json``, whose
    ``object_pairs_hook`` is what sees duplicate keys.
    """

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        option = orjson.OPT_NON_STR_KEYS  # error details are keyed by list index
        if kwargs.get("indent"):  # debug mode
            option |= orjson.OPT_INDENT_2
        return orjson.dumps(obj, default=self.default, option=option).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            document = json.loads(s, object_pairs_hook=_reject_duplicate_keys, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        pattern = _SURROGATE_ESCAPE_BYTES if isinstance(s, bytes) else _SURROGATE_ESCAPE
        if pattern.search(s):  # rare: the walk below costs nothing on ordinary bodies
            lone = lone_surrogate(document)
            if lone is not None:
                raise ValueError(f"A string or key holds a lone surrogate ({lone}), not text.")
        return document


class APIRequest(Request):
    """Raise the API's own errors when the body is not JSON, instead of HTML 400/415."""

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):
        data = super().get_data(cache=cache, as_text=as_text, parse_form_data=parse_form_data)
        limit = self.max_content_length
        # A chunked body (no Content-Length) is cut at the limit by Werkzeug without an
        # error under Gunicorn: a body that reaches the limit is refused, not truncated.
        if limit is not None and self.content_length is None and len(data) >= limit:
            raise RequestEntityTooLarge()
        return data

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType()
        raise InvalidJSON(details={"reason": _describe(e)})


def _describe(error: ValueError) -> str:
    """Why parsing failed, without echoing the body back."""
    if isinstance(error, UnicodeDecodeError):
        return "The body is not valid UTF-8."
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno}, column {error.colno}."
    return str(error)[:200]  # our own messages, or the integer digit limit


def init_app(app: Flask) -> None:
    app.request_class = APIRequest
    app.json = StrictJSONProvider(app)  # keys in insertion order: "score" before "scores"

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Predictions are per request: no shared cache may keep one.
        response.headers.setdefault("Cache-Control", "no-store")
        return response
