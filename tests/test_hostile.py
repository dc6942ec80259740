"""Hostile and malformed input against a real Gunicorn: the documented 4xx, never a 5xx,
and the workers stay up (same pids before and after the whole table)."""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import http.client
import json
import re
import socket
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from deploy.dyno import WebProcess

pytestmark = pytest.mark.slow

MAX_TEXT_CHARS = 5000
MAX_BATCH_SIZE = 64
JSON_TYPE = "application/json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = WebProcess(
        {"WEB_CONCURRENCY": "2"}, log_path=tmp_path_factory.mktemp("hostile") / "server.log"
    )
    server.wait_ready()
    yield server
    server.stop()


def worker_pids(server: WebProcess) -> set[int]:
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return {int(pid) for pid in path.read_text().split()}


def send(server: WebProcess, method: str, path: str, body: bytes | None, headers: dict) -> tuple:
    """One raw request; the status and the parsed JSON body (None if not JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        is_json = response.getheader("Content-Type", "").startswith(JSON_TYPE)
        return response.status, json.loads(data) if is_json else None
    finally:
        connection.close()


def j(value) -> bytes:
    return json.dumps(value).encode()


REVIEW = "The flight was on time and the crew was kind."
LONG_RATED = "a" * (MAX_TEXT_CHARS - 100) + " 1/5" * 25
# (id, body bytes, content type, expected status, expected error code or None for 200)
BODY_CASES = [
    ("not-json", b"hello", JSON_TYPE, 400, "invalid_json"),
    ("truncated", b'{"review": "abc', JSON_TYPE, 400, "invalid_json"),
    ("empty-body", b"", JSON_TYPE, 400, "invalid_json"),
    ("array", j([REVIEW]), JSON_TYPE, 400, "validation_error"),
    ("string", j(REVIEW), JSON_TYPE, 400, "validation_error"),
    ("number", b"42", JSON_TYPE, 400, "validation_error"),
    ("null", b"null", JSON_TYPE, 400, "validation_error"),
    ("no-content-type", j({"review": REVIEW}), None, 415, "unsupported_media_type"),
    ("text-plain", j({"review": REVIEW}), "text/plain", 415, "unsupported_media_type"),
    ("form", b"review=hello", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("charset-utf8", j({"review": REVIEW}), "application/json; charset=utf-8", 200, None),
    ("charset-upper", j({"review": REVIEW}), "application/json;charset=UTF-8", 200, None),
    ("json-suffix-type", j({"review": REVIEW}), "application/vnd.api+json", 200, None),
    # JSON is UTF-8 (RFC 8259); a charset parameter does not change how the body is read.
    ("charset-latin1-ascii", j({"review": REVIEW}), "application/json; charset=latin-1", 200, None),
    ("utf16-body", json.dumps({"review": REVIEW}).encode("utf-16"), JSON_TYPE, 200, None),
    ("invalid-utf8", b'{"review": "caf\xe9 \xff\xfe"}', JSON_TYPE, 400, "invalid_json"),
    ("bom", b"\xef\xbb\xbf" + j({"review": REVIEW}), JSON_TYPE, 200, None),
    # A lone surrogate escape is not text (I-JSON, RFC 7493); its echo in an error was a 500.
    ("lone-surrogate-key", b'{"\\udc80": 1}', JSON_TYPE, 400, "invalid_json"),
    (
        "lone-surrogate-key-beside",
        b'{"review": "ok", "\\ud800": 2}',
        JSON_TYPE,
        400,
        "invalid_json",
    ),
    ("lone-surrogate-text", b'{"review": "bad \\udc80 text"}', JSON_TYPE, 400, "invalid_json"),
    ("surrogate-pair-text", b'{"review": "good \\ud83d\\ude00"}', JSON_TYPE, 200, None),
    # The same surrogates as bytes (CESU-8, or UTF-16 without their pair) were scored.
    (
        "lone-surrogate-bytes",
        b'{"review": "great \xed\xa0\x80 flight"}',
        JSON_TYPE,
        400,
        "invalid_json",
    ),
    (
        "surrogate-pair-bytes",
        b'{"review": "\xed\xa0\xbd\xed\xb8\x80 great"}',
        JSON_TYPE,
        400,
        "invalid_json",
    ),
    (
        "lone-surrogate-utf16",
        '{"review": "great \ud800 flight"}'.encode("utf-16-le", "surrogatepass"),
        JSON_TYPE,
        400,
        "invalid_json",
    ),
    ("escaped-backslash-u", b'{"review": "\\\\udc80"}', JSON_TYPE, 200, None),
    ("nul-and-controls", j({"review": "good\u0000 flight\u0007\u001b[31m"}), JSON_TYPE, 200, None),
    # Nothing a model reads: it was scored as the empty text, which is refused.
    ("only-controls", j({"review": "\u0000\u0001"}), JSON_TYPE, 400, "validation_error"),
    (
        "only-invisible",
        j({"review": " \u200b\u2060\ufeff\u200d "}),
        JSON_TYPE,
        400,
        "validation_error",
    ),
    ("invisible-and-text", j({"review": "\u200bgreat flight"}), JSON_TYPE, 200, None),
    ("emoji", j({"review": "😍✈️👍🏽 best trip"}), JSON_TYPE, 200, None),
    ("rtl", j({"review": "\u202eالرحلة كانت رائعة"}), JSON_TYPE, 200, None),
    ("combining", j({"review": "Z\u0351\u0352a\u0353l\u0354g\u0355o great"}), JSON_TYPE, 200, None),
    ("max-chars", j({"review": "a" * MAX_TEXT_CHARS}), JSON_TYPE, 200, None),
    (
        "max-chars-plus-1",
        j({"review": "a" * (MAX_TEXT_CHARS + 1)}),
        JSON_TYPE,
        400,
        "validation_error",
    ),
    ("max-chars-emoji", j({"review": "😀" * MAX_TEXT_CHARS}), JSON_TYPE, 200, None),
    # Ratings are looked for in every text (app/serving/preprocessing.py): a search for
    # the word before each one over all the text before it took 9 s for this text.
    ("rated-long-word", j({"reviews": [LONG_RATED] * MAX_BATCH_SIZE}), JSON_TYPE, 200, None),
    ("ratings-only", j({"review": "1/5 " * (MAX_TEXT_CHARS // 4)}), JSON_TYPE, 200, None),
    ("star-ratings", j({"reviews": ["5⭐ " * (MAX_TEXT_CHARS // 3)] * 64}), JSON_TYPE, 200, None),
    ("whitespace", j({"review": " \t\n\u00a0"}), JSON_TYPE, 400, "validation_error"),
    ("reviews-0", j({"reviews": []}), JSON_TYPE, 400, "validation_error"),
    ("reviews-1", j({"reviews": [REVIEW]}), JSON_TYPE, 200, None),
    ("reviews-max", j({"reviews": [REVIEW] * MAX_BATCH_SIZE}), JSON_TYPE, 200, None),
    ("reviews-max-plus-1", j({"reviews": [REVIEW] * 65}), JSON_TYPE, 400, "validation_error"),
    ("item-number", j({"reviews": [REVIEW, 7]}), JSON_TYPE, 400, "validation_error"),
    ("item-null", j({"reviews": [None]}), JSON_TYPE, 400, "validation_error"),
    ("item-object", j({"reviews": [{"text": REVIEW}]}), JSON_TYPE, 400, "validation_error"),
    ("item-list", j({"reviews": [[REVIEW]]}), JSON_TYPE, 400, "validation_error"),
    ("review-object", j({"review": {"text": REVIEW}}), JSON_TYPE, 400, "validation_error"),
    ("both-fields", j({"review": REVIEW, "reviews": [REVIEW]}), JSON_TYPE, 400, "validation_error"),
    ("unknown-field", j({"review": REVIEW, "admin": True}), JSON_TYPE, 400, "validation_error"),
    ("duplicate-keys", b'{"review": "a", "review": "b"}', JSON_TYPE, 400, "invalid_json"),
    ("deep-nesting", b"[" * 10_000 + b"]" * 10_000, JSON_TYPE, 400, "invalid_json"),
    ("deep-objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON_TYPE, 400, "invalid_json"),
    ("huge-float", b'{"review": 1e999999}', JSON_TYPE, 400, "validation_error"),
    ("huge-int", b'{"review": ' + b"9" * 5000 + b"}", JSON_TYPE, 400, "invalid_json"),
    ("nan", b'{"review": NaN}', JSON_TYPE, 400, "validation_error"),
    ("path-as-text", j({"review": "/etc/passwd"}), JSON_TYPE, 200, None),
    (
        "url-as-text",
        j({"review": "http://169.254.169.254/latest/meta-data/"}),
        JSON_TYPE,
        200,
        None,
    ),
]


def test_bad_and_odd_bodies(server):
    before = worker_pids(server)
    failures = []
    for case_id, body, content_type, status, code in BODY_CASES:
        headers = {"Content-Type": content_type} if content_type else {}
        got_status, got = send(server, "POST", "/classify", body, headers)
        problem = None
        if got_status != status:
            problem = f"status {got_status}, expected {status}"
        elif got is None:
            problem = "body is not JSON"
        elif code and got.get("error", {}).get("code") != code:
            problem = f"code {got.get('error')}, expected {code}"
        elif code is None and got.get("label") is None and "predictions" not in got:
            problem = f"no prediction in {got}"
        if problem:
            failures.append(f"{case_id}: {problem}")
    assert not failures, "\n".join(failures)
    assert worker_pids(server) == before, "a worker died"


def test_path_and_url_text_is_classified_not_fetched(server):
    status, body = send(
        server,
        "POST",
        "/classify",
        j({"review": "file:///etc/passwd"}),
        {"Content-Type": JSON_TYPE},
    )
    assert status == 200
    assert "root:" not in json.dumps(body)


def routes_with_methods(server: WebProcess) -> list[tuple[str, set[str]]]:
    """Every documented path (from the OpenAPI document) and its methods."""
    document = requests.get(server.url + "/openapi.json", timeout=10).json()
    routes = []
    for path, operations in document["paths"].items():
        concrete = path.replace("{name}", "sentiment").replace("{version}", "1")
        routes.append((concrete, {method.upper() for method in operations}))
    return routes


def test_wrong_methods_on_every_route_are_refused(server):
    """405; under /v1/, TF Serving's 400 "Malformed request: <METHOD> <path>"."""
    before = worker_pids(server)
    routes = routes_with_methods(server)
    assert len(routes) >= 8
    failures = []
    for path, methods in routes:
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - methods:
            status, body = send(server, method, path, b"{}", {"Content-Type": JSON_TYPE})
            expected = 400 if path.startswith("/v1/") else 405
            if status != expected or body is None:
                failures.append(f"{method} {path}: {status} {body}")
            elif expected == 400 and body != {"error": f"Malformed request: {method} {path}"}:
                failures.append(f"{method} {path}: {body}")
    assert not failures, "\n".join(failures)
    assert worker_pids(server) == before


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/classify/",
        "/CLASSIFY",
        "/classify/extra",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../app/config.py",
        "/static/%2e%2e/config.py",
        "/classify%00",
        "/v1/models/other",
        "/v1/models/sentiment/versions/999",
        "/" + "a" * 3000,
    ],
)
def test_unknown_and_odd_paths_are_404(server, path):
    status, body = send(server, "GET", path, None, {})
    assert status == 404
    assert body is not None  # JSON, in the shape of the API under that prefix


