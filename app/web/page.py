"""The companion web page (``GET /``): try the model in a browser, one review or a file.

One Jinja template with its own CSS and scripts (``app/static/``, no CDN, no build step),
so it works offline. The scripts are just another client of the API: ``POST /classify``
(one review, batches of a file), ``POST /explain`` (why), ``GET /model`` (the limits),
``POST /feedback`` (the true label of an answer), with the API key the person enters when
the server requires one (kept in the tab's ``sessionStorage`` only). The
view renders what only the server knows cheaply: the loaded versions and their labels,
each version's "how sure" thresholds (``app.serving.confidence``), what counts as a blank
text (``app.serving.texts``), and the examples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flask import Blueprint, Response, current_app, render_template, url_for

from app.serving.confidence import confidence_bands
from app.serving.texts import NOT_BLANK_PATTERN
from app.web.models import served_models

bp = Blueprint("web", __name__)

# What a browser may do on this server's pages (``/`` and ``/docs``; API answers are JSON
# and carry none): scripts, styles, images and calls from this server only, and nothing
# inline (both pages load their scripts and styles from files; scripts may still set an
# element's style). No other site may frame a page: the page can hold an API key in its
# tab, and a framed page can be clicked through (clickjacking).
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def protect_page(response: Response) -> Response:
    """``PAGE_POLICY`` on an HTML answer (``X-Frame-Options`` for browsers that predate
    ``frame-ancestors``), and no ``Referer`` from it: a link followed from the docs viewer
    told the other site this server's address and path."""
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response


bp.after_request(protect_page)

# What the page reads in the browser before it sends anything: a file up to this size and
# this many reviews (10,000 reviews of 64 take 157 requests: a few seconds).
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILE_ROWS = 10_000


@dataclass(frozen=True)
class Example:
    """A clickable review: what a person would say, and why it is there."""

    text: str
    expected: str
    kind: str  # "best" or "limits"
    note: str


EXAMPLES = (
    Example(
        "Lost my bag again and nobody at the desk would help. Never flying with them again.",
        "negative",
        "best",
        "An airline complaint: the kind of text the model learned from.",
    ),
    Example(
        "Thanks for the upgrade, best flight I've had all year :)",
        "positive",
        "best",
        "Plain praise with an emoticon.",
    ),
    Example(
        "Google is testing self driving cars in Austin this summer.",
        "neutral",
        "best",
        "A news-like statement on a topic from its training data.",
    ),
    Example(
        "Not bad at all, actually.",
        "positive",
        "limits",
        "Negation: version 1 reads 'not' as a complaint word, as it is in its airline "
        "tweets, and cannot see that 'not bad' praises; version 2 reads 'not bad' as one.",
    ),
    Example(
        "The battery lasts all day and the screen is gorgeous.",
        "positive",
        "limits",
        "Another domain: version 1 learned from tweets about airlines and events, "
        "not product reviews.",
    ),
    Example(
        "Which terminal does the 7am flight to Boston leave from?",
        "neutral",
        "limits",
        "A plain question: airline words lean negative in version 1's training data.",
    ),
)


def page_config() -> dict[str, Any]:
    """What the page's scripts need from the server, as JSON in the page."""
    registry = served_models().registry
    config = current_app.config
    return {
        "urls": {
            "classify": url_for("api.classify"),
            "explain": url_for("explain.explain_review"),
            "model": url_for("api.model_info"),
            # The true label of an answer, when answers are recorded (else no buttons).
            "feedback": url_for("feedback.feedback") if config["RECORD_PREDICTIONS"] else None,
        },
        # API_KEYS set: the page asks for a key and sends it with every call.
        "apiKeyRequired": bool(config["API_KEYS"]),
        "stable": registry.labels["stable"],
        "versions": [
            {
                "version": version,
                "labels": registry.labels_of(version),
                "classes": predictor.bundle.classes,
                "bands": confidence_bands(predictor.bundle.metadata).to_dict(),
            }
            for version, predictor in registry.versions.items()
        ],
        "maxTextChars": config["MAX_TEXT_CHARS"],
        # The API's own rule for a text that is not blank (Python's str.isspace(), written
        # so that Python and JavaScript read it alike): the page checks with it, not trim().
        "notBlankPattern": NOT_BLANK_PATTERN,
        "maxFileBytes": MAX_FILE_BYTES,
        "maxFileRows": MAX_FILE_ROWS,
        "examples": [asdict(example) for example in EXAMPLES],
    }


@bp.get("/")
def index() -> str:
    """The page, with the served versions, limits and examples rendered in."""
    registry = served_models().registry
    return render_template(
        "index.html",
        model=registry.stable.bundle,
        versions={version: registry.labels_of(version) for version in registry.versions},
        max_text_chars=current_app.config["MAX_TEXT_CHARS"],
        max_file_bytes=MAX_FILE_BYTES,
        max_file_rows=MAX_FILE_ROWS,
        examples=EXAMPLES,
        config=page_config(),
    )
