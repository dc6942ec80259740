"""API keys (``API_KEYS``): the setting, every route with and without a key, the error
shapes and challenges, the OpenAPI document of a keyed server, and a real Gunicorn server
with real clients (requests, tritonclient, Prometheus' text format) whose log never holds
a key."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import requests
import schemathesis
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR

from app.config import EXIT_BAD_SETTING, PROJECT_ROOT, SettingError, check_environment
from app.web.auth import PUBLIC_ENDPOINTS
from app.web.openapi import openapi_path

KEY = "k3y-" + "a1" * 16  # 36 characters, as a client would hold it
NEXT_KEY = "f" * 64  # `openssl rand -hex 32` gives 64 hex digits
WRONG = "w" * 36
SCRAPE = "scrape-" + "0" * 24  # a monitoring key (MONITORING_API_KEYS)
# A path parameter's value for each route: the served model, a loaded version, a label.
VALUES = {"name": "sentiment", "version": "1", "label": "stable", "filename": "style.css"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    from app import create_app

    database = tmp_path_factory.mktemp("store") / "predictions.sqlite3"
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{database}",
            "API_KEYS": (KEY, NEXT_KEY),
            "MONITORING_API_KEYS": (SCRAPE,),
        }
    )
    yield app
    app.extensions["feedback"].close()


def filled(path: str) -> str:
    """An OpenAPI path with each ``{parameter}`` replaced by its value in ``VALUES``."""
    return re.sub(r"{(\w+)}", lambda m: VALUES[m.group(1)], path)


def routes(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, URL) for every route of ``app``, its parameters filled in."""
    found = []
    for rule in app.url_map.iter_rules():
        url = filled(openapi_path(rule.rule))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, url))
    return found


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", ()),
        (KEY, (KEY,)),
        (f" {KEY} , {NEXT_KEY} ,", (KEY, NEXT_KEY)),
        ("x" * 16 + "==", ("x" * 16 + "==",)),
    ],
)
def test_the_setting_takes_a_comma_list_of_keys(text, keys):
    assert check_environment({"API_KEYS": text})["API_KEYS"] == keys


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("changeme", "key 1 has 8 characters"),
        (f"{KEY},{'y' * 257}", "key 2 has 257 characters"),
        (f"{KEY},{'y' * 20} z", "key 2 has a character outside"),
        ("é" * 20, "key 1 has a character outside"),
        ("=" + "y" * 20, "key 1 has a character outside"),
    ],
)
def test_a_bad_key_is_refused_without_showing_it(text, reason):
    with pytest.raises(SettingError) as refused:
        check_environment({"API_KEYS": text})
    message = str(refused.value)
    assert message.startswith("bad setting API_KEYS=<not shown>: allowed is ")
    assert reason in message
    assert all(key not in message for key in text.split(","))


def test_monitoring_keys_are_checked_alike():
    assert check_environment({"MONITORING_API_KEYS": SCRAPE})["MONITORING_API_KEYS"] == (SCRAPE,)
    with pytest.raises(SettingError, match=r"^bad setting MONITORING_API_KEYS=<not shown>: "):
        check_environment({"MONITORING_API_KEYS": "metrics"})


def test_a_bad_key_stops_the_server_in_one_line_that_hides_it(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "app.server"],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "API_KEYS": f"{KEY},hunter2", "PORT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_BAD_SETTING
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and "bad setting API_KEYS=<not shown>" in lines[0]
    assert "key 2 has 7 characters" in lines[0]
    assert "hunter2" not in lines[0] and KEY not in lines[0]


def test_every_route_but_the_probes_and_the_page_needs_a_key(keyed):
    client = keyed.test_client()
    public = set()
    for endpoint, method, url in routes(keyed):
        body = {"json": {}} if method == "POST" else {}
        response = client.open(url, method=method, **body)
        response.close()  # a static file's answer holds the file open
        if endpoint in PUBLIC_ENDPOINTS:
            public.add(endpoint)
            assert response.status_code != 401, url
            continue
        assert response.status_code == 401, (method, url)
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="sentiment"'
        keyed_answer = client.open(url, method=method, headers=bearer(NEXT_KEY), **body)
        assert keyed_answer.status_code != 401, (method, url)
    # Every name in the list is a route, and the list is this one: a route becomes public
    # only by a change here too.
    assert public == PUBLIC_ENDPOINTS
    assert {url for endpoint, _, url in routes(keyed) if endpoint in public} == {
        "/health",
        "/ready",
        "/v1/models/sentiment",
        "/v1/models/sentiment/versions/1",
        "/v1/models/sentiment/labels/stable",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/sentiment/ready",
        "/v2/models/sentiment/versions/1/ready",
        "/",
        "/static/style.css",
        "/docs",
        "/docs/assets/style.css",
        "/openapi.json",
    }
    for probe in (
        "/health",
        "/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/v1/models/sentiment",
    ):
        assert client.get(probe).status_code == 200, probe


