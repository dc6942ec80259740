"""gzip for the static files and /openapi.json (``app.web.compression``) through the test
client; a real Chromium on a real server decoding them is in tests/test_web.py."""

from __future__ import annotations

import gzip

import pytest
from flask import Flask

from app.web.compression import gzipped

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
COMPRESSED = [
    "/docs/assets/swagger-ui-bundle.js",
    "/docs/assets/swagger-ui.css",
    "/static/style.css",
    "/static/page/batch.js",
    "/openapi.json",
]


def get(client, path: str, **headers: str):
    answer = client.get(path, headers=headers)
    answer.get_data()
    answer.close()
    return answer


@pytest.mark.parametrize("path", COMPRESSED)
def test_a_client_that_accepts_gzip_gets_the_same_bytes_gzipped(client, path):
    plain = get(client, path)
    packed = get(client, path, **GZIP)
    assert plain.status_code == packed.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data) / 2
    assert packed.headers["Content-Type"] == plain.headers["Content-Type"]
    for answer in (plain, packed):  # a cache must key both on Accept-Encoding
        assert "Accept-Encoding" in answer.headers["Vary"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_swagger_bundle_goes_from_1_7_mb_to_under_half_a_megabyte(client):
    plain = get(client, "/docs/assets/swagger-ui-bundle.js")
    packed = get(client, "/docs/assets/swagger-ui-bundle.js", **GZIP)
    assert len(plain.data) > 1_500_000
    assert len(packed.data) < 500_000


@pytest.mark.parametrize("refusal", ["identity", "gzip;q=0", "br"])
def test_a_client_that_does_not_accept_gzip_gets_plain_bytes(client, refusal):
    answer = get(client, "/static/style.css", **{"Accept-Encoding": refusal})
    assert answer.status_code == 200
    assert "Content-Encoding" not in answer.headers
    assert answer.data.startswith(b"/*") or answer.data[:1].isascii()
    assert not answer.headers["ETag"].startswith("W/")


def test_gzip_answers_carry_the_file_s_etag_made_weak_and_no_byte_ranges(client):
    path = "/docs/assets/swagger-ui.css"
    plain, packed = get(client, path), get(client, path, **GZIP)
    strong = plain.headers["ETag"]
    assert packed.headers["ETag"] == "W/" + strong
    assert plain.headers["Accept-Ranges"] == "bytes"
    assert "Accept-Ranges" not in packed.headers


@pytest.mark.parametrize("accepts", [GZIP, {}], ids=["gzip", "plain"])
@pytest.mark.parametrize("held", ["gzip", "plain"])
def test_either_representation_s_etag_revalidates_to_304(client, accepts, held):
    path = "/docs/assets/swagger-ui-bundle.js"
    tag = get(client, path, **(GZIP if held == "gzip" else {})).headers["ETag"]
    again = get(client, path, **accepts, **{"If-None-Match": tag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"].startswith("W/") == bool(accepts)
    assert "Accept-Encoding" in again.headers["Vary"]


def test_a_byte_range_is_of_the_plain_file_even_for_a_gzip_client(client):
    plain = get(client, "/docs/assets/swagger-ui.css")
    part = get(client, "/docs/assets/swagger-ui.css", Range="bytes=10-19", **GZIP)
    assert part.status_code == 206
    assert "Content-Encoding" not in part.headers
    assert part.data == plain.data[10:20]


def test_head_gives_the_gzipped_length_and_no_body(client):
    packed = get(client, "/docs/assets/swagger-ui.css", **GZIP)
    head = client.head("/docs/assets/swagger-ui.css", headers=GZIP)
    assert head.status_code == 200
    assert head.headers["Content-Encoding"] == "gzip"
    assert head.headers["Content-Length"] == packed.headers["Content-Length"]
    assert head.data == b""


def test_api_answers_are_not_compressed(client):
    answer = client.post("/classify", json={"review": "Lovely crew."}, headers=GZIP)
    assert answer.status_code == 200
    assert "Content-Encoding" not in answer.headers
    assert "Vary" not in answer.headers
    assert answer.json["label"] == "positive"
    missing = get(client, "/static/no-such-file.js", **GZIP)
    assert missing.status_code == 404
    assert "Content-Encoding" not in missing.headers


def test_a_changed_file_is_compressed_again(tmp_path):
    """The kept bodies are keyed by the file's ETag, so an edit is never served stale."""
    (tmp_path / "app.js").write_text("let first = 1;\n" * 200)
    app = Flask("gzip-check", static_folder=str(tmp_path), static_url_path="/static")
    app.view_functions["static"] = gzipped(app.make_response, app.view_functions["static"])
    client = app.test_client()
    first = get(client, "/static/app.js", **GZIP)
    assert gzip.decompress(first.data) == b"let first = 1;\n" * 200
    (tmp_path / "app.js").write_text("let second = 22;\n" * 300)
    second = get(client, "/static/app.js", **GZIP)
    assert second.headers["ETag"] != first.headers["ETag"]
    assert gzip.decompress(second.data) == b"let second = 22;\n" * 300


@pytest.mark.parametrize("accepts", [GZIP, {}], ids=["gzip", "plain"])
@pytest.mark.parametrize("path", ["/static/style.css", "/openapi.json"])
def test_a_failed_precondition_is_a_412_in_json_without_the_resource(client, accepts, path):
    """Werkzeug's 412 for a failed If-Match kept the whole file (84 KB of OpenAPI) as its
    body, in the file's type, and it did not read If-Unmodified-Since (RFC 9110 13.1.4;
    an outside probe)."""
    held = get(client, path)
    for condition in [
        {"If-Match": '"not-its-etag"'},
        {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
    ]:
        if "If-Unmodified-Since" in condition and "Last-Modified" not in held.headers:
            continue  # no date to compare with: served (RFC 9110 13.1.4)
        refused = get(client, path, **condition, **accepts)
        assert refused.status_code == 412, condition
        assert refused.is_json and refused.get_json()["error"]["code"] == "precondition_failed"
    for condition in [
        {"If-Match": held.headers["ETag"]},
        {"If-Match": "*"},
        {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    ]:
        assert get(client, path, **condition).status_code == 200, condition
    both = {"If-Match": "*", "If-None-Match": held.headers["ETag"]}
    revalidated = get(client, path, **both)
    assert revalidated.status_code == 304 and revalidated.data == b""  # RFC 9110 13.2.2
