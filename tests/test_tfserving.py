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

import math

import pytest

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
def test_model_status_available(client, served, versions):
    name, version, _ = served
    url = f"/v1/models/{name}" + (f"/versions/{version}" if versions else "")
    response = client.get(url)
    assert response.status_code == 200
    assert response.get_json() == {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
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


def test_predict_matches_classify(client, served):
    """One prediction path: the same probabilities as POST /classify, in class order."""
    name, version, classes = served
    tf = client.post(
        f"/v1/models/{name}/versions/{version}:predict",
        json={"signature_name": "serving_default", "instances": [POSITIVE, NEGATIVE]},
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
        "/v1/models/{name}/versions/nope",
        "/v1/models/{name}/extra/segments",
    ],
)
def test_get_not_found(client, served, path):
    assert_tf_error(client.get(path.format(name=served[0])), 404)


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
    "payload, fragment",
    [
        ({}, "Missing 'inputs' or 'instances'"),
        ({"instances": [POSITIVE], "inputs": [POSITIVE]}, "Not both"),
        ({"instances": []}, "instances: Send between 1 and"),
        ({"inputs": []}, "inputs: Send between 1 and"),
        ({"instances": [POSITIVE, "  "]}, "instances.1: Review text must not be empty"),
        ({"inputs": {TF_INPUT_NAME: [""]}}, "inputs.0: Review text must not be empty"),
        ({"inputs": {"x": [POSITIVE]}}, "Name the one input"),
        ({"instances": [1.0, 2.0, 5.0]}, "instances.0: Not a valid string"),
        ({"instances": "foo"}, "instances: Not a valid list"),
        ({"instances": [POSITIVE], "signature_name": "classify"}, "not found in signature def"),
        ({"instances": [POSITIVE], "examples": []}, "examples: Unknown field"),
        ([POSITIVE], "Invalid input type"),
    ],
)
def test_predict_invalid_argument(client, served, payload, fragment):
    response = client.post(f"/v1/models/{served[0]}:predict", json=payload)
    assert fragment in assert_tf_error(response, 400)


def test_predict_limits_are_the_classify_limits(make_app, served):
    client = make_app(MAX_BATCH_SIZE=2, MAX_TEXT_CHARS=10).test_client()
    url = f"/v1/models/{served[0]}:predict"
    assert_tf_error(client.post(url, json={"instances": ["a", "b", "c"]}), 400)
    assert "at most 10 characters" in assert_tf_error(
        client.post(url, json={"inputs": ["x" * 11]}), 400
    )
    assert client.post(url, json={"instances": ["good", "bad"]}).status_code == 200


def test_predict_http_errors(make_app, client, served):
    url = f"/v1/models/{served[0]}:predict"
    assert_tf_error(client.post(url, data="{", content_type="application/json"), 400)
    assert_tf_error(client.post(url, data='{"instances": ["a"]}'), 415)
    small = make_app(MAX_CONTENT_LENGTH=100).test_client()
    assert_tf_error(small.post(url, json={"instances": [POSITIVE * 5]}), 413)
    wrong_method = client.get(url)
    # The predict URL answers only POST, as every URL answers a wrong method: 405.
    assert_tf_error(wrong_method, 405)
    assert_tf_error(client.post(f"/v1/models/{served[0]}"), 405)


def test_other_routes_keep_the_standard_error_shape(client):
    body = client.post("/classify", json={}).get_json()
    assert set(body["error"]) == {"code", "message", "details"}
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"
