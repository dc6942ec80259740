"""Any 500 that can still happen (issue 17 item 8): the documented code ``internal_error``,
the trace in the log with the request id the client got, nothing leaked."""

from __future__ import annotations

import logging

import pytest
from flask import g, request

from app.web.errors import APIError, ValidationFailed


@pytest.fixture
def fragile_app(make_app):
    """An app whose request hooks fail on demand: the failures that reach Flask's own
    500 handler rather than the view's error handlers."""
    app = make_app(PROPAGATE_EXCEPTIONS=False)  # as in production (TESTING re-raises)

    @app.after_request
    def fail_after(response):
        if request.headers.get("X-Fail") == "after" and not g.get("failed"):
            g.failed = True  # once: Flask runs the hooks again on the error response
            raise RuntimeError("after_request exploded at /srv/secret")
        return response

    @app.get("/unserialisable-details")
    def unserialisable_details():
        raise ValidationFailed(details={"field": {1, 2}})

    return app


def test_a_failing_request_hook_is_internal_error_with_a_trace_and_the_request_id(
    fragile_app, caplog
):
    caplog.set_level(logging.ERROR)
    response = fragile_app.test_client().get("/health", headers={"X-Fail": "after"})
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == APIError.code == "internal_error"
    assert "exploded" not in response.get_data(as_text=True)
    request_id = response.headers["X-Request-ID"]
    traced = [r for r in caplog.records if r.getMessage() == "unhandled exception"]
    assert traced and traced[0].request_id == request_id and traced[0].exc_info


def test_an_error_whose_details_cannot_be_json_keeps_its_status_and_code(fragile_app):
    response = fragile_app.test_client().get("/unserialisable-details")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert response.get_json()["error"]["details"] == {}


@pytest.mark.parametrize(
    "body",
    [b'{"\\udc80": 1}', b'{"review": "ok", "\\ud800": 2}', b'{"reviews": ["a", "\\udfff"]}'],
)
def test_a_lone_surrogate_is_invalid_json(client, body):
    response = client.post("/classify", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert "surrogate" in response.get_json()["error"]["details"]["reason"]