def test_repeated_slashes_are_merged(server):
    status, body = send(server, "GET", "//classify", None, {})
    assert status == 405 and body["error"]["code"] == "method_not_allowed"


def test_unknown_query_parameters_are_refused(server):
    status, body = send(
        server,
        "POST",
        "/classify?debug=1&x=%00",
        j({"review": REVIEW}),
        {"Content-Type": JSON_TYPE},
    )
    assert status == 400 and body["error"]["code"] == "validation_error"
    assert body["error"]["details"] == {"debug": ["Unknown field."], "x": ["Unknown field."]}


def test_oversized_body_is_refused_before_it_is_read(server):
    """A 200 MB Content-Length gets 413 at once; the server does not wait for the body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000000\r\n\r\n" + b'{"review": "' + b"a" * 1000
        )
        started = time.monotonic()
        reply = b""
        while b'"payload_too_large"' not in reply and time.monotonic() - started < 5:
            chunk = sock.recv(65536)  # headers and body may come in separate packets
            if not chunk:
                break
            reply += chunk
    reply = reply.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413")
    assert time.monotonic() - started < 5
    assert '"payload_too_large"' in reply


def test_oversized_chunked_body_is_refused(server):
    def chunks():
        for _ in range(40):  # 2 MB in 50 kB chunks, no Content-Length
            yield b"a" * 50_000

    response = requests.post(
        server.url + "/classify", data=chunks(), headers={"Content-Type": JSON_TYPE}, timeout=30
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def gzip_bomb(prefix: bytes, inflated_bytes: int) -> bytes:
    """A gzip stream of ``prefix`` and then spaces, ``inflated_bytes`` in all, which
    weighs about a thousandth of that."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflater.compress(prefix)]
    block = b" " * (1 << 20)
    for _ in range(inflated_bytes >> 20):
        parts.append(deflater.compress(block))
    return b"".join([*parts, deflater.flush()])


