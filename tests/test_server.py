"""The real thing: Gunicorn started from the Procfile's command, over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from app.config import PROJECT_ROOT
from app.server.__main__ import HELP

pytestmark = pytest.mark.slow

REVIEWS = [
    "Absolutely loved the service, thank you!",
    "My flight was cancelled and nobody helped. Terrible.",
    "Flight 1234 departs at 6pm from gate B2.",
]
ROUTER_REQUEST_ID = "d6f1c5a2-0b7e-4e0f-9a55-0c1d2e3f4a5b"


def json_lines(text: str, strict: bool = True) -> list[dict]:
    """The lines the server printed, parsed; ``strict`` fails on a line that is not JSON.

    Not strict: TensorFlow's C++ runtime writes two plain lines to stderr at start-up,
    and Gunicorn prints a failed worker's bare exception text.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines if strict or line.startswith("{")]


@pytest.mark.parametrize("backend", ["openvino", "tensorflow"])
def test_procfile_server_classifies_and_stops_cleanly(start_server, backend):
    server = start_server(KERAS_BACKEND=backend, WEB_CONCURRENCY="2")
    server.wait_ready()

    single = requests.post(
        server.url + "/classify",
        json={"review": REVIEWS[0]},
        headers={"X-Request-ID": ROUTER_REQUEST_ID},
        timeout=10,
    )
    assert single.status_code == 200
    assert single.headers["X-Request-ID"] == ROUTER_REQUEST_ID
    assert single.json()["label"] == "positive"

    batch = requests.post(server.url + "/classify", json={"reviews": REVIEWS}, timeout=10)
    assert batch.status_code == 200
    labels = [p["label"] for p in batch.json()["predictions"]]
    assert labels[:2] == ["positive", "negative"]

    bad = requests.post(server.url + "/classify", data="{", timeout=10)
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"

    assert server.stop() == 0
    lines = json_lines(server.log(), strict=backend == "openvino")
    loaded = [line for line in lines if line["message"] == "model loaded"]
    versions = {line["model_version"] for line in loaded}
    assert len(loaded) == 2 * len(versions)  # every version once per worker
    assert {line["backend"] for line in loaded} == {backend}
    assert {line["inference_precision"] for line in loaded} == {"f32"}  # the folders' own
    requests_logged = [line for line in lines if line.get("logger") == "app.request"]
    routed = [line for line in requests_logged if line["request_id"] == ROUTER_REQUEST_ID]
    assert len(routed) == 1
    assert routed[0]["labels"] == ["positive"] and routed[0]["batch_size"] == 1
    assert routed[0]["status"] == 200 and routed[0]["duration_ms"] > 0
    # Review text never reaches the log at INFO.
    assert not any(review in server.log() for review in REVIEWS)


def test_both_backends_give_the_same_answers(start_server):
    answers = {}
    for backend in ("openvino", "tensorflow"):
        server = start_server(KERAS_BACKEND=backend, WEB_CONCURRENCY="1")
        server.wait_ready()
        response = requests.post(server.url + "/classify", json={"reviews": REVIEWS}, timeout=10)
        answers[backend] = response.json()["predictions"]
        server.stop()
    for ov, tf in zip(answers["openvino"], answers["tensorflow"], strict=True):
        assert ov["label"] == tf["label"]
        assert ov["scores"] == pytest.approx(tf["scores"], abs=1e-4)


def test_access_log_is_json_with_request_id(start_server):
    server = start_server(ACCESS_LOG="1", WEB_CONCURRENCY="1")
    server.wait_ready()
    requests.get(server.url + "/health", headers={"X-Request-ID": ROUTER_REQUEST_ID}, timeout=5)
    server.stop()
    lines = json_lines(server.log())
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    [ours] = [line for line in access if line["request_id"] == ROUTER_REQUEST_ID]
    assert (ours["status"], ours["path"]) == (200, "/health")
    # In milliseconds, as the app's line: Gunicorn's time holds the app's.
    [app_line] = [
        x for x in lines if x["logger"] == "app.request" and x["request_id"] == ROUTER_REQUEST_ID
    ]
    assert ours["duration_ms"] >= 0.9 * app_line["duration_ms"] > 0, (ours, app_line)


