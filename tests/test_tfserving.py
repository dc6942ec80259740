"""The TensorFlow-Serving-compatible API, with the shapes from TF Serving's REST API docs
(tensorflow/serving, tensorflow_serving/g3doc/api_rest.md):

- status: ``{"model_version_status": [{"version": "123", "state": "AVAILABLE",
  "status": {"error_code": "OK", "error_message": ""}}]}``
- predict, row format: ``{"instances": ["foo", "bar", "baz"]}`` → ``{"predictions": ...}``
- predict, column format: ``{"inputs": <value>|<(nested)list>|<object>}`` → ``{"outputs": ...}``
- errors: ``{"error": <error message string>}``, e.g. 404
  ``{"error": "Servable not found for request: Latest(half)"}``
"""

from __future__ import annotations

import base64
import math

import pytest

from app.config import MODEL_BASE
from app.web.schemas import TF_INPUT_NAME

POSITIVE = "Thank you so much, the crew was wonderful and the flight was perfect!"
NEGATIVE = "Worst airline ever. Lost my bag, rude staff, three hours late. Never again."


@pytest.fixture
def served(app) -> tuple[str, str, list[str]]:
    bundle = app.extensions["models"].registry.stable.bundle
    return bundle.name, bundle.version, bundle.classes


def assert_tf_error(response, status: int) -> str:
    """TF Serving's error shape: ``{"error": "<message>"}`` and nothing else."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"].strip()
    return body["error"]


def assert_probability_rows(rows: list, n_rows: int, n_classes: int) -> None:
    assert len(rows) == n_rows
    for row in rows:
        assert len(row) == n_classes
        assert all(0.0 <= p <= 1.0 for p in row)
        assert math.isclose(sum(row), 1.0, abs_tol=1e-5)


@pytest.mark.parametrize("versions", [False, True])
def test_model_status_available(app, client, served, versions):
    name, version, _ = served
    url = f"/v1/models/{name}" + (f"/versions/{version}" if versions else "")
    response = client.get(url)
    assert response.status_code == 200
    # Without a version: every loaded version, as TF Serving lists them.
    listed = [version] if versions else list(app.extensions["models"].registry.versions)
    assert response.get_json() == {
        "model_version_status": [
            {
                "version": served_version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for served_version in listed
        ]
    }


@pytest.mark.parametrize("versions", [False, True])
def test_model_metadata(client, served, versions):
    name, version, classes = served
    url = f"/v1/models/{name}" + (f"/versions/{version}" if versions else "") + "/metadata"
    response = client.get(url)
    assert response.status_code == 200
    body = response.get_json()
    assert body["model_spec"] == {"name": name, "signature_name": "", "version": version}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    [(input_name, tensor_in)] = signature["inputs"].items()
    assert input_name == TF_INPUT_NAME
    assert tensor_in["dtype"] == "DT_STRING"
    assert tensor_in["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}],
        "unknown_rank": False,
    }
    [tensor_out] = signature["outputs"].values()
    assert tensor_out["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in tensor_out["tensor_shape"]["dim"]] == ["-1", str(len(classes))]


def test_predict_row_format(client, served):
    name, _, classes = served
    response = client.post(f"/v1/models/{name}:predict", json={"instances": [POSITIVE, NEGATIVE]})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"predictions"}
    assert_probability_rows(body["predictions"], 2, len(classes))
    labels = [classes[row.index(max(row))] for row in body["predictions"]]
    assert labels == ["positive", "negative"]


@pytest.mark.parametrize(
    "inputs", [[POSITIVE, NEGATIVE], {TF_INPUT_NAME: [POSITIVE, NEGATIVE]}], ids=["bare", "named"]
)
def test_predict_column_format(client, served, inputs):
    name, _, classes = served
    response = client.post(f"/v1/models/{name}:predict", json={"inputs": inputs})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"outputs"}
    assert_probability_rows(body["outputs"], 2, len(classes))


@pytest.mark.parametrize("signature", ["serving_default", ""])  # "": the default, as TF's
def test_predict_matches_classify(client, served, signature):
    """One prediction path: the same probabilities as POST /classify, in class order."""
    name, version, classes = served
    tf = client.post(
        f"/v1/models/{name}/versions/{version}:predict",
        json={"signature_name": signature, "instances": [POSITIVE, NEGATIVE]},
    ).get_json()["predictions"]
    ours = client.post("/classify", json={"reviews": [POSITIVE, NEGATIVE]}).get_json()
    for row, prediction in zip(tf, ours["predictions"], strict=True):
        assert row == [prediction["scores"][label] for label in classes]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/half",
        "/v1/models/half/metadata",
        "/v1/models/{name}/versions/999",
        "/v1/models/{name}/versions/999/metadata",
    ],
)
def test_get_not_found(client, served, path):
    assert_tf_error(client.get(path.format(name=served[0])), 404)


@pytest.mark.parametrize(
    "path, message",
    [
        # GetModelStatus's own words (get_model_status_impl.cc), not predict's.
        ("/v1/models/half", "Could not find any versions of model half"),
        ("/v1/models/{name}/versions/999", "Could not find version 999 of model {name}"),
        # The largest int64 is a version number (one more is refused as not numeric).
        (
            "/v1/models/{name}/versions/9223372036854775807",
            "Could not find version 9223372036854775807 of model {name}",
        ),
    ],
)
def test_status_not_found_in_get_model_status_words(client, served, path, message):
    name = served[0]
    response = client.get(path.format(name=name))
    assert assert_tf_error(response, 404) == message.format(name=name)


@pytest.mark.parametrize(
    "path, message",
    [
        ("/v1/models/half:predict", "Servable not found for request: Latest(half)"),
        (
            "/v1/models/{name}/versions/999:predict",
            "Servable not found for request: Specific({name}, 999)",
        ),
    ],
)
def test_predict_not_found(client, served, path, message):
    name = served[0]
    response = client.post(path.format(name=name), json={"instances": [POSITIVE]})
    assert assert_tf_error(response, 404) == message.format(name=name)


@pytest.mark.parametrize(
    "method, path, message",
    [
        # TF Serving's own words (model_servers/http_rest_api_handler.cc, http_rest_api_util.cc)
        ("GET", "/v1/models", "Missing model name in request."),
        ("GET", "/v1/models/versions/1", "Missing model name in request."),
        ("GET", "/v1/models/versions/1/metadata", "Missing model name in request."),
        (
            "GET",
            "/v1/models/{name}/versions/99999999999999999999",
            "Failed to convert version: 99999999999999999999 to numeric.",
        ),
        (
            "POST",
            "/v1/models/{name}/versions/9223372036854775808:predict",
            "Failed to convert version: 9223372036854775808 to numeric.",
        ),
        ("GET", "/v1/models/{name}/versions/nope", "Malformed request: GET {path}"),
        ("GET", "/v1/models/{name}/versions/-1", "Malformed request: GET {path}"),
        # Werkzeug merged doubled slashes with a 308 and an HTML body; TF Serving refuses.
        ("POST", "/v1/models//{name}:predict", "Malformed request: POST {path}"),
        ("GET", "/v1//models/{name}/versions/1", "Malformed request: GET {path}"),
        # TF Serving's (\d+) is RE2's: ASCII digits only (Werkzeug's \d took "３" for 3).
        ("GET", "/v1/models/{name}/versions/\uff11", "Malformed request: GET {path}"),
        ("POST", "/v1/models/{name}/versions/\uff11:predict", "Malformed request: POST {path}"),
        ("GET", "/v1/models/{name}/extra/segments", "Malformed request: GET {path}"),
        ("GET", "/v1/models/{name}:predict", "Malformed request: GET {path}"),
        ("GET", "/v1/other", "Malformed request: GET {path}"),
        # URL keywords are lower case only (README, "TensorFlow Serving API").
        ("GET", "/v1/MODELS/{name}", "Malformed request: GET {path}"),
        ("GET", "/v1/models/{name}/VERSIONS/1", "Malformed request: GET {path}"),
        ("POST", "/v1/models/{name}:PREDICT", "Malformed request: POST {path}"),
        ("POST", "/v1/models/{name}", "Malformed request: POST {path}"),
        ("POST", "/v1/models/{name}/metadata", "Malformed request: POST {path}"),
        ("POST", "/v1/models/{name}:explain", "Malformed request: POST {path}"),
        ("PUT", "/v1/models/{name}:predict", "Malformed request: PUT {path}"),
        ("DELETE", "/v1/models/{name}", "Malformed request: DELETE {path}"),
    ],
)
def test_routing_errors_are_tf_servings_400(client, served, method, path, message):
    """TF Serving answers 400 (no 404, no 405) for a /v1/ URL or method it has no route
    for; model names and versions that do not exist stay 404 (above)."""
    path = path.format(name=served[0])
    response = client.open(path, method=method, json={"instances": [POSITIVE]})
    assert assert_tf_error(response, 400) == message.format(path=path)


@pytest.mark.parametrize(
    "path",
    ["/v1/models", "/v1/models/{name}/versions/nope", "/v1/models/{name}:predict", "/v1/other"],
)
def test_a_head_is_answered_as_its_get(client, served, path):
    """RFC 9110 9.3.2: a HEAD's headers are its GET's, Content-Length included (HEAD
    /v1/models said "Malformed request: HEAD ...", four bytes longer than GET's 400)."""
    path = path.format(name=served[0])
    got, head = client.get(path), client.head(path)
    assert (head.status_code, head.data) == (400, b"")
    assert head.headers["Content-Length"] == got.headers["Content-Length"]
    assert head.headers["Content-Type"] == got.headers["Content-Type"]


def test_a_version_with_leading_zeros_is_the_version(client, served):
    name, version, _ = served
    response = client.get(f"/v1/models/{name}/versions/{int(version):03d}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({}, "Missing 'inputs' or 'instances' key"),
        ({"signature_name": "serving_default"}, "Missing 'inputs' or 'instances' key"),
        ({"instances": [POSITIVE], "inputs": [POSITIVE]}, "expecting only one of 'inputs' or"),
        ({"instances": [POSITIVE], "inputs": 5}, "expecting only one of 'inputs' or"),
        ({"instances": []}, "instances: Send between 1 and"),
        ({"inputs": {"x": [POSITIVE]}}, "inputs.review: Missing data for required field."),
        ({"inputs": {"b64": "Zm9v"}}, "inputs.review: Missing data for required field."),
        ({"instances": [1.0, 2.0, 5.0]}, "instances.0: Not a valid string"),
        ({"instances": [[POSITIVE]]}, "instances.0: Not a valid string"),
        ({"instances": "foo"}, "instances: Not a valid list"),
        ({"inputs": POSITIVE}, "inputs: Not a valid list"),
        ({"instances": [{TF_INPUT_NAME: POSITIVE, "x": 1}]}, "instances.0.x: Unknown field"),
        ({"instances": [{TF_INPUT_NAME: POSITIVE}, POSITIVE]}, "instances.1: Invalid input type"),
        ({"instances": [{"b64": "@@@@"}]}, "instances.0.b64: Unable to base64 decode"),
        ({"instances": [{"b64": "abcde"}]}, "instances.0.b64: Unable to base64 decode"),
        ({"inputs": [{"b64": "/w=="}]}, "inputs.0.b64: The base64 value is not UTF-8 text."),
        ({"inputs": {TF_INPUT_NAME: [{"b64": 5}]}}, "inputs.review.0.b64: Not a valid string"),
        ({"instances": [{"b64": "Zm9v", "x": 1}]}, "instances.0.x: Unknown field"),
        (
            {"instances": [POSITIVE], "signature_name": "classify"},
            'Serving signature name: "classify" not found in signature def',
        ),
        ({"instances": [POSITIVE], "signature_name": 5}, "signature_name: Not a valid string"),
        ([POSITIVE], "Invalid input type"),
    ],
)
def test_predict_invalid_argument(client, served, payload, fragment):
    response = client.post(f"/v1/models/{served[0]}:predict", json=payload)
    assert fragment in assert_tf_error(response, 400)


