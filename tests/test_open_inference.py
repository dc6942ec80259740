"""The Open Inference Protocol (KServe V2) under /v2/: the shapes of its REST spec
(kserve/open-inference-protocol, ``open_inference_rest.md``) and Triton's binary tensor
extension, checked with the Flask client, then with Triton's own HTTP client
(``tritonclient``) against a real server.

- inference request ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype",
  "parameters"?, "data"}], "outputs"?: [{"name", "parameters"?}]}``
- inference response ``{"model_name", "model_version"?, "id"?, "parameters"?, "outputs":
  [{"name", "shape", "datatype", "parameters"?, "data"}]}``
- errors: ``{"error": <error message string>}``
"""

from __future__ import annotations

import gzip
import json
import math
import struct
import zlib

import numpy as np
import pytest

from app.web.open_inference import HEADER_LENGTH, pack_bytes, unpack_bytes

POSITIVE = "Thank you so much, the crew was wonderful and the flight was perfect!"
NEGATIVE = "Worst airline ever. Lost my bag, rude staff, three hours late. Never again."
INFER = "/v2/models/sentiment/infer"


def review(texts: list, shape: list | None = None, **extra) -> dict:
    shape = [len(texts)] if shape is None else shape
    return {"name": "review", "shape": shape, "datatype": "BYTES", "data": texts, **extra}


def error_message(response, status: int) -> str:
    """The protocol's error shape: ``{"error": "<message>"}`` and nothing else."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"].strip()
    return body["error"]


def classify(client, texts: list[str], version: str = "2") -> dict:
    response = client.post(f"/classify?version={version}", json={"reviews": texts})
    return response.get_json()["predictions"]


def binary_request(texts: list[str], **body) -> tuple[bytes, dict]:
    """A body as tritonclient sends it with binary inputs: JSON, then the texts' bytes."""
    data = pack_bytes(texts)
    tensor = {
        "name": "review",
        "shape": [len(texts)],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(data)},
    }
    header = json.dumps({"inputs": [tensor], **body}).encode()
    return header + data, {HEADER_LENGTH: str(len(header))}


def test_server_metadata_and_health(client):
    assert client.get("/v2").get_json() == {
        "name": "sentiment-server",
        "version": "1.0.0",
        "extensions": ["binary_tensor_data"],
    }
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    # /v2 itself answers errors in the protocol's shape too, as its document says.
    assert error_message(client.post("/v2"), 405).startswith("This URL does not support")


def test_model_metadata_names_its_tensors_and_versions(app, client):
    registry = app.extensions["models"].registry
    body = client.get("/v2/models/sentiment").get_json()
    assert body["name"] == "sentiment" and body["versions"] == list(registry.versions)
    assert body["platform"] == registry.stable.backend
    assert body["inputs"] == [{"name": "review", "datatype": "BYTES", "shape": [-1]}]
    classes = len(registry.stable.bundle.classes)
    assert body["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    assert client.get("/v2/models/sentiment/versions/1").get_json()["versions"] == ["1"]
    ready = client.get("/v2/models/sentiment/versions/1/ready")
    assert ready.get_json() == {"name": "sentiment", "ready": True}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/half", "Model 'half' is not served; this server serves 'sentiment'."),
        ("/v2/models/half/ready", "Model 'half' is not served; this server serves 'sentiment'."),
        ("/v2/models/sentiment/versions/7", "Version '7' of 'sentiment' is not loaded (1, 2)."),
        (
            "/v2/models/sentiment/versions/x/ready",
            "Version 'x' of 'sentiment' is not loaded (1, 2).",
        ),
        ("/v2/models/sentiment/explain", "No resource exists at this URL."),
    ],
)
def test_what_is_not_served_is_404(client, path, message):
    assert error_message(client.get(path), 404) == message


def test_infer_gives_classify_s_probabilities_and_labels(client):
    texts = [POSITIVE, NEGATIVE]
    response = client.post(INFER, json={"inputs": [review(texts)]})
    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    # No "id" in the request: the X-Request-ID, which POST /feedback takes.
    assert body["id"] == response.headers["X-Request-ID"]
    assert (body["model_name"], body["model_version"]) == ("sentiment", "2")
    probabilities, labels = body["outputs"]
    assert probabilities["name"] == "probabilities" and probabilities["datatype"] == "FP32"
    assert probabilities["shape"] == [2, 3] and len(probabilities["data"]) == 6
    assert labels == {"name": "label", "datatype": "BYTES", "shape": [2], "data": labels["data"]}
    expected = classify(client, texts)
    assert labels["data"] == [row["label"] for row in expected] == ["positive", "negative"]
    assert probabilities["data"] == [p for row in expected for p in row["scores"].values()]