def test_a_body_over_the_limit_is_refused_with_connection_close(server):
    """The app refuses a body over MAX_CONTENT_LENGTH (1 MiB) unread, and Gunicorn drains
    at most 64 KiB of it before closing: the 413 said "keep-alive", and a pooled client's
    next request on that connection failed (requests: RemoteDisconnected, 5 runs of 5)."""
    with requests.Session() as session:
        for size in (1_048_700, 1_100_000):  # whole in memory; over BODY_LIMIT
            body = b'{"review": "' + b"a" * size + b'"}'
            refused = session.post(
                server.url + "/classify", data=body, headers={"Content-Type": JSON_TYPE}
            )
            assert refused.status_code == 413, refused.text
            assert refused.headers["Connection"] == "close"
            assert "error" in refused.json()
            fine = session.post(server.url + "/classify", json={"review": "Fine."}, timeout=10)
            assert fine.status_code == 200


def exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request on ``sock`` and read its answer (framed by Content-Length):
    the status, the headers (lower-case names) and the body."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data[:80]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the body")
        body += chunk
    return int(lines[0].split()[1]), headers, body


def raw(method: str, target: str, body: bytes, *headers: str) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if not any(line.lower().startswith("transfer-encoding") for line in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


FINE = raw("POST", "/classify", j({"review": REVIEW}), f"Content-Type: {JSON_TYPE}")


@pytest.mark.parametrize(
    ("method", "target", "content_type", "status"),
    [
        ("POST", "/classify", "text/plain", 415),
        ("POST", "/classify?foo=1", JSON_TYPE, 400),
        ("POST", "/v1/models/other:predict", JSON_TYPE, 404),
        ("PUT", "/classify", JSON_TYPE, 405),
    ],
)
def test_a_long_body_refused_unread_keeps_its_connection(
    server, method, target, content_type, status
):
    """A request over INLINE_MAX_BYTES (128 KiB) is served on a thread. Refused without its
    body being read, the answer said keep-alive, but Gunicorn drained 64 KiB of the body and
    closed: the client's next request on the connection got nothing (Node's http.Agent,
    Java's HttpClient, requests; found by a probe). The body is all in memory: drained."""
    body = j({"reviews": ["a" * 4000] * 64})  # 256 KB: a batch of long reviews
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(2):
            refused = exchange(sock, raw(method, target, body, f"Content-Type: {content_type}"))
            assert refused[0] == status
            assert refused[1]["connection"] != "close"
            assert exchange(sock, FINE)[0] == 200


def test_a_chunked_body_past_the_limit_is_413_with_connection_close(server):
    """Chunked, no length to refuse it by: the app reads up to MAX_CONTENT_LENGTH (1 MiB)
    and answers 413; the rest is on its way, and the answer says so."""
    chunk = b"a" * 65536
    body = b"".join(b"10000\r\n" + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    request = raw(
        "POST", "/classify", body, f"Content-Type: {JSON_TYPE}", "Transfer-Encoding: chunked"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        status, headers, _ = exchange(sock, request)
    assert (status, headers["connection"]) == (413, "close")


def test_a_body_announced_over_the_limit_gets_413_not_100_continue(server):
    """RFC 9110 10.1.1: Expect lets a server refuse on the headers alone. curl asks for 100
    Continue above 1 MB; it got it, sent megabytes, then read the 413."""
    request = raw(
        "POST", "/classify", b"", f"Content-Type: {JSON_TYPE}", "Expect: 100-continue"
    ).replace(b"Content-Length: 0", b"Content-Length: 20000000")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        status, headers, body = exchange(sock, request)
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body)["error"]


def test_gzip_bombs_on_every_route_are_413(server):
    """1 GB of JSON in a 1 MB gzip body (within MAX_CONTENT_LENGTH, 1 MiB), eight
    at a time to each route that reads a body: 413 in the route's shape, as what the body
    inflates to is over MAX_CONTENT_LENGTH, and no worker runs out of memory."""
    before = worker_pids(server)
    bomb = gzip_bomb(b'{"review": "Fine."' + b" " * 10, 1000 << 20)
    assert len(bomb) < 1 << 20  # so the server reads it: only what it inflates to is over
    headers = {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"}
    paths = ["/classify", "/explain", "/feedback", "/v1/models/sentiment:predict"]
    paths.append("/v2/models/sentiment/infer")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda path: (path, *send(server, "POST", path, bomb, headers)), paths * 8)
        )
    for path, status, body in answers:
        assert status == 413, (path, status, body)
        assert body is not None and "error" in body
    assert worker_pids(server) == before
    assert requests.get(server.url + "/ready", timeout=5).status_code == 200


def test_malformed_http_is_refused_in_json_and_workers_survive(server):
    """Gunicorn refuses broken HTTP itself, before the app (a request line over 4,094
    bytes, a header over 8,190, garbage), in the API's JSON error shape; the workers keep
    serving."""
    before = worker_pids(server)
    status, body = send(server, "GET", "/" + "a" * 5000, None, {})
    assert status == 414
    assert body["error"]["code"] == "uri_too_long"
    assert "4094" in body["error"]["message"]
    status, body = send(server, "POST", "/classify", j({"review": REVIEW}), {"X-Big": "a" * 9000})
    assert (status, body["error"]["code"]) == (431, "request_header_fields_too_large")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        head, _, data = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Content-Type: application/json" in head
    assert json.loads(data)["error"]["code"] == "bad_request"
    # The headers of every API answer (an outside probe: Gunicorn's refusals had none).
    assert re.search(rb"\r\nX-Request-ID: [0-9a-f]{32}\r\n", head), head
    assert b"\r\nCache-Control: no-store\r\n" in head, head
    assert b"\r\nX-Content-Type-Options: nosniff\r\n" in head, head
    assert b"\r\nConnection: close\r\n" in head, head  # no keep-alive pool reuses it
    assert worker_pids(server) == before
    assert requests.get(server.url + "/ready", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "connection",
    [b"Connection: keep-alive, close\r\n", b"Connection: keep-alive\r\nConnection: Close\r\n"],
)
def test_close_among_the_connection_options_closes(server, connection):
    """RFC 9112 9.6: a request whose Connection header lists "close" is the last one.
    Gunicorn read only a lone "close" and answered "keep-alive, close" with keep-alive."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + connection + b"\r\n")
        reply = b""
        while chunk := sock.recv(65536):  # the server ends the connection (else: timeout)
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert b"\r\nConnection: close\r\n" in reply, reply


def test_a_header_line_refused_whole_is_not_repeated(server):
    """A header line without its colon is refused whole: Gunicorn's message repeats the
    line, in the answer and in its log, and an "Authorization Bearer KEY" line put the key
    in both (an outside probe). The line is now only counted."""
    secret = "Bearer 0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /model HTTP/1.1\r\nHost: x\r\nAuthorization {secret}\r\n\r\n".encode())
        head, _, data = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    error = json.loads(data)["error"]
    assert error["code"] == "bad_request"
    assert error["message"] == (
        "Invalid HTTP header line of 53 characters (not shown: it may hold a key)"
    )
    time.sleep(0.2)  # the worker's warning line
    assert "characters (not shown" in server.log() and secret[7:] not in server.log()


@pytest.mark.parametrize(
    ("line", "status", "message"),
    [
        (b"GET * HTTP/1.1", b"400 Bad Request", "Invalid HTTP request line: 'GET * HTTP/1.1'"),
        (b"GET /health HTTP/1.x", b"400 Bad Request", "Invalid HTTP Version: 'HTTP/1.x'"),
        # RFC 9110 15.6.6: a version not spoken is a 505, not the 400 of a garbled one
        (
            b"GET /health HTTP/2.0",
            b"505 HTTP Version Not Supported",
            "HTTP/2.0 is not supported here: send HTTP/1.1 or HTTP/1.0",
        ),
        (
            b"GET /health HTTP/0.9",
            b"505 HTTP Version Not Supported",
            "HTTP/0.9 is not supported here: send HTTP/1.1 or HTTP/1.0",
        ),
    ],
)
def test_a_refused_request_line_is_said_once(server, line, status, message):
    """Gunicorn's message, not wrapped in a second title of its own ("Invalid HTTP Version
    'Invalid HTTP Version: (2, 0)'", an outside probe), in the API's error shape."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(line + b"\r\nHost: x\r\n\r\n")
        head, _, data = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status + b"\r\n"), head
    error = json.loads(data)["error"]
    assert error["message"] == message
    assert error["code"] == status.decode().split(" ", 1)[1].lower().replace(" ", "_")


