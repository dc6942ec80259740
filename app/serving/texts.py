"""What the model accepts as one review, stated once for the API, batch and Spark scoring."""

from __future__ import annotations

from typing import Any


def review_text_problem(text: Any, max_chars: int) -> str | None:
    """Why ``text`` cannot be scored, in the words the API answers with; None if it can."""
    if text is None:
        return "Review text is missing."
    if not isinstance(text, str):
        return f"Review text must be a string (got {type(text).__name__})."
    if not text.strip():
        return "Review text must not be empty or only whitespace."
    if len(text) > max_chars:
        return f"Review text must be at most {max_chars} characters (got {len(text)})."
    return None
