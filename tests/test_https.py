"""FORCE_HTTPS (``app.web.https``): through the test client, and on a real Gunicorn that
reads the scheme from X-Forwarded-Proto as behind Heroku's router."""

from __future__ import annotations

import pytest
import requests

from app.web.https import HSTS

REVIEW = {"review": "The crew was lovely."}


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    from app import create_app

    database = tmp_path_factory.mktemp("store") / "predictions.sqlite3"
    app = create_app(
        {"TESTING": True, "FORCE_HTTPS": True, "DATABASE_URL": f"sqlite:///{database}"}
    )
    return app.test_client()


@pytest.mark.parametrize("path", ["/", "/docs", "/ready", "/model?version=1"])
def test_a_get_over_plain_http_is_sent_to_https(forced, path):
    answer = forced.get(path)
    assert answer.status_code == 301
    assert answer.headers["Location"] == "https://localhost" + path
    assert answer.json == {"location": "https://localhost" + path}  # JSON, not Werkzeug's HTML
    assert "Strict-Transport-Security" not in answer.headers  # HSTS means nothing over HTTP
    assert forced.head(path).status_code == 301


def test_a_post_over_plain_http_is_refused_in_its_route_s_error_shape(forced):
    answer = forced.post("/classify", json=REVIEW)
    assert answer.status_code == 403
    assert answer.json["error"]["code"] == "https_required"
    assert "https://" in answer.json["error"]["message"]
    tf = forced.post("/v1/models/sentiment:predict", json={"instances": ["Fine."]})
    assert tf.status_code == 403
    assert "https://" in tf.json["error"]  # TF Serving's shape: a string


def test_the_document_states_the_redirect_and_the_refusal_as_answered(forced):
    """/openapi.json (over HTTPS) lists a 301 on every GET and a 403 on every other
    operation, whose examples are what plain HTTP gets."""
    document = forced.get("/openapi.json", base_url="https://localhost").json
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                expected = "301" if method == "get" else "403"
                assert expected in operation["responses"], (method, path)
    for path, body in (
        ("/classify", REVIEW),
        ("/v1/models/sentiment:predict", {"instances": ["Fine."]}),
        ("/v2/models/sentiment/infer", {"inputs": []}),
    ):
        [documented] = [
            item["post"]["responses"]["403"]["content"]["application/json"]["examples"]["https"]
            for rule, item in document["paths"].items()
            if rule.replace("{name}", "sentiment") == path
        ]
        assert forced.post(path, json=body).json == documented["value"], path


def test_https_requests_are_served_with_hsts(forced):
    answer = forced.post("/classify", json=REVIEW, base_url="https://localhost")
    assert answer.status_code == 200
    assert answer.json["label"] == "positive"
    assert answer.headers["Strict-Transport-Security"] == HSTS == "max-age=31536000"
    page = forced.get("/", base_url="https://localhost")
    assert page.status_code == 200
    assert page.headers["Strict-Transport-Security"] == HSTS


def test_off_by_default(client):
    answer = client.post("/classify", json=REVIEW)
    assert answer.status_code == 200
    assert "Strict-Transport-Security" not in answer.headers
    assert client.get("/ready").status_code == 200


@pytest.mark.slow
def test_behind_a_proxy_that_ends_tls(start_server):
    """Gunicorn takes the scheme from X-Forwarded-Proto (FORWARDED_ALLOW_IPS=*, Heroku's
    router sets it on every request)."""
    server = start_server(FORCE_HTTPS="1")
    server.wait_ready("/health", headers={"X-Forwarded-Proto": "https"})
    secure = {"X-Forwarded-Proto": "https"}
    plain = {"X-Forwarded-Proto": "http"}
    answer = requests.post(server.url + "/classify", json=REVIEW, headers=secure, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Strict-Transport-Security"] == HSTS
    page = requests.get(server.url + "/", headers=plain, allow_redirects=False, timeout=10)
    assert page.status_code == 301
    assert page.headers["Location"] == server.url.replace("http://", "https://") + "/"
    refused = requests.post(server.url + "/classify", json=REVIEW, headers=plain, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "https_required"
