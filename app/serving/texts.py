"""What the model accepts as one review, stated once for the API, batch and Spark scoring.

The rules are also written as a regular expression (``NOT_BLANK_PATTERN``) so that the
API's request schemas can enforce them with marshmallow validators and publish them in
the OpenAPI document as they are enforced.
"""

from __future__ import annotations

import re
from typing import Any

BLANK_MESSAGE = "Review text must not be empty or only whitespace."
TOO_LONG_MESSAGE = "Review text must be at most {max} characters (got {length})."

# The characters str.strip() removes (str.isspace()), as a character class that Python's
# ``re`` and ECMA-262 (JSON Schema's ``pattern``) read alike: no ``\s``, whose meaning
# differs between the two (ECMA's includes U+FEFF, Python's includes U+001C–U+001F).
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# And what shows nothing: control characters, and the zero-width and format characters
# (U+200B, U+FEFF, U+2060, direction marks...). A text of them alone was scored as the
# empty text, which is refused (an outside probe: "\u200b" got version 2's answer to "").
# With Unicode's other default-ignorable characters of the first plane (variation
# selectors, the combining grapheme joiner, Mongolian and Hangul fillers; a second probe)
# and the interlinear annotation marks. Those past U+FFFF (tag characters, U+E0001...)
# are not here: ECMA-262 reads such a range without the "u" flag as two code units.
BLANK = WHITESPACE + (
    r"\x00-\x08\x0e-\x1b\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    r"\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164"
    r"\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
)
# Some character that is not blank. Anchored, so that ``re.match`` (marshmallow's
# Regexp) and an unanchored search (JSON Schema) accept the same strings.
NOT_BLANK_PATTERN = rf"^[{BLANK}]*[^{BLANK}]"
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)


def review_text_problem(text: Any, max_chars: int) -> str | None:
    """Why ``text`` cannot be scored, in the words the API answers with; None if it can."""
    if text is None:
        return "Review text is missing."
    if not isinstance(text, str):
        return f"Review text must be a string (got {type(text).__name__})."
    if not _NOT_BLANK.match(text):
        return BLANK_MESSAGE
    if len(text) > max_chars:
        return TOO_LONG_MESSAGE.format(max=max_chars, length=len(text))
    return None


def lone_surrogate(document: Any) -> str | None:
    """The first key or string in a parsed JSON document that holds a lone surrogate (a
    ``"\\udc80"`` escape without its pair), as that escape; None if there is none. Such a
    string is not Unicode text: I-JSON (RFC 7493) forbids it, and it cannot be written
    back as UTF-8. The API refuses the body, batch and Spark scoring the line."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                return f"\\u{ord(item[error.start]):04x}"
    return None