def test_missing_wrong_and_other_schemes_each_say_what_to_do(keyed):
    client = keyed.test_client()
    body = {"review": "Lovely crew, thank you!"}
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = client.post("/classify", json=body, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "api_key_required"
        assert "Authorization: Bearer <key>" in response.get_json()["error"]["message"]
    for wrong in (WRONG, KEY[:-1], KEY + "x", f"{KEY},{NEXT_KEY}"):
        response = client.post("/classify", json=body, headers=bearer(wrong))
        assert response.status_code == 401
        assert response.get_json() == {
            "error": {
                "code": "api_key_invalid",
                "message": "The API key is not one this server accepts.",
                "details": {},
            }
        }
        challenge = 'Bearer realm="sentiment", error="invalid_token"'
        assert response.headers["WWW-Authenticate"] == challenge
    for key in (KEY, NEXT_KEY):  # two keys: clients move to the new one, then the old goes
        response = client.post("/classify", json=body, headers=bearer(key))
        assert response.status_code == 200 and response.get_json()["label"] == "positive"
    # The scheme's name is case-insensitive (RFC 9110 section 11.1).
    assert (
        client.post("/classify", json=body, headers={"Authorization": f"bearer {KEY}"}).status_code
        == 200
    )


def test_tf_serving_and_open_inference_urls_answer_in_their_own_shape(keyed):
    client = keyed.test_client()
    for url, body in (
        ("/v1/models/sentiment:predict", {"instances": ["Lovely crew"]}),
        ("/v2/models/sentiment/infer", {"inputs": []}),
        ("/v2", None),
    ):
        response = client.open(url, method="POST" if body else "GET", json=body)
        assert response.status_code == 401
        assert response.get_json() == {
            "error": "This server needs an API key: send the header 'Authorization: Bearer <key>'."
        }


def test_the_keyed_document_says_which_operations_need_a_key(keyed):
    client = keyed.test_client()
    document = client.get("/openapi.json").get_json()
    assert [str(error) for error in OPENAPI_30_VALIDATOR.iter_errors(document)] == []
    assert document["security"] == []  # each keyed operation says so itself
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    contract = schemathesis.openapi.from_dict(document)
    public_paths, monitoring_paths = set(), set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post"):
                continue
            url = filled(path)
            case = contract[path][method.upper()].Case(
                path_parameters={k: VALUES[k] for k in re.findall(r"{(\w+)}", path)}
            )

            def send(headers: dict[str, str], url=url, method=method):
                body = {} if method == "post" else None
                return client.open(url, method=method.upper(), json=body, headers=headers)

            responses = operation["responses"]
            if "security" not in operation:
                public_paths.add(path)
                assert send({}).status_code != 401 and "401" not in responses
                continue
            assert operation["security"] == [{"apiKey": []}]
            # The documented 401 and 403 are what the server sends, in the URL's shape.
            for status, name, headers in ((401, "missing", {}), (403, "scope", bearer(SCRAPE))):
                answer = send(headers)
                if str(status) not in responses:  # a route the monitoring key opens
                    assert status == 403 and answer.status_code not in (401, 403), path
                    monitoring_paths.add(path)
                    continue
                documented = responses[str(status)]["content"]["application/json"]
                assert answer.status_code == status, (path, status)
                assert answer.get_json() == documented["examples"][name]["value"], path
                case.validate_response(answer)
    assert "/health" in public_paths and "/v2/health/live" in public_paths
    assert "/classify" not in public_paths
    assert monitoring_paths == {"/metrics", "/monitoring"}


def test_a_monitoring_key_reads_metrics_and_monitoring_only(keyed):
    client = keyed.test_client()
    for url in ("/metrics", "/monitoring"):
        assert client.get(url, headers=bearer(SCRAPE)).status_code == 200
        assert client.get(url, headers=bearer(KEY)).status_code == 200  # API keys open all
    for method, url in (
        ("POST", "/classify"),
        ("GET", "/model"),
        ("POST", "/feedback"),
        ("GET", "/feedback"),
    ):
        response = client.open(url, method=method, json={"review": "Fine."}, headers=bearer(SCRAPE))
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "api_key_out_of_scope"
        challenge = 'Bearer realm="sentiment", error="insufficient_scope"'
        assert response.headers["WWW-Authenticate"] == challenge


def test_monitoring_keys_alone_close_only_metrics_and_monitoring(make_app):
    client = make_app(MONITORING_API_KEYS=(SCRAPE,)).test_client()
    assert client.post("/classify", json={"review": "Fine."}).status_code == 200
    assert (
        client.post("/classify", json={"review": "Fine."}, headers=bearer(SCRAPE)).status_code
        == 200
    )
    for url in ("/metrics", "/monitoring"):
        assert client.get(url).status_code == 401
        assert client.get(url, headers=bearer(WRONG)).status_code == 401
        assert client.get(url, headers=bearer(SCRAPE)).status_code == 200
    page = client.get("/").get_data(as_text=True)
    assert '"apiKeyRequired":false' in page  # the page calls no monitoring route
    document = client.get("/openapi.json").get_json()
    keyed = {
        path
        for path, item in document["paths"].items()
        for op in item.values()
        if isinstance(op, dict) and "security" in op
    }
    assert keyed == {"/metrics", "/monitoring"}


def test_without_keys_nothing_asks_for_one(client):
    document = client.get("/openapi.json").get_json()
    assert document["security"] == [] and "securitySchemes" not in document["components"]
    for item in document["paths"].values():
        assert all(
            "401" not in op.get("responses", {}) for op in item.values() if isinstance(op, dict)
        )
    assert client.post("/classify", json={"review": "Fine."}).status_code == 200
    # A key sent to a server without keys is ignored, as any unknown header is.
    assert (
        client.post("/classify", json={"review": "Fine."}, headers=bearer(WRONG)).status_code == 200
    )


def test_the_page_asks_for_a_key_only_when_the_server_needs_one(keyed, client):
    page = keyed.test_client().get("/").get_data(as_text=True)
    assert 'id="api-key"' in page and '"apiKeyRequired":true' in page
    assert KEY not in page and NEXT_KEY not in page
    page = client.get("/").get_data(as_text=True)
    assert 'id="api-key"' not in page and '"apiKeyRequired":false' in page


@pytest.mark.slow
def test_a_keyed_server_with_real_clients_never_logs_a_key(start_server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    server = start_server(API_KEYS=f"{KEY},{NEXT_KEY}", MONITORING_API_KEYS=SCRAPE, ACCESS_LOG="1")
    server.wait_ready("/ready")  # the probe needs no key
    review = {"review": "Lost my bag and nobody would help."}
    assert requests.post(server.url + "/classify", json=review, timeout=10).status_code == 401
    wrong = requests.post(server.url + "/classify", json=review, headers=bearer(WRONG), timeout=10)
    assert wrong.status_code == 401
    answer = requests.post(server.url + "/classify", json=review, headers=bearer(KEY), timeout=10)
    assert answer.status_code == 200 and answer.json()["label"] == "negative"
    tf = requests.post(
        server.url + "/v1/models/sentiment:predict",
        json={"instances": [review["review"]]},
        headers=bearer(NEXT_KEY),
        timeout=10,
    )
    assert tf.status_code == 200 and len(tf.json()["predictions"]) == 1

    # Triton's client passes headers through: the same key works with it.
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        assert client.is_server_ready()  # a probe: no key
        tensor = httpclient.InferInput("review", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([review["review"]], dtype=object))
        result = client.infer("sentiment", [tensor], headers=bearer(KEY))
        assert result.as_numpy("label").tolist() == [b"negative"]
        with pytest.raises(InferenceServerException, match="needs an API key"):
            client.infer("sentiment", [tensor])
    finally:
        client.close()

    # Prometheus scrapes with a monitoring key (its `authorization` setting), which opens
    # nothing else; the 401s are counted.
    assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
    scraped = requests.post(
        server.url + "/classify", json=review, headers=bearer(SCRAPE), timeout=10
    )
    assert scraped.status_code == 403
    metrics = requests.get(server.url + "/metrics", headers=bearer(SCRAPE), timeout=10).text
    refused = re.search(
        r'sentiment_http_request_duration_seconds_count\{[^}]*method="POST"[^}]*route="/classify"'
        r'[^}]*status="401"[^}]*\} (\d+)',
        metrics,
    )
    assert refused and float(refused.group(1)) == 2
    server.stop()
    log = server.log()
    assert '"path":"/classify","status":401' in log
    for key in (KEY, NEXT_KEY, WRONG, SCRAPE):
        assert key not in log


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer ", "api_key_required"),
        ("bearer\t" + KEY, "api_key_required"),  # the scheme ends at a space (RFC 9110)
        ("Bearer a=b", "api_key_required"),  # parameters, not a token
        (f"Bearer {KEY}=x", "api_key_required"),
        ("Basic !!!", "api_key_required"),
        ('Digest username="x"', "api_key_required"),
        (f"  Bearer {KEY}", "api_key_required"),
        (f"Bearer é{KEY}", "api_key_invalid"),
        ("Bearer \x00", "api_key_invalid"),
        ("Bearer " + "a" * 9000, "api_key_invalid"),
        (f"Bearer {KEY}, Bearer {NEXT_KEY}", "api_key_invalid"),
    ],
)
def test_odd_authorization_headers_get_401_never_500(keyed, header, code):
    response = keyed.test_client().post(
        "/classify", json={"review": "Fine."}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == code
