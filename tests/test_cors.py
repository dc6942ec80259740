"""Cross-origin headers (CORS_ORIGINS) through the test client; a real Chromium enforcing
them is in tests/test_web.py."""

from __future__ import annotations

import re
import socket

import pytest

APP = "https://app.example.com"
KEY = "k3y-" + "d5" * 16


def preflight(client, origin: str, path: str = "/classify"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, content-encoding",
        },
    )


def test_off_by_default(client):
    answer = client.post("/classify", json={"review": "Fine."}, headers={"Origin": APP})
    assert answer.status_code == 200
    assert not [name for name, _ in answer.headers.items() if name.startswith("Access-Control-")]
    assert "Access-Control-Allow-Origin" not in preflight(client, APP).headers


@pytest.mark.parametrize("path", ["/classify", "/v1/models/sentiment:predict", "/feedback"])
def test_a_listed_origin_passes_its_preflight_even_on_a_keyed_server(make_app, path):
    client = make_app(CORS_ORIGINS=(APP, "http://localhost:3000"), API_KEYS=(KEY,)).test_client()
    answer = preflight(client, APP, path)
    assert answer.status_code == 204 and not answer.data
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    allowed = answer.headers["Access-Control-Allow-Headers"]
    assert set(allowed.split(", ")) == {"authorization", "content-type", "content-encoding"}
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS, POST"
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_answers_and_errors_name_the_origin_and_expose_the_request_id(make_app):
    client = make_app(CORS_ORIGINS=(APP,), API_KEYS=(KEY,)).test_client()
    keyed = {"Origin": APP, "Authorization": f"Bearer {KEY}"}
    answer = client.post("/classify", json={"review": "Fine."}, headers=keyed)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == APP
    exposed = answer.headers["Access-Control-Expose-Headers"].split(", ")
    assert {"X-Request-ID", "X-Model-Version"} <= set(exposed)
    # A browser app can read why it was refused (401 and its WWW-Authenticate).
    refused = client.post("/classify", json={"review": "Fine."}, headers={"Origin": APP})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
    other = client.post(
        "/classify",
        json={"review": "Fine."},
        headers={**keyed, "Origin": "https://elsewhere.example"},
    )
    assert other.status_code == 200  # the server answers; the browser withholds it
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_request_without_origin_gets_no_cors_headers(make_app):
    """Servers and scripts send no Origin: nothing to tell them, nothing computed."""
    client = make_app(CORS_ORIGINS=("*",)).test_client()
    answer = client.post("/classify", json={"review": "Fine."})
    assert answer.status_code == 200
    assert not [name for name, _ in answer.headers.items() if name.startswith("Access-Control-")]


def test_any_origin(make_app):
    client = make_app(CORS_ORIGINS=("*",)).test_client()
    answer = client.post("/classify", json={"review": "Fine."}, headers={"Origin": APP})
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight(client, "http://localhost:5173").headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("origins", [(APP,), (APP, "http://localhost:3000"), ("*",)])
@pytest.mark.parametrize("path", ["/health", "/static/page/main.js", "/openapi.json"])
def test_every_answer_varies_by_origin(make_app, origins, path):
    """With or without Origin, with one origin, several, or any: a shared cache keeps one
    copy an Origin (an outside probe: one origin, or no Origin, gave no Vary: Origin)."""
    client = make_app(CORS_ORIGINS=origins).test_client()
    for headers in ({"Origin": APP}, {}):
        with client.get(path, headers=headers) as answer:
            assert answer.status_code == 200
            assert "Origin" in answer.vary, (headers, answer.headers.get("Vary"))
    assert "Vary" not in make_app().test_client().get("/health").headers  # CORS off


def test_the_workers_own_answers_grant_a_listed_origin(start_server):
    """What the worker answers before the app has the request (a 408 for a body that
    stops, a 431 for headers over the limit) had no CORS headers: a browser app on a
    listed origin saw a network error, not the reason (an outside probe)."""
    server = start_server(CORS_ORIGINS=APP, REQUEST_READ_TIMEOUT="1")
    server.wait_ready()

    def answer(origin: str, rest: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nOrigin: %s\r\n" % origin.encode())
            sock.sendall(rest)
            return sock.makefile("rb").read().partition(b"\r\n\r\n")[0]

    stalled = b'Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{"review": '
    oversized = b"X-Filler: %s\r\n\r\n" % (b"f" * 70_000)
    for rest, status in [(stalled, b"408"), (oversized, b"431")]:
        head = answer(APP, rest)
        assert head.startswith(b"HTTP/1.1 " + status), head
        assert f"\r\nAccess-Control-Allow-Origin: {APP}\r\n".encode() in head
        assert b"\r\nVary: Origin\r\n" in head
        exposed = re.search(rb"\r\nAccess-Control-Expose-Headers: ([^\r]*)", head)[1]
        assert {b"X-Request-ID", b"Retry-After"} <= set(exposed.split(b", "))
        refused = answer("https://elsewhere.example", rest)
        assert refused.startswith(b"HTTP/1.1 " + status) and b"Access-Control" not in refused
