"""The /classify contract through Flask's test client, with the real model."""

from __future__ import annotations

import gzip
import json
import math
import time
import uuid
import zlib

import pytest

from app.web.errors import error_body

POSITIVE = "Thank you so much, the crew was wonderful and the flight was perfect!"
NEGATIVE = "Worst airline ever. Lost my bag, rude staff, three hours late. Never again."


def assert_error(response, status: int, code: str) -> dict:
    """The one error shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"].strip()
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def assert_prediction(prediction: dict, classes: list[str]) -> None:
    assert set(prediction) >= {"label", "score", "scores"}
    assert list(prediction["scores"]) == classes
    assert math.isclose(sum(prediction["scores"].values()), 1.0, abs_tol=1e-5)
    assert all(0.0 <= p <= 1.0 for p in prediction["scores"].values())
    assert prediction["label"] == max(prediction["scores"], key=prediction["scores"].get)
    assert prediction["score"] == prediction["scores"][prediction["label"]]


def test_single_review(client, app):
    response = client.post("/classify", json={"review": POSITIVE})
    assert response.status_code == 200
    body = response.get_json()
    bundle = app.extensions["models"].registry.stable.bundle
    assert_prediction(body, bundle.classes)
    assert body["label"] == "positive"
    assert body["model"] == {"name": bundle.name, "version": bundle.version}


def test_batch_keeps_input_order(client, app):
    texts = [NEGATIVE, POSITIVE, NEGATIVE]
    response = client.post("/classify", json={"reviews": texts})
    assert response.status_code == 200
    body = response.get_json()
    assert [p["label"] for p in body["predictions"]] == ["negative", "positive", "negative"]
    for prediction in body["predictions"]:
        assert_prediction(prediction, app.extensions["models"].registry.stable.bundle.classes)
    # A review scores the same alone and inside a batch.
    alone = client.post("/classify", json={"review": POSITIVE}).get_json()
    assert body["predictions"][1]["scores"] == pytest.approx(alone["scores"], abs=1e-6)


def test_response_keys_in_documented_order(client):
    body = client.post("/classify", json={"review": POSITIVE}).get_json()
    assert list(body) == ["label", "score", "scores", "model"]


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "_schema"),
        ({"review": POSITIVE, "reviews": [NEGATIVE]}, "_schema"),
        ({"review": ""}, "review"),
        ({"review": " \n\t "}, "review"),
        ({"review": 42}, "review"),
        ({"review": None}, "review"),
        ({"review": ["nested"]}, "review"),
        ({"reviews": []}, "reviews"),
        ({"reviews": "not a list"}, "reviews"),
        ({"reviews": [POSITIVE, 3]}, "reviews"),
        ({"reviews": [POSITIVE, None]}, "reviews"),
        ({"reviews": [{"text": POSITIVE}]}, "reviews"),
        ({"reviews": [[POSITIVE]]}, "reviews"),
        ({"reviews": [POSITIVE, "  "]}, "reviews"),
        ({"review": POSITIVE, "extra": 1}, "extra"),
        ([POSITIVE], "_schema"),
        ("a string", "_schema"),
        (7, "_schema"),
        (None, "_schema"),
    ],
)
def test_invalid_payloads_are_400_with_field_details(client, payload, field):
    response = client.post("/classify", data=json.dumps(payload), content_type="application/json")
    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]


def test_batch_error_details_name_the_item(client):
    response = client.post("/classify", json={"reviews": [POSITIVE, "", 5]})
    error = assert_error(response, 400, "validation_error")
    assert set(error["details"]["reviews"]) == {"1", "2"}


def test_text_length_limit(make_app):
    client = make_app(MAX_TEXT_CHARS=50).test_client()
    assert client.post("/classify", json={"review": "a" * 50}).status_code == 200
    error = assert_error(
        client.post("/classify", json={"review": "a" * 51}), 400, "validation_error"
    )
    assert "50" in error["details"]["review"][0]


def test_batch_size_limit(make_app):
    client = make_app(MAX_BATCH_SIZE=3).test_client()
    assert client.post("/classify", json={"reviews": [POSITIVE] * 3}).status_code == 200
    response = client.post("/classify", json={"reviews": [POSITIVE] * 4})
    assert_error(response, 400, "validation_error")


def test_default_limits(client):
    assert client.post("/classify", json={"reviews": ["ok"] * 64}).status_code == 200
    assert client.post("/classify", json={"reviews": ["ok"] * 65}).status_code == 400
    assert client.post("/classify", json={"review": "x" * 5000}).status_code == 200
    assert client.post("/classify", json={"review": "x" * 5001}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"review": "unterminated',
        b"",
        b"\xff\xfe\xfa",
        b'{"review": "a", "review": "b"}',
    ],
)
def test_invalid_json(client, body):
    response = client.post("/classify", data=body, content_type="application/json")
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_unsupported_media_type(client, content_type):
    response = client.post(
        "/classify", data=json.dumps({"review": POSITIVE}), content_type=content_type
    )
    assert_error(response, 415, "unsupported_media_type")


def test_payload_too_large(make_app):
    client = make_app(MAX_CONTENT_LENGTH=1000).test_client()
    response = client.post("/classify", json={"review": "a" * 2000})
    assert_error(response, 413, "payload_too_large")


def gzip_members(body: bytes) -> bytes:
    """``body`` as two gzip members, one after the other, as ``cat a.gz b.gz`` makes."""
    return gzip.compress(body[:10]) + gzip.compress(body[10:])


@pytest.mark.parametrize(
    "encoding, compress",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("x-gzip", gzip.compress),
        ("gzip", gzip_members),
    ],
    ids=["gzip", "deflate", "x-gzip", "gzip-members"],
)
def test_a_compressed_body_is_read_on_every_json_route(client, encoding, compress):
    """Content-Encoding gzip or deflate, as TF Serving and Triton accept it (x-gzip is
    gzip, RFC 9110 §8.4.1.3; a gzip body may be several members, RFC 1952 §2.2): the
    same answer as the plain body, and each route still answers in its own shape."""
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}

    def post(url: str, body: dict):
        return client.post(url, data=compress(json.dumps(body).encode()), headers=headers)

    plain = client.post("/classify", json={"reviews": [POSITIVE, NEGATIVE]}).get_json()
    assert post("/classify", {"reviews": [POSITIVE, NEGATIVE]}).get_json() == plain
    explained = post("/explain", {"review": NEGATIVE}).get_json()
    assert explained["label"] == "negative" and explained["tokens"]
    predicted = post("/v1/models/sentiment:predict", {"instances": [POSITIVE]}).get_json()
    assert predicted["predictions"][0] == pytest.approx(
        list(plain["predictions"][0]["scores"].values())
    )
    unknown = post("/feedback", {"request_id": "a" * 32, "label": "positive"})
    assert_error(unknown, 404, "prediction_not_found")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_body_may_inflate_to_exactly_the_limit(make_app, encoding):
    """MAX_CONTENT_LENGTH is the largest body, 413 above it, compressed or not."""
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    compress = gzip.compress if encoding == "gzip" else zlib.compress
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    for size, status in [(2000, 200), (2001, 413)]:
        body = json.dumps({"review": "a" * (size - 14)}).encode()
        assert len(body) == size
        assert client.post("/classify", data=compress(body), headers=headers).status_code == status
        assert (
            client.post(
                "/classify", data=body, headers=headers | {"Content-Encoding": "identity"}
            ).status_code
            == status
        )


def test_a_compressed_body_that_cannot_be_read(make_app):
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    # 3 kB of JSON squeezed into about a hundred bytes: refused as what it inflates to.
    bomb = gzip.compress(json.dumps({"review": "a" * 3000}).encode())
    assert len(bomb) < 200
    assert_error(client.post("/classify", data=bomb, headers=headers), 413, "payload_too_large")
    cut = client.post("/classify", data=gzip.compress(b'{"review": "Fine."}')[:-9], headers=headers)
    assert (
        assert_error(cut, 400, "invalid_encoding")["message"]
        == "The body's gzip data is cut short."
    )
    plain = client.post("/classify", data=b'{"review": "Fine."}', headers=headers)
    assert (
        assert_error(plain, 400, "invalid_encoding")["message"]
        == "The body is not valid gzip data."
    )
    # Bytes after the data are refused, not ignored; the limit counts every member.
    junk = client.post(
        "/classify", data=gzip.compress(b'{"review": "Fine."}') + b"JUNK", headers=headers
    )
    assert (
        assert_error(junk, 400, "invalid_encoding")["message"] == "The body is not valid gzip data."
    )
    deflate = {"Content-Encoding": "deflate", "Content-Type": "application/json"}
    trailing = client.post(
        "/classify", data=zlib.compress(b'{"review": "Fine."}') + b"\0", headers=deflate
    )
    assert (
        assert_error(trailing, 400, "invalid_encoding")["message"]
        == "The body has bytes after its deflate data."
    )
    halves = json.dumps({"review": "a" * 3000}).encode()
    members = gzip.compress(halves[:1500]) + gzip.compress(halves[1500:])
    assert_error(client.post("/classify", data=members, headers=headers), 413, "payload_too_large")
    brotli = {"Content-Encoding": "br", "Content-Type": "application/json"}
    refused = client.post("/classify", data=b'{"review": "Fine."}', headers=brotli)
    assert_error(refused, 415, "unsupported_media_type")
    assert refused.headers["Accept-Encoding"] == "gzip, deflate"  # RFC 9110, 15.5.16
    tf_refused = client.post("/v1/models/sentiment:predict", data=b"{}", headers=brotli)
    assert tf_refused.status_code == 415 and set(tf_refused.get_json()) == {"error"}
    identity = {"Content-Encoding": "identity", "Content-Type": "application/json"}
    assert (
        client.post("/classify", data=b'{"review": "Fine."}', headers=identity).status_code == 200
    )


def test_not_found(client):
    assert_error(client.get("/no/such/route"), 404, "not_found")


def test_method_not_allowed_lists_allowed_methods(client):
    response = client.get("/classify")
    error = assert_error(response, 405, "method_not_allowed")
    assert "POST" in error["details"]["allowed_methods"]
    assert "POST" in response.headers["Allow"]


def test_options_answers_the_allowed_methods_without_a_body(client):
    """Flask's own OPTIONS answer was an empty text/html 200: no body, so no type."""
    for path in ("/classify", "/health", "/v1/models/sentiment:predict"):
        response = client.options(path)
        assert response.status_code == 204 and not response.data, path
        assert "Content-Type" not in response.headers and "OPTIONS" in response.headers["Allow"]


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unexpected_exception_is_a_500_without_internals(make_app, caplog):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret detail in /srv/app/file.py")

    response = app.test_client().get("/boom")
    error = assert_error(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    assert "secret" not in text and ".py" not in text and "Traceback" not in text
    assert error == error_body("internal_error", error["message"])["error"]
    assert "secret detail" in caplog.text  # the trace goes to the log


VALID_ID = "abcDEF0123456789+/=-xyz"


@pytest.mark.parametrize(
    "sent, kept",
    [
        (VALID_ID, True),
        ("a" * 200, True),
        ("a" * 19, False),
        ("a" * 201, False),
        ("has spaces in it but long enough", False),
        ("<script>alert(1)</script>xxxxxx", False),
        (None, False),
    ],
)
def test_request_id(client, sent, kept):
    headers = {"X-Request-ID": sent} if sent else {}
    for response in (
        client.post("/classify", json={"review": POSITIVE}, headers=headers),
        client.get("/nowhere", headers=headers),
    ):
        returned = response.headers["X-Request-ID"]
        if kept:
            assert returned == sent
        else:
            assert returned != sent
            assert 20 <= len(returned) <= 200


def test_fresh_request_ids_differ(client):
    ids = {client.get("/health").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_fresh_request_ids_are_uuid7_in_time_order(client):
    """The ids a server makes sort as it made them (the prediction store's index on them
    then grows at one end), and carry the time they were made."""
    before = time.time()
    ids = [client.post("/classify", json={"review": POSITIVE}).headers["X-Request-ID"]]
    ids += [client.get("/health").headers["X-Request-ID"] for _ in range(20)]
    after = time.time()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for request_id in ids:
        parsed = uuid.UUID(hex=request_id)
        assert (parsed.version, parsed.variant, parsed.hex) == (7, uuid.RFC_4122, request_id)
        assert int(before * 1000) <= parsed.int >> 80 <= int(after * 1000) + 1


def test_api_responses_are_not_cached_or_sniffed(client):
    for response in (client.post("/classify", json={"review": POSITIVE}), client.get("/missing")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


def test_ready_names_the_loaded_model(app, client):
    response = client.get("/ready")
    assert response.status_code == 200
    registry = app.extensions["models"].registry
    bundle = registry.stable.bundle
    assert response.get_json() == {
        "status": "ready",
        "model": {"name": bundle.name, "version": bundle.version},
        "versions": list(registry.versions),
    }


def test_model_metadata(client, app):
    body = client.get("/model").get_json()
    bundle = app.extensions["models"].registry.stable.bundle
    assert body["name"] == bundle.name and body["version"] == bundle.version
    assert body["classes"] == bundle.classes
    assert body["backend"] == app.config["KERAS_BACKEND"]
    assert body["limits"]["max_batch_size"] == app.config["MAX_BATCH_SIZE"]
    assert body["limits"]["max_text_chars"] == app.config["MAX_TEXT_CHARS"]
    assert body["metrics"] == bundle.metadata.get("metrics", {})
    assert body["inference_precision"] == "f32"  # the n-gram folders' own
    import importlib.metadata

    assert body["libraries"]["keras"] == importlib.metadata.version("keras")
    assert body["libraries"]["numpy"] == importlib.metadata.version("numpy")


def test_many_gzip_members_are_read_in_time_linear_in_the_body(monkeypatch):
    """zlib copies the input it has not used (``unused_data``): fed the whole rest of the
    body for each member, 52,000 empty members in 1 MB made 27 GB of copies (1.4 s of a
    worker). Counted here as the bytes zlib is given: at most a few times the body."""
    from app.web import json_io

    fed, inflater = 0, zlib.decompressobj

    class Counting:
        def __init__(self, wbits):
            self._inflater = inflater(wbits)

        def decompress(self, data, max_length=0):
            nonlocal fed
            fed += len(data)
            return self._inflater.decompress(data, max_length)

        def __getattr__(self, name):
            return getattr(self._inflater, name)

    monkeypatch.setattr(json_io.zlib, "decompressobj", Counting)
    body = gzip.compress(b"", mtime=0) * 20_000 + gzip.compress(b'{"review": "Fine."}')
    assert json_io._inflated(body, "gzip", 1 << 20) == b'{"review": "Fine."}'
    assert fed <= 3 * len(body), (fed, len(body))