def test_a_column_a_version_an_id_and_some_outputs(client):
    body = {
        "id": "batch-7",
        "inputs": [review([[POSITIVE], [NEGATIVE]], shape=[2, 1])],
        "outputs": [{"name": "label"}],
    }
    answer = client.post("/v2/models/sentiment/versions/1/infer", json=body).get_json()
    assert answer["id"] == "batch-7" and answer["model_version"] == "1"
    assert answer["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["positive", "negative"]}
    ]


def test_mlserver_s_string_codec_shape(client):
    """MLServer's StringCodec writes n texts as shape [n, 1] with flat data and says so in
    a ``content_type`` parameter."""
    tensor = review([POSITIVE, NEGATIVE], shape=[2, 1], parameters={"content_type": "str"})
    answer = client.post(INFER, json={"inputs": [tensor]}).get_json()
    assert answer["outputs"][1]["data"] == ["positive", "negative"]


def test_the_body_is_json_whatever_its_content_type(client):
    body = json.dumps({"inputs": [review([POSITIVE])]})
    response = client.post(INFER, data=body, content_type="text/plain")
    assert response.get_json()["outputs"][1]["data"] == ["positive"]


def test_binary_tensors_in_and_out(client):
    texts = [POSITIVE, NEGATIVE, "Seat 14C, window, boarding at 9:40."]
    data, headers = binary_request(texts, parameters={"binary_data_output": True})
    response = client.post(INFER, data=data, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    raw = response.get_data()
    length = int(response.headers[HEADER_LENGTH])
    header, rest = json.loads(raw[:length]), raw[length:]
    probabilities, labels = header["outputs"]
    assert "data" not in probabilities and "data" not in labels
    size = probabilities["parameters"]["binary_data_size"]
    assert size == 3 * 3 * 4 and len(rest) == size + labels["parameters"]["binary_data_size"]
    rows = np.frombuffer(rest[:size], dtype="<f4").reshape(3, 3)
    expected = classify(client, texts)
    np.testing.assert_allclose(rows, [list(row["scores"].values()) for row in expected], rtol=1e-6)
    assert unpack_bytes(rest[size:]) == [row["label"] for row in expected]


def test_a_header_length_may_cover_the_whole_body(client):
    """The binary extension's header length equal to the body: all JSON, no binary part."""
    body = json.dumps({"inputs": [review([POSITIVE])]}).encode()
    headers = {HEADER_LENGTH: str(len(body)), "Content-Type": "application/octet-stream"}
    response = client.post(INFER, data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["outputs"][1]["data"] == ["positive"]


def test_an_output_may_be_binary_alone(client):
    data, headers = binary_request(
        [POSITIVE],
        outputs=[{"name": "probabilities"}, {"name": "label", "parameters": {"binary_data": True}}],
    )
    response = client.post(INFER, data=data, headers=headers)
    header = json.loads(response.get_data()[: int(response.headers[HEADER_LENGTH])])
    probabilities, labels = header["outputs"]
    assert math.isclose(sum(probabilities["data"]), 1.0, abs_tol=1e-5)
    assert labels["parameters"] == {"binary_data_size": 4 + len("positive")}


def test_an_answer_is_recorded_and_takes_feedback(make_app):
    client = make_app().test_client()
    response = client.post(INFER, json={"inputs": [review([POSITIVE, NEGATIVE])]})
    request_id = response.get_json()["id"]
    app = client.application
    app.extensions["feedback"].recorder.flush()
    feedback = {"request_id": request_id, "index": 1, "label": "negative"}
    assert client.post("/feedback", json=feedback).status_code == 200


def _binary(texts_bytes: bytes, size: int | None = None, extra: str = "") -> tuple[bytes, dict]:
    tensor = {"name": "review", "shape": [1], "datatype": "BYTES"}
    tensor["parameters"] = {"binary_data_size": len(texts_bytes) if size is None else size}
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + texts_bytes + extra.encode(), {HEADER_LENGTH: str(len(header))}


def _json_then(extra: bytes) -> tuple[bytes, dict]:
    header = json.dumps({"inputs": [review(["Fine."])]}).encode()
    return header + extra, {HEADER_LENGTH: str(len(header))}


SCHEMA = "The request body does not match the expected schema. "


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [review(["Fine."], name="text")]},
            SCHEMA + "inputs.0.name: Unknown input 'text': the model's input is 'review'.",
        ),
        (
            {"inputs": [review(["Fine."], datatype="FP32")]},
            SCHEMA + "inputs.0.datatype: Datatype 'FP32': the input is 'BYTES' (texts).",
        ),
        ({"inputs": []}, SCHEMA + "inputs: Send one input, 'review'."),
        (
            {"inputs": [review(["Fine."]), review(["Fine."])]},
            SCHEMA + "inputs: Send one input, 'review'.",
        ),
        (
            {"inputs": [review(["Fine."], shape=[2])]},
            "Input 'review' has shape [2], but its data holds 1.",
        ),
        (
            {"inputs": [review(["a", "b"], shape=[1, 2])]},
            "Input shape [1, 2]: send one text per row, [n] or [n, 1].",
        ),
        (
            {"inputs": [review(["a"], shape=[1, 1, 1])]},
            SCHEMA + "inputs.0.shape: Length must be between 1 and 2.",
        ),
        ({"inputs": [review([3])]}, "Input 'review' data must hold texts (strings), one per row."),
        (
            {"inputs": [review([" "])]},
            SCHEMA + "inputs.0.data.0: Review text must not be empty or only whitespace.",
        ),
        (
            {"inputs": [review(["a"] * 65)]},
            SCHEMA + "inputs.0.data: Send between 1 and 64 reviews (got 65).",
        ),
        (
            {"inputs": [review([], shape=[0])]},
            SCHEMA + "inputs.0.data: Send between 1 and 64 reviews (got 0).",
        ),
        (
            {"inputs": [{"name": "review", "shape": [1], "datatype": "BYTES"}]},
            "Input 'review' has no 'data' (nor 'binary_data_size').",
        ),
        (
            {"inputs": [review(["Fine."])], "outputs": [{"name": "logits"}]},
            SCHEMA + "outputs.0.name: Unknown output 'logits': probabilities, label.",
        ),
        (
            {"inputs": [review(["Fine."])], "outputs": [{"name": "label"}, {"name": "label"}]},
            "An output is asked for twice.",
        ),
        (
            {"inputs": [review(["Fine."])], "parameters": {"binary_data_output": "yes"}},
            "Parameter 'binary_data_output' must be true or false, not 'yes'.",
        ),
        (["Fine."], SCHEMA + "Invalid input type."),
    ],
)
def test_bad_requests_get_400_and_say_why(client, body, message):
    assert error_message(client.post(INFER, json=body), 400) == message


