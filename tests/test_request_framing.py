"""When the worker's event loop hands a connection to a thread: a whole request, or
something the parser will refuse at once; never a request still arriving."""

from __future__ import annotations

import pytest

from app.server.requests_in import (
    BODY_LIMIT,
    CHUNK_WORK_LIMIT,
    HEADER_LIMIT,
    Progress,
    Scan,
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
        (
            HEAD + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            Progress.BODY_EXPECTS_CONTINUE,
        ),
        (
            b"POST / HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            Progress.BODY,  # RFC 9110 10.1.1: HTTP/1.0 never gets 100 Continue
        ),
        # What the parser would wait on, on a thread: the loop refuses it itself.
        (b"\x16\x03\x01\x00\xa5\x01\x00", Progress.NOT_HTTP),  # a TLS ClientHello
        (b" ", Progress.NOT_HTTP),
        (b"\r", Progress.HEADERS),  # perhaps an empty line's CR
        (b"\r\n\r", Progress.HEADERS),
        (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", Progress.NOT_HTTP),  # one empty line, as Gunicorn
        (b"\r\n" * 100_000, Progress.NOT_HTTP),
        (b"GET /health HTTP/1.1\r\nX: " + b"a" * HEADER_LIMIT, Progress.HEADERS_TOO_LARGE),
        (b"GET /health HTTP/1.1\nHost: x\n", Progress.BARE_LF),
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\n", Progress.BARE_LF),
        (CHUNKED + b"2\n{}", Progress.BARE_LF),
        (CHUNKED + b"2\r\n{}\r\n0\r\nT: 1\n", Progress.BARE_LF),
        (
            CHUNKED + b"1\r\na\r\n" * (2 * BODY_LIMIT // 6 + HEADER_LIMIT),
            Progress.FRAMING_TOO_LARGE,
        ),
        # Malformed: the parser answers 400/413/414 without waiting.
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


def test_each_read_is_looked_at_once():
    """The worker keeps a Scan for the request arriving on a connection: a later call
    looks only at what was added (looking from the start each read took quadratic CPU in
    the loop). Shown by garbling what was read already: a fresh look sees the garbling."""
    chunks = CHUNKED + b"1\r\na\r\n" * 1000  # a byte a chunk
    header = b"GET /health HTTP/1.1\r\nX: " + b"a" * 1000
    trailer = CHUNKED + b"10;x=y\r\n0123456789abcdef\r\n0\r\nT: " + b"1" * 500
    size_line = CHUNKED + b"10;x=y\r\n01234"  # its data arriving
    for request, garbled, more, fresh in [
        (size_line, size_line.replace(b"10;", b"ff;"), b"56789abcdef\r\n0\r\n\r\n", Progress.BODY),
        (chunks, CHUNKED + b"fffff\r\n".ljust(6000, b"a"), b"0\r\n\r\n", Progress.BODY),
        (header, header.replace(b"aaa", b"a\na", 1), b"a", Progress.BARE_LF),
        (trailer, trailer.replace(b"111", b"1\n1", 1), b"1", Progress.BARE_LF),
    ]:
        assert len(garbled) == len(request)
        scan = Scan()
        before = progress(request, scan=scan)
        assert before in (Progress.HEADERS, Progress.BODY)
        after = progress(request + more, scan=Scan())  # a fresh look at the true bytes
        assert progress(garbled + more, scan=scan) is after is not fresh
        assert progress(garbled + more) is fresh


def test_a_body_of_many_chunks_for_its_size_is_refused():
    """Gunicorn's chunked reader costs chunks × size in CPU: past CHUNK_WORK_LIMIT the loop
    refuses the body (413), whole or not; a small body of many chunks (a client that
    writes a token a chunk: 1,026 in 6.6 KB, an outside probe) is served."""
    tokens = CHUNKED + b"1\r\na\r\n" * 5000 + b"0\r\n\r\n"  # 30 KB
    assert progress(tokens) is Progress.COMPLETE
    chunk = b"400\r\n" + b"a" * 1024 + b"\r\n"  # 1,024 data bytes in 1,031
    assert 1024 * len(chunk * 1024) <= CHUNK_WORK_LIMIT  # 1 MiB in 1 KiB chunks: served
    assert progress(CHUNKED + chunk * 1024 + b"0\r\n\r\n") is Progress.COMPLETE
    many = CHUNKED + b"1\r\na\r\n" * 20_000  # 120 KB: 20,000 × 120 KB
    assert progress(many + b"0\r\n\r\n") is Progress.FRAMING_TOO_LARGE
    assert progress(many) is Progress.FRAMING_TOO_LARGE


def test_headers_over_the_limit_are_refused_however_they_arrive():
    """84 KB of headers were a 431 when they arrived in pieces and served in one."""
    head = b"GET /health HTTP/1.1\r\n" + b"X-A: " + b"a" * 7000 + b"\r\n"
    request = head + b"X-B: " + b"b" * (HEADER_LIMIT - 7000) + b"\r\n\r\n"
    assert progress(request) is Progress.HEADERS_TOO_LARGE
    scan = Scan()
    assert progress(request[:40_000], scan=scan) is Progress.HEADERS
    assert progress(request, scan=scan) is Progress.HEADERS_TOO_LARGE


def test_a_chunk_arriving_counts_towards_the_limit():
    """One chunk larger than the limit is handed over once its data passes the limit (the
    app answers 413), not held until the framing cap."""
    start = CHUNKED + b"100000\r\n"  # 1 MiB in one chunk
    assert progress(start + b"a" * 999, 1000) is Progress.BODY
    assert progress(start + b"a" * 1001, 1000) is Progress.COMPLETE


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