def test_options_asterisk_answers_for_the_server(server):
    """RFC 9110 9.3.7: ``OPTIONS *`` asks about the server, not a resource; it was a 404
    "No resource exists at this URL"."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, data = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 204 "), head
    assert b"\r\nAllow: GET, HEAD, POST, OPTIONS\r\n" in head
    assert data == b""


@pytest.mark.parametrize("path", ["/classify", "/feedback"])  # on the loop; on a thread
def test_an_http_1_1_request_without_host_is_a_400(server, path):
    """RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host (an
    empty one is allowed); Gunicorn served it. HTTP/1.0 needs none."""
    body = j({"review": REVIEW})
    head = f"POST {path} HTTP/1.1\r\nContent-Type: application/json\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode() + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        answer, _, data = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"\r\nConnection: close\r\n" in answer
    assert json.loads(data)["error"] == {
        "code": "bad_request",
        "message": "an HTTP/1.1 request needs a Host header (RFC 9112, 3.2)",
        "details": {},
    }
    for version, host in [(b"HTTP/1.1", b"Host:\r\n"), (b"HTTP/1.0", b"")]:
        request = b"POST /classify %s\r\n%sContent-Type: application/json\r\n" % (version, host)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                request + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            answer = sock.makefile("rb").read()
        assert answer.split(b"\r\n", 1)[0].endswith(b" 200 OK"), answer


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"br, chunked"])
def test_a_transfer_coding_other_than_chunked_is_a_501(server, coding):
    """RFC 9112 6.1: a transfer coding the server does not decode is a 501. Gunicorn
    took gzip, deflate and compress before chunked and gave the app the coded bytes as
    the body (a plain body labelled gzip was classified); its own 501 for the others said
    "Bad Request"."""
    body = j({"review": REVIEW})
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: %s\r\n\r\n%s" % (coding, chunked)
        )
        answer, _, data = sock.makefile("rb").read().partition(b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), answer
    assert b"\r\nConnection: close\r\n" in answer
    error = json.loads(data)["error"]
    assert error["code"] == "not_implemented"
    assert error["message"] == f"Unsupported transfer coding: {coding.decode()!r}"
    # From the head alone: the worker waited for the whole chunked body first (to
    # REQUEST_READ_TIMEOUT, then 408, for a client that waits for the answer before it sends).
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n" % coding
        )
        assert answer_within(sock, 3).startswith(b"HTTP/1.1 501 Not Implemented\r\n")


def answer_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before it closes, or before ``seconds`` pass."""
    sock.settimeout(seconds)
    reply = b""
    with contextlib.suppress(TimeoutError):
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