@pytest.mark.parametrize(
    ("request_parts", "message"),
    [
        (_binary(b"\x05\x00\x00\x00Fine."), None),
        (
            _binary(b"\x05\x00\x00\x00Fine.", size=4),
            "Input 'review' has binary_data_size 4, but 9 bytes follow the JSON part.",
        ),
        (_binary(b"\x05\x00\x00\x00Fin"), "Input 'review' binary element 0 is cut short."),
        (_binary(b"\x05\x00"), "Input 'review' binary data ends inside an element's length."),
        (
            _binary(struct.pack("<I", 2) + b"\xff\xfe"),
            "Input 'review' element 0 is not UTF-8 text.",
        ),
        (
            (b'{"inputs": []}', {HEADER_LENGTH: "99"}),
            f"{HEADER_LENGTH} '99' is not the length of the body's JSON part "
            "(the body has 14 bytes).",
        ),
        (
            (b'{"inputs": []}', {HEADER_LENGTH: "-1"}),
            f"{HEADER_LENGTH} '-1' is not the length of the body's JSON part "
            "(the body has 14 bytes).",
        ),
        (_json_then(b"xx"), "2 bytes follow the JSON part, but no input claims them."),
    ],
)
def test_the_binary_part_is_checked(client, request_parts, message):
    data, headers = request_parts
    response = client.post(INFER, data=data, headers=headers)
    if message is None:
        assert response.get_json()["outputs"][1]["data"] == ["positive"]
    else:
        assert error_message(response, 400) == message