def b64(text: str) -> dict[str, str]:
    return {"b64": base64.b64encode(text.encode()).decode()}


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": [POSITIVE, NEGATIVE]},
        {"instances": [b64(POSITIVE), NEGATIVE]},
        {"instances": [{TF_INPUT_NAME: POSITIVE}, {TF_INPUT_NAME: b64(NEGATIVE)}]},
        {"inputs": [b64(POSITIVE), b64(NEGATIVE)]},
        {"inputs": {TF_INPUT_NAME: [POSITIVE, b64(NEGATIVE)]}},
        # Unknown keys, and other names in a named ``inputs``, are ignored as by TF Serving.
        {"instances": [POSITIVE, NEGATIVE], "examples": [], "context": {}},
        {"inputs": {TF_INPUT_NAME: [POSITIVE, NEGATIVE], "other": [1, 2]}},
        # Unpadded base64, which TF Serving's decoder accepts too.
        {"instances": [b64(POSITIVE), {"b64": b64(NEGATIVE)["b64"].rstrip("=")}]},
        # MIME-style base64, a line break every 76 characters, whose spaces TF Serving's
        # decoder skips too.
        {"instances": [{"b64": base64.encodebytes(POSITIVE.encode()).decode()}, NEGATIVE]},
        {"instances": [POSITIVE, {"b64": " ".join(b64(NEGATIVE)["b64"]) + "\r\n"}]},
    ],
    ids=[
        "plain",
        "b64",
        "objects",
        "b64-column",
        "named",
        "unknown-keys",
        "extra-name",
        "nopad",
        "mime",
        "spaces",
    ],
)
def test_predict_reads_every_tf_serving_form_of_the_same_texts(client, served, payload):
    name = served[0]
    reference = client.post(f"/v1/models/{name}:predict", json={"instances": [POSITIVE, NEGATIVE]})
    response = client.post(f"/v1/models/{name}:predict", json=payload)
    assert response.status_code == 200, response.get_json()
    key = "predictions" if "instances" in payload else "outputs"
    assert response.get_json() == {key: reference.get_json()["predictions"]}