CHUNKED_HEAD = (
    b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def test_requests_the_parser_would_wait_on_never_hold_a_thread(server):
    """Gunicorn's parser, on a thread, waits for more where the loop handed over early:
    after one byte that cannot begin a request (for the end of its line), after 64 KiB of
    headers without their end (it reads up to 800 KB before judging them), and in a
    chunked body past 1 MiB on the wire of mostly framing (the app reads on for its 1 MiB
    of data). A thread reads without a time limit: 8 such sockets held every thread, and
    /monitoring, /feedback and large batches hung (an outside probe). The loop now
    answers the first two at once (400, 431), refuses the third (below), and keeps reading
    a chunked body still arriving (its 408 comes at REQUEST_READ_TIMEOUT)."""
    sockets = {"byte": [], "headers": [], "chunks": []}
    try:
        for _ in range(8):
            for kind, data in [
                ("byte", b" "),
                ("headers", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000),
                ("chunks", CHUNKED_HEAD + b"1000\r\n" + b"a" * 4000),  # 64 KiB short
            ]:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                sock.sendall(data)
                sockets[kind].append(sock)
        for sock in sockets["byte"]:
            reply = answer_within(sock, 5)
            assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply
            assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["code"] == "bad_request"
        for sock in sockets["headers"]:
            reply = answer_within(sock, 5)
            assert reply.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), reply
        # The routes that run on the workers' threads answer.
        batch = {"reviews": ["The room was clean and the staff were kind. " * 50] * 64}
        for method, path, body in [
            ("GET", "/monitoring", None),
            ("POST", "/feedback", j({"request_id": "f" * 32, "label": "positive"})),
            ("POST", "/classify", j(batch)),
        ]:
            headers = {"Content-Type": JSON_TYPE} if body else {}
            status, _ = send(server, method, path, body, headers)
            assert status in (200, 404), (path, status)
        for sock in sockets["chunks"]:  # still arriving, on the loop: no answer yet
            assert answer_within(sock, 0.1) == b""
    finally:
        for held in sockets.values():
            for sock in held:
                sock.close()


