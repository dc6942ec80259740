"""TensorFlow Serving's own examples, sent the way its own clients send them, against a
real server: the promise "existing TF Serving clients work unchanged", checked.

The request/response pairs are those of TF Serving's REST API documentation
(tensorflow_serving/g3doc/api_rest.md), with the toy model's numbers replaced by review
texts; they are sent as its docs do (``curl -d``, which labels the body as a form), as its
model-server test client does (``CallREST`` in tensorflow_model_server_test_base.py:
urllib, the JSON body and no Content-Type of its own), and as ``requests`` does with
``data=``. What this server deliberately does otherwise is in the README's table
("TensorFlow Serving compatibility") and in tests/test_tfserving.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import urllib.error
import urllib.request

import pytest
import requests
from programs import require_program

from deploy.dyno import WebProcess

pytestmark = pytest.mark.slow

POSITIVE = "Thank you so much, the crew was wonderful and the flight was perfect!"
NEGATIVE = "Worst airline ever. Lost my bag, rude staff, three hours late. Never again."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = WebProcess(log_path=tmp_path_factory.mktemp("tfserving") / "server.log")
    try:
        process.wait_ready("/ready")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def model(server) -> dict:
    return requests.get(server.url + "/model", timeout=10).json()


def call_rest(url: str, req: object | None) -> tuple[int, str, object]:
    """TF Serving's test client, ``CallREST``: urllib, POST with the JSON body when there
    is one (urllib then labels it ``application/x-www-form-urlencoded``), GET otherwise.
    (status, Content-Type, parsed body)."""
    data = json.dumps(req).encode("utf-8") if req is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], json.loads(resp.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], json.loads(error.read())


def curl(*args: str) -> tuple[int, object]:
    """``curl -s -w <status>``, as the docs run it: (status, parsed body)."""
    output = subprocess.run(
        [require_program("curl", "curl"), "-s", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, status = output.rsplit("\n", 1)
    return int(status), json.loads(body)


def assert_rows(rows: list, count: int, classes: list[str]) -> list[str]:
    """``count`` rows of class probabilities; the labels they point at."""
    assert len(rows) == count
    for row in rows:
        assert len(row) == len(classes) and math.isclose(sum(row), 1.0, abs_tol=1e-5)
    return [classes[row.index(max(row))] for row in rows]


# --- api_rest.md, "Example": status, predict, and the documented 404 ------------------


def test_model_status_as_documented(server, model):
    """``curl http://localhost:8501/v1/models/half_plus_three`` → each loaded version,
    AVAILABLE (the docs' model has one version; this server loads 1 and 2)."""
    status, body = curl(f"{server.url}/v1/models/{model['name']}")
    assert status == 200
    assert body == {
        "model_version_status": [
            {
                "version": loaded["version"],
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for loaded in model["versions"]
        ]
    }


def test_predict_with_curl_d_as_documented(server, model):
    """``curl -d '{"instances": [1.0,2.0,5.0]}' -X POST .../half_plus_three:predict`` →
    ``{"predictions": [...]}``, one row per instance. ``-d`` sends a form Content-Type."""
    body = json.dumps({"instances": [POSITIVE, NEGATIVE, "Flight 2214 boards at gate B12."]})
    url = f"{server.url}/v1/models/{model['name']}:predict"
    status, answer = curl("-d", body, "-X", "POST", url)
    assert status == 200 and set(answer) == {"predictions"}
    labels = assert_rows(answer["predictions"], 3, model["classes"])
    assert labels[:2] == ["positive", "negative"]


def test_unknown_model_as_documented(server):
    """``curl -i -d '{"instances": [1.0,5.0]}' -X POST .../v1/models/half:predict`` →
    404, ``Content-Type: application/json``, ``{"error": "Servable not found for request:
    Latest(half)"}``."""
    response = requests.post(
        f"{server.url}/v1/models/half:predict", data='{"instances": ["a", "b"]}', timeout=10
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": "Servable not found for request: Latest(half)"}


# --- api_rest.md, "Request format": the documented bodies, texts for numbers ---------


@pytest.mark.parametrize(
    "body, key, count",
    [
        # "List of 3 scalar tensors", verbatim.
        ({"instances": ["foo", "bar", "baz"]}, "predictions", 3),
        # Named inputs, one object per instance (the docs' "tag" input, here "review").
        ({"instances": [{"review": "foo"}, {"review": "bar"}]}, "predictions", 2),
        # Columnar: a map of input name to tensor.
        ({"inputs": {"review": ["foo", "bar"]}}, "outputs", 2),
        # Columnar: the one input's tensor, bare.
        ({"inputs": ["foo", "bar"]}, "outputs", 2),
        # With the optional signature name.
        ({"signature_name": "serving_default", "instances": ["foo"]}, "predictions", 1),
        # "Encoding binary values": the docs' own base64 values ("image bytes", ...).
        (
            {"instances": [{"b64": "aW1hZ2UgYnl0ZXM="}, {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}]},
            "predictions",
            2,
        ),
    ],
    ids=["row", "row-objects", "column-named", "column-bare", "signature", "b64"],
)
def test_documented_request_formats(server, model, body, key, count):
    url = f"{server.url}/v1/models/{model['name']}:predict"
    status, content_type, answer = call_rest(url, body)
    assert status == 200 and content_type == "application/json"
    assert set(answer) == {key}
    assert_rows(answer[key], count, model["classes"])


def test_base64_values_are_the_texts_they_encode(server, model):
    url = f"{server.url}/v1/models/{model['name']}:predict"
    encoded = [{"b64": "aW1hZ2UgYnl0ZXM="}, {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}]
    plain = ["image bytes", "awesome image bytes"]
    assert call_rest(url, {"instances": encoded}) == call_rest(url, {"instances": plain})


# --- The model-server tests' REST cases (tensorflow_model_server_test.py), via CallREST --


def test_predict_rest(server, model):
    """testPredictREST: ``{'instances': [2.0, 3.0, 4.0]}`` → ``{'predictions': [...]}``."""
    url = f"{server.url}/v1/models/{model['name']}:predict"
    status, _, answer = call_rest(url, {"instances": [POSITIVE, NEGATIVE, POSITIVE]})
    assert status == 200
    labels = assert_rows(answer["predictions"], 3, model["classes"])
    assert labels == ["positive", "negative", "positive"]


def test_predict_columnar_rest(server, model):
    """testPredictColumnarREST: ``{'inputs': [2.0, 3.0, 4.0]}`` → ``{'outputs': [...]}``,
    the same numbers as the row format."""
    url = f"{server.url}/v1/models/{model['name']}:predict"
    texts = [POSITIVE, NEGATIVE, POSITIVE]
    _, _, rows = call_rest(url, {"instances": texts})
    status, _, columns = call_rest(url, {"inputs": texts})
    assert status == 200 and columns == {"outputs": rows["predictions"]}


def test_get_status_rest(server, model):
    """testGetStatusREST: GET ``/v1/models/default/versions/<v>`` → the version's status."""
    url = f"{server.url}/v1/models/{model['name']}/versions/{model['version']}"
    status, _, answer = call_rest(url, None)
    assert status == 200
    [version] = answer["model_version_status"]
    assert version == {
        "version": model["version"],
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }


def test_get_model_metadata_rest(server, model):
    """testGetModelMetadataREST: GET ``/v1/models/default/metadata`` → model_spec and
    the serving_default signature (string in, float probabilities out)."""
    url = f"{server.url}/v1/models/{model['name']}/versions/{model['version']}/metadata"
    status, _, answer = call_rest(url, None)
    assert status == 200
    assert answer["model_spec"] == {
        "name": model["name"],
        "signature_name": "",
        "version": model["version"],
    }
    signature = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    [tensor_in] = signature["inputs"].values()
    [tensor_out] = signature["outputs"].values()
    assert (tensor_in["dtype"], tensor_out["dtype"]) == ("DT_STRING", "DT_FLOAT")
    sizes = [dim["size"] for dim in tensor_out["tensor_shape"]["dim"]]
    assert sizes == ["-1", str(len(model["classes"]))]


# --- Other ways clients send the same body --------------------------------------------


@pytest.mark.parametrize(
    "send",
    [
        lambda url, body: requests.post(url, data=json.dumps(body), timeout=10),
        lambda url, body: requests.post(url, json=body, timeout=10),
        lambda url, body: requests.post(
            url, data=json.dumps(body), headers={"Content-Type": "text/plain"}, timeout=10
        ),
    ],
    ids=["requests-data", "requests-json", "text-plain"],
)
def test_any_content_type_is_read_as_json(server, model, send):
    response = send(f"{server.url}/v1/models/{model['name']}:predict", {"instances": [POSITIVE]})
    assert response.status_code == 200
    assert assert_rows(response.json()["predictions"], 1, model["classes"]) == ["positive"]


def test_documented_regress_call_is_a_tf_serving_error(server, model):
    """api_rest.md's ``:regress`` call: this model has no regression signature, so the
    answer is a 400 in TF Serving's error shape (README: deliberate differences)."""
    body = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}]}
    status, content_type, answer = call_rest(
        f"{server.url}/v1/models/{model['name']}:regress", body
    )
    assert status == 400 and content_type == "application/json"
    assert set(answer) == {"error"} and answer["error"].startswith("Malformed request")