def test_invalid_json_and_a_body_too_large(make_app):
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    message = error_message(client.post(INFER, data=b'{"inputs": ['), 400)
    assert message.startswith("The request body is not valid JSON.")
    too_large = client.post(INFER, json={"inputs": [review(["a" * 3000])]})
    assert error_message(too_large, 413) == "The request body is larger than the server accepts."


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("GZIP", gzip.compress)],
)
def test_a_compressed_body_is_inflated_within_the_limit(make_app, encoding, compress):
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    headers = {"Content-Encoding": encoding}
    data, binary_headers = binary_request([POSITIVE, NEGATIVE])
    answer = client.post(INFER, data=compress(data), headers={**headers, **binary_headers})
    assert answer.get_json()["outputs"][1]["data"] == ["positive", "negative"]
    # 3 kB of JSON squeezed into about a hundred bytes: refused as what it inflates to.
    bomb = compress(json.dumps({"inputs": [review(["a" * 3000])]}).encode())
    assert len(bomb) < 200
    message = error_message(client.post(INFER, data=bomb, headers=headers), 413)
    assert message == "The request body is larger than the server accepts."
    cut = compress(json.dumps({"inputs": [review([POSITIVE])]}).encode())[:-9]
    assert error_message(client.post(INFER, data=cut, headers=headers), 400) == (
        f"The body's {encoding.lower()} data is cut short."
    )
    not_compressed = client.post(INFER, data=b"{}", headers=headers)
    assert error_message(not_compressed, 400) == f"The body is not valid {encoding.lower()} data."


def test_another_content_encoding_is_415(client):
    response = client.post(INFER, data=b"{}", headers={"Content-Encoding": "br"})
    assert error_message(response, 415) == (
        "Send the body as it is, or compressed with gzip or deflate (Content-Encoding)."
    )


def test_an_unpinned_request_follows_the_routing_policy(make_app, two_versions):
    app = make_app(
        MODEL_BASE_DIR=str(two_versions),
        MODEL_LABELS="stable=1,canary=2",
        ROUTING="canary",
        CANARY_PERCENT=100,
    )
    body = {"inputs": [review([POSITIVE])]}
    answer = app.test_client().post(INFER, json=body).get_json()
    assert answer["model_version"] == "2"


@pytest.mark.slow
def test_tritonclient_works_unchanged(start_server):
    """Triton's own HTTP client, as its examples use it: binary tensors by default."""
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    server = start_server()
    server.wait_ready("/ready")
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("sentiment") and client.is_model_ready("sentiment", "1")
        assert not client.is_model_ready("sentiment", "7")
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        assert client.get_model_metadata("sentiment")["inputs"][0]["name"] == "review"

        # The README's example.
        texts = np.array(["Lovely crew!", "Lost my bag."], dtype=object)
        for binary in (True, False):
            tensor = httpclient.InferInput("review", [2], "BYTES")
            tensor.set_data_from_numpy(texts, binary_data=binary)
            # No outputs named: tritonclient asks for every one in binary.
            result = client.infer("sentiment", [tensor])
            rows = result.as_numpy("probabilities")
            assert rows.shape == (2, 3) and rows.dtype == np.float32
            assert result.as_numpy("label").tolist() == [b"positive", b"negative"]
            outputs = [httpclient.InferRequestedOutput("label", binary_data=False)]
            result = client.infer("sentiment", [tensor], model_version="1", outputs=outputs)
            assert result.get_response()["model_version"] == "1"
            assert result.as_numpy("label").tolist() == ["positive", "negative"]
            for algorithm in ("gzip", "deflate"):
                result = client.infer(
                    "sentiment", [tensor], request_compression_algorithm=algorithm
                )
                assert result.as_numpy("label").tolist() == [b"positive", b"negative"]

        tensor = httpclient.InferInput("text", [2], "BYTES")
        tensor.set_data_from_numpy(texts)
        with pytest.raises(InferenceServerException, match="Unknown input 'text'"):
            client.infer("sentiment", [tensor])
        with pytest.raises(InferenceServerException, match="Model 'half' is not served"):
            client.get_model_metadata("half")
    finally:
        client.close()
