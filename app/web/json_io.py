"""HTTP plumbing shared by every route: strict JSON parsing and response headers."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import orjson
from flask import Flask, Request, Response
from flask.json.provider import DefaultJSONProvider
from gunicorn.http.errors import (
    ChunkMissingTerminator,
    InvalidChunkExtension,
    InvalidChunkSize,
    ParseException,
)
from werkzeug.exceptions import RequestEntityTooLarge

from app.serving.texts import lone_surrogate
from app.web.errors import (
    BrokenChunks,
    InvalidEncoding,
    InvalidJSON,
    UnsupportedEncoding,
    UnsupportedMediaType,
)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # '{"review": "a", "review": "b"}' is ambiguous: refuse it rather than guess.
        raise ValueError("duplicate key in a JSON object")
    return obj


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a parsed body (raw
# bytes must be valid UTF-8, which cannot encode one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
        if isinstance(s, bytes):
            # As json.loads(bytes) reads it (UTF-8, or UTF-16 or UTF-32 by their zero
            # bytes), but strictly: its "surrogatepass" took surrogates encoded as bytes,
            # which let a lone surrogate past the check below (an outside probe).
            s = s.decode(json.detect_encoding(s))  # UnicodeDecodeError: a ValueError, a 400
        try:
            document = json.loads(s, object_pairs_hook=_reject_duplicate_keys, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if _SURROGATE_ESCAPE.search(s):  # rare: the walk below costs nothing on ordinary bodies
            lone = lone_surrogate(document)
            if lone is not None:
                raise ValueError(f"A string or key holds a lone surrogate ({lone}), not text.")
        return document


# Content-Encoding → zlib's wbits: a gzip header and trailer ("x-gzip" is the same, RFC
# 9110 §8.4.1.3, and TF Serving inflates it); "deflate" is zlib's format in HTTP (RFC 9110),
# which is what tritonclient sends (zlib.compress).
_GZIP = 16 + zlib.MAX_WBITS
_ENCODINGS = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": zlib.MAX_WBITS}


_BROKEN_CHUNKS = {
    InvalidChunkSize: "a chunk's size is not a hexadecimal number",
    ChunkMissingTerminator: "a chunk does not end (CRLF) where its size says",
    InvalidChunkExtension: "a chunk extension is malformed",
}


class APIRequest(Request):
    """Raise the API's own errors when the body is not JSON, instead of HTML 400/415, and
    read a body compressed with gzip or deflate on every route, as TF Serving and Triton do."""

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):
        try:
            data = super().get_data(cache=cache, parse_form_data=parse_form_data)
        except ParseException as error:  # Gunicorn reads chunk framing only now: not a 500
            # The connection's framing is lost: the answer says "Connection: close" (the
            # app cannot: Gunicorn drops hop-by-hop headers). Gunicorn's body keeps its request.
            reader = getattr(self.environ.get("wsgi.input"), "reader", None)
            if hasattr(reader, "req"):
                reader.req.must_close = True
            reason = _BROKEN_CHUNKS.get(type(error), "its trailer fields are malformed")
            raise BrokenChunks(f"The body is not valid chunked coding: {reason}.") from None
        limit = self.max_content_length
        # A chunked body (no Content-Length) is cut at the limit by Werkzeug without an
        # error under Gunicorn: a body that reaches the limit is refused, not truncated.
        if limit is not None and self.content_length is None and len(data) >= limit:
            raise RequestEntityTooLarge()
        encoding = self.environ.get("HTTP_CONTENT_ENCODING")  # 0.05 µs; .headers: 0.7
        if encoding is not None:
            data = _inflated(data, encoding.strip().lower(), limit)
        return data.decode(errors="replace") if as_text else data

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType()
        raise InvalidJSON(details={"reason": _describe(e)})


def _inflated(data: bytes, encoding: str, limit: int | None) -> bytes:
    """A gzip or deflate body, inflated up to ``limit`` bytes: the limit holds for what
    the body says, not only for what it weighs (a small body may inflate to gigabytes).
    A gzip body may be several members, one after the other, as ``cat a.gz b.gz`` makes
    (RFC 1952 §2.2); bytes after the last one are refused, not ignored."""
    if encoding in ("", "identity"):
        return data
    if encoding not in _ENCODINGS:
        raise UnsupportedEncoding()
    wbits = _ENCODINGS[encoding]
    view = memoryview(data)
    parts: list[bytes] = []
    size = start = 0
    while True:  # one member a turn
        inflater = zlib.decompressobj(wbits)
        # zlib copies what it has not used (unused_data): fed the whole rest each time,
        # 52,000 empty members in 1 MB took 1.4 s. The first member (most bodies' only
        # one) gets the whole body at once; the next ones pieces that grow from 32 bytes,
        # which keep the copying within about twice each member's size.
        piece = len(view) if start == 0 else 32
        while not inflater.eof:
            if start >= len(view):
                raise InvalidEncoding(f"The body's {encoding} data is cut short.")
            fed = view[start : start + piece]
            try:
                part = inflater.decompress(fed, 0 if limit is None else limit + 1 - size)
            except zlib.error:
                raise InvalidEncoding(f"The body is not valid {encoding} data.") from None
            size += len(part)
            if limit is not None and size > limit:
                raise RequestEntityTooLarge()
            parts.append(part)
            start += len(fed) - len(inflater.unused_data) - len(inflater.unconsumed_tail)
            piece *= 2
        if start == len(view):
            return b"".join(parts)
        if wbits != _GZIP:
            raise InvalidEncoding(f"The body has bytes after its {encoding} data.")


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

    default_options = app.make_default_options_response

    def bare_options() -> Response:
        """Flask's own answer to OPTIONS (the ``Allow`` header; CORS adds its preflight
        headers) has an empty ``text/html`` body: it has none, so 204 and no type."""
        response = default_options()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response

    app.make_default_options_response = bare_options  # type: ignore[method-assign]
