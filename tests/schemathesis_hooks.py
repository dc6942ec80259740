"""Schemathesis hooks, loaded by schemathesis.toml: what valid data is where a format in
the OpenAPI document cannot say all of it.

TF Serving's binary values (``{"b64": ...}``, ``format: byte``) carry UTF-8 text on this
server, which answers 400 to base64 of other bytes: valid ``byte`` strings are base64 of
UTF-8 text. (Schemathesis' default draws any bytes.)

Paths and query strings stay under Gunicorn's limit on a request line
(``limit_request_line``, 4,094 bytes): a longer one is refused by Gunicorn itself with a
414 before the app sees it (README, Reliability), which is the transport's limit, not the
API's contract (tests/test_hostile.py covers that 414). The whole case is filtered: a
query-level filter sees only the generated part of a query, to which schemathesis may add
explicit values afterwards (a 4,721-byte query got through that way in CI, 2026-12-06).
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlencode

import schemathesis
from gunicorn.config import LimitRequestLine
from hypothesis import strategies as st

schemathesis.openapi.format(
    "byte", st.text(max_size=200).map(lambda text: base64.b64encode(text.encode()).decode())
)

# Room for the method, "?" and " HTTP/1.1" on the same line.
TARGET_BYTES = LimitRequestLine.default - 40


@schemathesis.hook
def filter_case(ctx, case):
    query = urlencode(case.query, doseq=True) if case.query else ""
    return len(quote(case.formatted_path, safe="/%")) + len(query) < TARGET_BYTES
