"""When the worker's event loop hands a connection to a thread: a whole request, or
something the parser will refuse at once; never a request still arriving."""

from __future__ import annotations

import pytest

from app.server.requests_in import (
    BODY_LIMIT,
    HEADER_LIMIT,
    Progress,
    progress,
    whole,
    whole_request,
)
from app.web.long_requests import pins

HEAD = b"POST /classify HTTP/1.1\r\nHost: x\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (b"", Progress.HEADERS),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n", Progress.HEADERS),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", Progress.COMPLETE),
        (b"\r\nGET / HTTP/1.1\r\n\r\n", Progress.COMPLETE),  # empty lines first are allowed
        (HEAD + b"Content-Length: 5\r\n\r\n{}", Progress.BODY),
        (HEAD + b"Content-Length: 2\r\n\r\n{}", Progress.COMPLETE),
        (HEAD + b"content-length:  2 \r\n\r\n{}GET / HTTP/1.1\r\n", Progress.COMPLETE),
        (
            HEAD + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            Progress.BODY_EXPECTS_CONTINUE,
        ),
        (CHUNKED + b"2\r\n{}\r\n", Progress.BODY),
        (CHUNKED + b"2\r\n{}\r\n0\r\n", Progress.BODY),
        (CHUNKED + b"2\r\n{}\r\n0\r\n\r\n", Progress.COMPLETE),
        (
            CHUNKED + b"2;x=y\r\n{}\r\n0\r\nT: 1\r\n\r\n",
            Progress.COMPLETE,
        ),
        # Malformed or hostile: the parser answers 400/413/414 without waiting.
        (b"\x16\x03\x01\x00\xa5\x01\x00", Progress.COMPLETE),  # a TLS ClientHello
        (HEAD + b"Content-Length: 1x\r\n\r\n", Progress.COMPLETE),
        (HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", Progress.COMPLETE),
        (HEAD + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", Progress.COMPLETE),
        (CHUNKED + b"zz\r\n", Progress.COMPLETE),
        (HEAD + b"Content-Length: %d\r\n\r\n" % (BODY_LIMIT + 1), Progress.COMPLETE),
        (b"GET /" + b"a" * HEADER_LIMIT, Progress.COMPLETE),
    ],
)
def test_progress(buf, expected):
    assert progress(buf) is expected


def test_an_endless_chunked_body_is_handed_over_at_the_limit():
    buf = CHUNKED
    assert progress(buf + b"10000\r\n" + b"a" * 65536 + b"\r\n") is Progress.BODY
    big = b"".join(b"10000\r\n" + b"a" * 65536 + b"\r\n" for _ in range(18))
    assert progress(buf + big) is Progress.COMPLETE


def test_a_body_over_the_apps_limit_is_handed_over_with_its_headers():
    """The worker passes MAX_CONTENT_LENGTH where it is below BODY_LIMIT: a client that
    waits for 100 Continue gets the app's 413 instead of sending the body."""
    expecting = HEAD + b"Content-Length: 2000\r\nExpect: 100-continue\r\n\r\n"
    assert progress(expecting) is Progress.BODY_EXPECTS_CONTINUE
    assert progress(expecting, 1000) is Progress.COMPLETE
    assert progress(HEAD + b"Content-Length: 1000\r\n\r\n", 1000) is Progress.BODY
    assert progress(CHUNKED + b"7d0\r\n" + b"a" * 2000 + b"\r\n", 1000) is Progress.COMPLETE


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (HEAD + b"Content-Length: 2\r\n\r\n{}", True),
        (HEAD + b"Content-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n", True),  # pipelined
        (HEAD + b"Content-Length: 5\r\n\r\n{}", False),
        (CHUNKED + b"2\r\n{}\r\n0\r\n\r\n", True),
        (CHUNKED + b"2\r\n{}\r\n0\r\n", False),
        (CHUNKED + b"2 ; a = b\r\n{}\r\n0\r\n\r\n", True),  # whitespace before an extension
        # Chunks Gunicorn refuses only when the app reads the body: a thread's, which
        # answers with Connection: close.
        (CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", False),
        (CHUNKED + b"2 \r\n{}\r\n0\r\n\r\n", False),  # whitespace without an extension
        (CHUNKED + b"2;=\r\n{}\r\n0\r\n\r\n", False),
        (CHUNKED + b"2\r\n{}XX0\r\n\r\n", False),
        # Complete for progress() (handed over at once) but not in memory: a thread's.
        (HEAD + b"Content-Length: %d\r\n\r\n" % (BODY_LIMIT + 1), False),
        (b"\x16\x03\x01\x00\xa5\x01\x00", False),
        (b"GET /" + b"a" * (HEADER_LIMIT + 1), False),
    ],
)
def test_only_a_request_wholly_in_memory_runs_on_the_loop(buf, expected):
    assert whole(buf) is expected


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", (b"/health", 0)),
        (
            b"POST /explain?version=3 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
            (b"/explain?version=3", 2),
        ),
        (HEAD + b"Content-Length: 2\r\n\r\n{}GET / HTTP/1.1\r\n", (b"/classify", 2)),
        (CHUNKED + b"2\r\n{}\r\n0\r\n\r\n", (b"/classify", 12)),  # with the framing
        (b"\r\nPOST\r\nContent-Length: 0\r\n\r\n", (b"", 0)),  # the parser refuses it
        (HEAD + b"Content-Length: 5\r\n\r\n{}", None),
    ],
)
def test_what_the_app_is_told_of_a_whole_request(buf, expected):
    """The app judges from a request's target and body size whether it is quick enough
    for the loop (app/web/long_requests.py)."""
    assert whole_request(buf) == expected


@pytest.mark.parametrize(
    ("target", "named"),
    [
        (b"/classify", []),
        (b"/classify?version=04&label=accurate", [("version", "04"), ("label", "accurate")]),
        (b"/classify?label=acc%75rate", [("label", "accurate")]),
        (b"/v1/models/sentiment/versions/4:predict", [("version", "4")]),
        (b"/v1/models/sentiment/labels/accurate:predict", [("label", "accurate")]),
        (b"/v2/models/sentiment/versions/3/infer", [("version", "3")]),
    ],
)
def test_the_versions_a_request_names(target, named):
    """What the app reads in a target to tell a request a transformer answers."""
    assert list(pins(target)) == named