@pytest.mark.parametrize(
    "chunks",
    [
        b"1\r\n \r\n" * 190_000,  # 1.14 MB, 190 KB of data: more than 1,024 chunks
        b"1;" + b"e" * 2_300_000,  # one size line, 2.3 MB, never ended
    ],
    ids=["many", "long-line"],
)
def test_a_chunked_body_of_mostly_framing_is_refused(server, chunks):
    """Its data alone stays under MAX_CONTENT_LENGTH: the loop read on while Gunicorn's
    chunked reader, on a thread, would cost chunks × size in CPU (300,000 one-byte
    chunks: 24 s) or wait; now 413 past 1,024 chunks or twice the limit on the wire."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close while this still sends
            sock.sendall(CHUNKED_HEAD + chunks)
        reply = answer_within(sock, 5)
    assert reply.startswith(b"HTTP/1.1 413 Payload Too Large\r\n"), reply[:200]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["code"] == "payload_too_large"


def test_a_small_body_sent_a_token_a_chunk_is_served(server):
    """A client that streams its JSON as it encodes it (requests with a generator: a
    chunk a token) sent 1,026 chunks in 6.6 KB, and a flat cap of 1,024 chunks refused
    it with 413 (an outside probe). The cap is on chunks × size."""
    text = json.dumps({"reviews": [REVIEW] * 32})
    assert len(text) > 1024
    chunks = (character.encode() for character in text)  # a chunk a character
    answer = requests.post(
        server.url + "/classify", data=chunks, headers={"Content-Type": JSON_TYPE}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 32


def test_a_client_that_resets_after_a_refusal_costs_no_worker(server):
    """The loop refuses at once what it cannot serve; a client that resets its connection
    meanwhile made the refusal's send fail, and the connection was closed without leaving
    the loop's watch: the next connection given its descriptor could not be registered
    and the worker died (KeyError; 5 of 6 tries; an outside probe)."""
    before = worker_pids(server)
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        sock.close()  # a reset
        status, _ = send(server, "GET", "/health", None, {})
        assert status == 200
    assert worker_pids(server) == before


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n",
        b"GET /health HTTP/1.1\r\nHost: x\nConnection: close\r\n",  # still arriving
        CHUNKED_HEAD + b"2\n{}\n0\n\n",
    ],
    ids=["line", "partial", "chunks"],
)
def test_a_bare_line_feed_is_a_400_at_once(server, request_bytes):
    """RFC 9112 2.2 lets a server refuse a bare LF as a line end, as Gunicorn's parser
    does; the loop waited for CRLF CRLF and answered 408 after 30 s (an outside probe)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        reply = answer_within(sock, 5)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply


def test_an_http_1_0_client_is_never_sent_100_continue(server):
    """RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored
    (and 15.2: no 1xx to an HTTP/1.0 client); the loop sent it one."""
    body = j({"review": REVIEW})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
        )
        assert answer_within(sock, 1) == b""
        sock.sendall(body)
        reply = answer_within(sock, 10)
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n"), reply


@pytest.mark.parametrize(
    ("request_line", "status_line"),
    [
        (b"GET http://x HTTP/1.1", b"HTTP/1.1 200 OK"),  # RFC 9110 4.2.3: no path is "/"
        (b"GET /health HTTP/1.2", b"HTTP/1.1 200 OK"),  # RFC 9110 2.5: our own version
    ],
)
def test_odd_but_valid_request_lines_are_served(server, request_line, status_line):
    """Werkzeug answered "GET http://x" with a 308 to "http://x/" in HTML; Gunicorn
    answered an HTTP/1.2 request as HTTP/1.2 (outside probes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = answer_within(sock, 10)
    assert reply.split(b"\r\n", 1)[0] == status_line, reply


def test_an_upgrade_to_websocket_is_ignored(server):
    """RFC 9110 7.8: a server may ignore Upgrade; Werkzeug's router answered a WebSocket
    upgrade on every route with 400 (an outside probe)."""
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    response = requests.get(server.url + "/model", headers=headers, timeout=10)
    assert response.status_code == 200
    assert "Upgrade" not in response.headers


def test_the_workers_own_answers_carry_a_date(server):
    """RFC 9110 6.6.1: an origin server with a clock sends Date on its 4xx answers too;
    the worker's own (400, 408, 414, 431, 501) had none (an outside probe)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\x01\r\n\r\n")
        reply = answer_within(sock, 5)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    date = re.search(rb"\r\nDate: ([^\r]+)\r\n", reply)
    assert date, reply
    sent = email.utils.parsedate_to_datetime(date.group(1).decode())
    assert abs(sent.timestamp() - time.time()) < 60