@pytest.mark.parametrize("inputs", [[], {TF_INPUT_NAME: []}], ids=["bare", "named"])
def test_an_empty_column_gets_no_rows(client, served, inputs):
    """TF Serving accepts an empty input tensor and answers an empty one."""
    response = client.post(f"/v1/models/{served[0]}:predict", json={"inputs": inputs})
    assert response.status_code == 200
    assert response.get_json() == {"outputs": []}


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_blank_texts_get_the_models_answer_as_in_tf_serving(client, served, text):
    """TF Serving runs the model on any string; so does /v1/ (POST /classify refuses)."""
    name, _, classes = served
    response = client.post(f"/v1/models/{name}:predict", json={"instances": [text, POSITIVE]})
    assert response.status_code == 200
    assert_probability_rows(response.get_json()["predictions"], 2, len(classes))


def test_predict_limits_are_the_classify_limits(make_app, served):
    client = make_app(MAX_BATCH_SIZE=2, MAX_TEXT_CHARS=10).test_client()
    url = f"/v1/models/{served[0]}:predict"
    assert_tf_error(client.post(url, json={"instances": ["a", "b", "c"]}), 400)
    assert_tf_error(client.post(url, json={"inputs": {TF_INPUT_NAME: ["a", "b", "c"]}}), 400)
    assert "at most 10 characters" in assert_tf_error(
        client.post(url, json={"inputs": ["x" * 11]}), 400
    )
    assert "at most 10 characters" in assert_tf_error(
        client.post(url, json={"instances": [b64("x" * 11)]}), 400
    )
    assert client.post(url, json={"instances": ["good", "bad"]}).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/json"],
)
def test_predict_reads_json_whatever_the_content_type(client, served, content_type):
    """TF Serving ignores Content-Type: its docs' ``curl -d`` sends a form type, its test
    client (urllib) too, ``requests.post(url, data=...)`` none."""
    url = f"/v1/models/{served[0]}:predict"
    response = client.post(url, data=f'{{"instances": ["{POSITIVE}"]}}', content_type=content_type)
    assert response.status_code == 200
    assert len(response.get_json()["predictions"]) == 1