def raw_request(url: str, head: bytes) -> bytes:
    """Send ``head`` as it is (no client library re-encodes the path) and read the answer
    until the server closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_no_client_makes_a_log_line_longer_than_one_pipe_write(start_server):
    """An outside probe: `GET /` and 1,350 `%01` (a 4 KB request line) was logged as an
    8,319-byte line, each `%01` as `\\u0001`; with stdout a pipe its drain read slowly,
    the two workers' writes of more than PIPE_BUF (4,096 bytes) were spliced into each
    other, and about 600 of 800 lines were not JSON. Every line, the app's, Gunicorn's
    access log (the User-Agent, 8,000 bytes of quotes and backslashes, each escaped to
    two) and its debug lines, now stays under 4,096 bytes with its newline, and says
    what it cut; an ordinary request's lines are as they were."""
    server = start_server(ACCESS_LOG="1", LOG_LEVEL="debug", WEB_CONCURRENCY="1")
    server.wait_ready()
    long_id, path = "a-long-line-request-0001", "/" + "%01" * 1350
    user_agent = '"\\' * 4000
    answer = raw_request(
        server.url,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: {user_agent}\r\n"
        f"X-Request-ID: {long_id}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 404 ")
    answer = raw_request(
        server.url,
        b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: probe/1.0\r\n"
        + f"X-Request-ID: {ROUTER_REQUEST_ID}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert server.stop() == 0

    lines = [line for line in server.log_path.read_bytes().split(b"\n") if line]
    assert max(len(line) for line in lines) < 4096
    parsed = [json.loads(line) for line in lines]
    by_id = {}
    for line in parsed:
        if line["logger"] in ("app.request", "gunicorn.access"):
            by_id.setdefault(line["request_id"], {})[line["logger"]] = line
    app_line, access = by_id[long_id]["app.request"], by_id[long_id]["gunicorn.access"]
    assert app_line["status"] == 404 and app_line["truncated"] == {"path": 1351}
    assert app_line["path"].startswith("/\x01\x01") and app_line["path"].endswith("…")
    assert set(access["truncated"]) == {"path", "user_agent"}
    assert access["truncated"]["user_agent"] == len(user_agent)
    assert access["user_agent"].startswith('"\\"\\') and access["user_agent"].endswith("…")
    assert access["status"] == 404
    # An ordinary request: its lines whole, nothing added.
    health = by_id[ROUTER_REQUEST_ID]["app.request"]
    assert list(health) == [
        "level", "logger", "pid", "message", "request_id", "method", "path", "status",
        "duration_ms", "time",
    ]  # fmt: skip
    assert (health["method"], health["path"], health["status"]) == ("GET", "/health", 200)
    health_access = by_id[ROUTER_REQUEST_ID]["gunicorn.access"]
    assert "truncated" not in health_access
    assert (health_access["path"], health_access["user_agent"]) == ("/health", "probe/1.0")


@pytest.mark.parametrize(
    ("inline", "access_log"), [(" 5", "true "), ("+5", " 1"), ("0001000", "YES")]
)
def test_gunicorn_conf_reads_settings_as_the_check_parsed_them(start_server, inline, access_log):
    """gunicorn.conf.py read the raw text: INLINE_MAX_BYTES=" 5" passed the check and
    stopped the server (exit 1), ACCESS_LOG="true " passed it and left the log off."""
    server = start_server(INLINE_MAX_BYTES=inline, ACCESS_LOG=access_log, WEB_CONCURRENCY="1")
    server.wait_ready()
    requests.get(server.url + "/health", headers={"X-Request-ID": ROUTER_REQUEST_ID}, timeout=5)
    assert server.stop() == 0
    access = [line for line in json_lines(server.log()) if line["logger"] == "gunicorn.access"]
    assert any(line["request_id"] == ROUTER_REQUEST_ID for line in access)


def test_help_says_whose_defaults_it_lists_whatever_the_environment():
    """`python -m app.server --help` is Gunicorn's help, whose defaults (127.0.0.1:8000,
    one sync worker) are not what the server runs with: it says so first, and a bad
    setting in the environment does not stop it."""
    result = subprocess.run(
        [sys.executable, "-m", "app.server", "--help"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "WEB_CONCURRENCY": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(HELP) and "usage: gunicorn" in result.stdout
