"""Schemathesis hooks, loaded by schemathesis.toml: what valid data is where a format in
the OpenAPI document cannot say all of it.

TF Serving's binary values (``{"b64": ...}``, ``format: byte``) carry UTF-8 text on this
server, which answers 400 to base64 of other bytes: valid ``byte`` strings are base64 of
UTF-8 text. (Schemathesis' default draws any bytes.)
"""

from __future__ import annotations

import base64

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format(
    "byte", st.text(max_size=200).map(lambda text: base64.b64encode(text.encode()).decode())
)