def test_predict_http_errors(make_app, client, served):
    url = f"/v1/models/{served[0]}:predict"
    assert_tf_error(client.post(url, data="{", content_type="application/json"), 400)
    assert_tf_error(client.post(url, data=""), 400)
    small = make_app(MAX_CONTENT_LENGTH=100).test_client()
    assert_tf_error(small.post(url, json={"instances": [POSITIVE * 5]}), 413)


def test_other_routes_keep_the_standard_error_shape(client):
    body = client.post("/classify", json={}).get_json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"


def test_every_scoring_answer_names_the_version_that_gave_it_under_canary(make_app):
    """TF Serving's predict body has no field for the version; under ROUTING=canary (or
    bandit) it differs by request, so X-Model-Version names it. Versions 1 and 2 give
    different probabilities: each routed answer is the one its header's version gives."""
    client = make_app(
        MODEL_BASE_DIR=str(MODEL_BASE),
        MODEL_VERSIONS="1,2",
        MODEL_LABELS="stable=1,canary=2",
        ROUTING="canary",
        CANARY_PERCENT=50,
    ).test_client()
    body = {"instances": [POSITIVE, NEGATIVE]}
    pinned = {}
    for version in ("1", "2"):
        answer = client.post(f"/v1/models/sentiment/versions/{version}:predict", json=body)
        assert answer.headers["X-Model-Version"] == version
        pinned[version] = answer.get_json()["predictions"]
    assert pinned["1"] != pinned["2"]
    seen = set()
    for key in range(40):
        answer = client.post(
            "/v1/models/sentiment:predict", json=body, headers={"X-Routing-Key": f"user-{key}"}
        )
        version = answer.headers["X-Model-Version"]
        assert answer.get_json()["predictions"] == pinned[version]
        seen.add(version)
    assert seen == {"1", "2"}
    # The other scoring answers carry it too, equal to the version their body names.
    headers = {"X-Routing-Key": "user-0"}
    classify = client.post("/classify", json={"review": POSITIVE}, headers=headers)
    assert classify.headers["X-Model-Version"] == classify.get_json()["model"]["version"]
    v2 = {"inputs": [{"name": "review", "shape": [1], "datatype": "BYTES", "data": [POSITIVE]}]}
    infer = client.post("/v2/models/sentiment/infer", json=v2, headers=headers)
    assert infer.headers["X-Model-Version"] == infer.get_json()["model_version"]
    explained = client.post("/explain", json={"review": POSITIVE}, headers=headers)
    assert explained.headers["X-Model-Version"] == explained.get_json()["model"]["version"]
    # No model ran, no version: an empty column, and a refused body.
    assert (
        "X-Model-Version"
        not in client.post("/v1/models/sentiment:predict", json={"inputs": []}).headers
    )
    assert "X-Model-Version" not in client.post("/classify", json={"review": " "}).headers


def test_a_v1_in_upper_case_is_not_under_v1(client, served):
    """``/V1/…`` is no TF Serving URL: the service's own 404 shape (README)."""
    response = client.post(f"/V1/models/{served[0]}:predict", json={"instances": [POSITIVE]})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