@pytest.mark.parametrize(
    ("path", "chunks"),
    [
        ("/classify", b"zz\r\nhello\r\n0\r\n\r\n"),  # a size that is not hexadecimal
        ("/v1/models/sentiment:predict", b'16\r\n{"instances":["Nice"]}XX0\r\n\r\n'),  # no CRLF
        ("/v2/models/sentiment/infer", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("/classify", b"10000\r\n" + b"a" * 65536 + b"\r\n" * 2 + b"zz\r\n" * 40000),  # a thread's
        ("/classify", b'14\r\n{"review": "Lovely"}\r\n0\r\nno colon here\r\n\r\n'),  # a trailer
        ("/v1/models/sentiment:predict", b'16\r\n{"instances":["Nice"]}\r\n0\r\nHost: x\r\n\r\n'),
    ],
)
def test_a_broken_chunked_body_is_a_400_and_the_connection_closes(server, path, chunks):
    """Gunicorn reads a chunked body's framing only when the app reads the body: a chunk
    size that is not hexadecimal, or a chunk without its line end, was a 500 (in the
    error-rate alert's count) on every route that reads a body, and the answer said
    keep-alive on a connection whose framing is lost. Now a 400 in the route's shape, and
    the connection closes after it, with nothing more sent. A malformed or forbidden
    trailer field was a 400 that still said keep-alive (an outside probe)."""
    request = raw("POST", path, chunks, f"Content-Type: {JSON_TYPE}", "Transfer-Encoding: chunked")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        status, headers, body = exchange(sock, request)
        rest = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                rest += chunk
    assert (status, headers["connection"]) == (400, "close"), body
    error = json.loads(body)["error"]
    message = error if path.startswith("/v") else error["message"]
    assert "chunk" in message, message
    assert rest == b""
    assert requests.get(server.url + "/ready", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/classify", {"reviews": [""] * 60_000}),
        ("/v1/models/sentiment:predict", {"instances": [1] * 60_000}),
        ("/v1/models/sentiment:predict", {"instances": [{"review": ""}] * 60_000}),
        ("/v1/models/sentiment:predict", {"inputs": [""] * 60_000}),
        ("/v1/models/sentiment:predict", {"inputs": {"review": [""] * 60_000}}),
        (
            "/v2/models/sentiment/infer",
            {
                "inputs": [
                    {
                        "name": "review",
                        "shape": [60_000],
                        "datatype": "BYTES",
                        "data": [""] * 60_000,
                    }
                ]
            },
        ),
    ],
)
def test_a_batch_over_the_limit_is_refused_by_its_size_not_item_by_item(server, path, body):
    """A gzipped body of a few KB holding far more blank texts than MAX_BATCH_SIZE: each was
    checked and refused, one message each (25 MB for 349,000 of them), for seconds of the
    worker's loop. Now the batch's size alone is the answer."""
    data = gzip.compress(json.dumps(body).encode())
    assert len(data) < 10_000
    headers = {"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"}
    answer = requests.post(server.url + path, data=data, headers=headers, timeout=30)
    assert answer.status_code == 400, answer.text[:300]
    assert len(answer.content) < 500, answer.text[:500]
    assert "60000" in answer.text, answer.text


@pytest.mark.parametrize("access_log", ["0", "1"])
def test_a_script_name_header_that_does_not_begin_the_path_is_a_400(start_server, access_log):
    """Gunicorn takes SCRIPT_NAME from a header when FORWARDED_ALLOW_IPS trusts the
    sender ("*", the default): a prefix that does not begin the path was a 500 with the
    exception's text and the path, and with ACCESS_LOG=1 the worker died logging it,
    dropping every connection it held (an outside probe). A prefix that does begin it is
    a proxy's mount point, taken off the path."""
    server = start_server(WEB_CONCURRENCY="1", ACCESS_LOG=access_log)
    server.wait_ready("/ready")
    before = worker_pids(server)
    for _ in range(3):
        refused = requests.get(server.url + "/health", headers={"SCRIPT_NAME": "/api"}, timeout=10)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "bad_request" and "SCRIPT_NAME" in error["message"]
        # Gunicorn's other refusals of a request it has read go through the same hands
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")  # no Host
            assert answer_within(sock, 10).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    mounted = requests.get(server.url + "/api/health", headers={"SCRIPT_NAME": "/api"}, timeout=10)
    assert mounted.status_code == 200
    assert worker_pids(server) == before, server.log()[-3000:]
